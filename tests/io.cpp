// I/O operations: round trips over pipes, files and loopback sockets, partial reads and writes,
// errors that name the operation, cancellation in the kernel (the fd stays usable), the raw
// form, and gather sending its operations' SQEs in one io_uring_enter. Buffers the kernel fills
// are zeroed first: valgrind cannot see io_uring's writes and would call them uninitialised.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/io_support.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Socket;

namespace {

struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read_fd = fds[0];
    write_fd = fds[1];
  }
  ~Pipe() {
    if (read_fd >= 0) ::close(read_fd);
    if (write_fd >= 0) ::close(write_fd);
  }
};

// A connected loopback TCP pair: (client, server side).
Coro<std::pair<Socket, Socket>> tcp_pair(const char* host) {
  Socket listener = ringloop::listen_tcp(host, 0);
  ringloop::SocketAddress address = ringloop::make_address(host, ringloop::local_port(listener));
  Socket client(co_await ringloop::io::socket(address.family(), SOCK_STREAM));
  co_await client.connect(address.get(), address.length);
  Socket server = co_await listener.accept();
  co_return std::pair<Socket, Socket>(std::move(client), std::move(server));
}

std::string text(const char* data, std::size_t size) { return std::string(data, size); }

}  // namespace

TEST_CASE("write and read round-trip through a pipe", "[io]") {
  Pipe pipe;
  ringloop::run([](int in, int out) -> Coro<> {
    std::size_t written = co_await ringloop::io::write(out, "hello", 5);
    CHECK(written == 5);
    char buffer[16] = {};
    std::size_t got = co_await ringloop::io::read(in, buffer, sizeof(buffer));
    CHECK(text(buffer, got) == "hello");
    co_await ringloop::io::nop();
  }(pipe.read_fd, pipe.write_fd));
}

TEST_CASE("a read returns what is there: a partial read", "[io]") {
  Pipe pipe;
  ringloop::run([](int in, int out) -> Coro<> {
    co_await ringloop::io::write(out, "abc", 3);
    std::array<std::byte, 4096> buffer{};
    std::size_t got = co_await ringloop::io::read(in, buffer);
    CHECK(got == 3);
  }(pipe.read_fd, pipe.write_fd));
}

TEST_CASE("files: openat, positioned write and read, fsync, close", "[io]") {
  char path[] = "/tmp/ringloop-io-XXXXXX";
  int made = ::mkstemp(path);
  REQUIRE(made >= 0);
  ::close(made);
  ringloop::run([](const char* p) -> Coro<> {
    ringloop::File file = co_await ringloop::File::open(p, O_RDWR | O_TRUNC);
    CHECK(file.valid());
    std::size_t written = co_await file.write("0123456789", 10, 0);
    CHECK(written == 10);
    co_await file.write("AB", 2, 4);
    co_await file.fsync();
    char buffer[16] = {};
    std::size_t got = co_await file.read(buffer, sizeof(buffer), 2);
    CHECK(text(buffer, got) == "23AB6789");
    co_await file.close();
    CHECK_FALSE(file.valid());
    int raw = co_await ringloop::io::openat(AT_FDCWD, p, O_RDONLY);
    got = co_await ringloop::io::read(raw, buffer, 4, 0);
    CHECK(text(buffer, got) == "0123");
    co_await ringloop::io::close(raw);
  }(path));
  ::unlink(path);
}

TEST_CASE("an I/O error throws std::system_error with the errno and the operation's name", "[io]") {
  ringloop::run([]() -> Coro<> {
    char buffer[4] = {};
    try {
      co_await ringloop::io::recv(-1, buffer, sizeof(buffer));
      FAIL("recv on fd -1 succeeded");
    } catch (const std::system_error& error) {
      CHECK(error.code().value() == EBADF);
      CHECK_THAT(error.what(), Catch::StartsWith("recv"));
    }
    CHECK_THROWS_WITH(co_await ringloop::File::open("/nonexistent/ringloop", O_RDONLY),
                      Catch::StartsWith("openat") && Catch::Contains("No such file"));
  }());
}

TEST_CASE("reading from a closed fd is a clear error", "[io]") {
  ringloop::run([]() -> Coro<> {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    // Closed inside the loop: nothing (such as the ring itself) can take the number in between.
    ::close(fds[0]);
    ::close(fds[1]);
    char buffer[4] = {};
    try {
      co_await ringloop::io::read(fds[0], buffer, sizeof(buffer));
      FAIL("read on a closed fd succeeded");
    } catch (const std::system_error& error) {
      CHECK(error.code() == std::errc::bad_file_descriptor);
      CHECK_THAT(error.what(), Catch::StartsWith("read"));
    }
  }());
}

TEST_CASE("sockets: send, recv, poll, shutdown over a socket pair", "[io]") {
  test_support::SocketPair pair;
  ringloop::run([](Socket& a, Socket& b) -> Coro<> {
    co_await a.send("ping", 4);
    unsigned events = co_await b.poll(POLLIN);
    CHECK((events & POLLIN) != 0);
    char buffer[8] = {};
    std::size_t got = co_await b.recv(buffer, sizeof(buffer));
    CHECK(text(buffer, got) == "ping");
    co_await a.shutdown(SHUT_WR);
    got = co_await b.recv(buffer, sizeof(buffer));
    CHECK(got == 0);  // end of stream
  }(pair.a, pair.b));
}

TEST_CASE("TCP over loopback, IPv4 and IPv6: connect, accept, round trip", "[io]") {
  for (const char* host : {"127.0.0.1", "::1"}) {
    INFO(host);
    ringloop::run([](const char* h) -> Coro<> {
      auto [client, server] = co_await tcp_pair(h);
      co_await client.send("hi", 2);
      char buffer[4] = {};
      std::size_t got = co_await server.recv(buffer, sizeof(buffer));
      CHECK(text(buffer, got) == "hi");
      co_await server.close();
      co_await client.close();
    }(host));
  }
}

TEST_CASE("a send larger than the socket buffer may be partial; the rest goes in later sends",
          "[io]") {
  test_support::SocketPair pair;
  int small = 4096;
  ::setsockopt(pair.a.fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  ::setsockopt(pair.b.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  ringloop::run([](Socket& a, Socket& b) -> Coro<> {
    constexpr std::size_t kTotal = 1 << 20;
    std::string payload(kTotal, 'x');
    for (std::size_t i = 0; i < kTotal; ++i) payload[i] = static_cast<char>('a' + i % 26);
    auto reader = ringloop::create_task([](Socket& s, std::size_t total) -> Coro<std::string> {
      std::string received;
      std::vector<char> buffer(64 * 1024);
      while (received.size() < total) {
        std::size_t got = co_await s.recv(buffer.data(), buffer.size());
        if (got == 0) break;
        received.append(buffer.data(), got);
      }
      co_return received;
    }(b, kTotal));
    std::size_t sent = 0;
    int sends = 0;
    while (sent < kTotal) {
      sent += co_await a.send(payload.data() + sent, kTotal - sent);
      ++sends;
    }
    std::string received = co_await reader;
    CHECK(sends > 1);  // at least one send was partial
    CHECK(received == payload);
  }(pair.a, pair.b));
}

TEST_CASE("cancelling a pending recv cancels it in the kernel; the socket stays usable",
          "[io][cancel]") {
  test_support::SocketPair pair;
  ringloop::run([](Socket& a, Socket& b) -> Coro<> {
    char buffer[8] = {};
    auto receiver = ringloop::create_task([](Socket& s, char* buf) -> Coro<std::size_t> {
      co_return co_await s.recv(buf, 8);
    }(b, buffer));
    co_await ringloop::sleep(5ms);
    CHECK(receiver.cancel());
    CHECK_THROWS_AS(co_await receiver, CancelledError);
    CHECK(ringloop::Loop::current()->in_flight() == 0);
    co_await a.send("after", 5);
    std::size_t got = co_await b.recv(buffer, sizeof(buffer));
    CHECK(text(buffer, got) == "after");  // nothing was lost to the cancelled recv
  }(pair.a, pair.b));
}

TEST_CASE("cancelling a pending accept; the listener goes on accepting", "[io][cancel]") {
  ringloop::run([]() -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    auto acceptor = ringloop::create_task(
        [](Socket& l) -> Coro<> { Socket connection = co_await l.accept(); }(listener));
    co_await ringloop::sleep(5ms);
    acceptor.cancel();
    CHECK_THROWS_AS(co_await acceptor, CancelledError);
    auto stream = co_await ringloop::open_connection("127.0.0.1", ringloop::local_port(listener));
    Socket accepted = co_await listener.accept();
    CHECK(accepted.valid());
  }());
}

TEST_CASE("a cancel pending when the operation is awaited submits nothing", "[io][cancel]") {
  ringloop::run([]() -> Coro<> {
    auto submitted = ringloop::Loop::current()->stats().operations_submitted;
    ringloop::Task<> self;
    // The task cancels itself outside any await: the cancel waits for its next await point.
    self = ringloop::create_task([](ringloop::Task<>& me) -> Coro<> {
      me.cancel();
      co_await ringloop::io::nop();
      FAIL("the nop ran despite the pending cancel");
    }(self));
    CHECK_THROWS_AS(co_await self, CancelledError);
    CHECK(ringloop::Loop::current()->stats().operations_submitted == submitted);
  }());
}

TEST_CASE("a peer that resets the connection: recv and send fail with ECONNRESET or EPIPE",
          "[io]") {
  ringloop::run([]() -> Coro<> {
    auto [client, server] = co_await tcp_pair("127.0.0.1");
    linger hard_close{1, 0};  // close() sends RST instead of FIN
    ::setsockopt(client.fd(), SOL_SOCKET, SO_LINGER, &hard_close, sizeof(hard_close));
    co_await client.close();
    char buffer[8] = {};
    try {
      co_await server.recv(buffer, sizeof(buffer));
      FAIL("recv from a reset connection succeeded");
    } catch (const std::system_error& error) {
      CHECK(error.code() == std::errc::connection_reset);
      CHECK_THAT(error.what(), Catch::StartsWith("recv"));
    }
    try {
      co_await server.send("x", 1);  // no SIGPIPE: MSG_NOSIGNAL
      co_await server.send("x", 1);
      FAIL("send to a reset connection succeeded");
    } catch (const std::system_error& error) {
      CHECK(
          (error.code() == std::errc::broken_pipe || error.code() == std::errc::connection_reset));
    }
  }());
}

TEST_CASE("submit(prep) runs any opcode and returns the CQE result as it came", "[io]") {
  Pipe pipe;
  ringloop::run([](int in, int out) -> Coro<> {
    std::int32_t nop =
        co_await ringloop::io::submit([](io_uring_sqe& sqe) { io_uring_prep_nop(&sqe); });
    CHECK(nop == 0);
    std::int32_t written = co_await ringloop::io::submit(
        [out](io_uring_sqe& sqe) { io_uring_prep_write(&sqe, out, "raw", 3, 0); });
    CHECK(written == 3);
    char buffer[4] = {};
    std::int32_t bad = co_await ringloop::io::submit(
        [&buffer](io_uring_sqe& sqe) { io_uring_prep_read(&sqe, -1, buffer, 4, 0); });
    CHECK(bad == -EBADF);
    std::int32_t got = co_await ringloop::io::submit(
        [in, &buffer](io_uring_sqe& sqe) { io_uring_prep_read(&sqe, in, buffer, 4, 0); });
    CHECK(text(buffer, static_cast<std::size_t>(got)) == "raw");
    CHECK_THROWS_AS(ringloop::io::submit([](io_uring_sqe& sqe) {
                      io_uring_prep_nop(&sqe);
                      sqe.flags |= IOSQE_IO_LINK;
                    }),
                    std::invalid_argument);
  }(pipe.read_fd, pipe.write_fd));
}

namespace {
constexpr std::size_t kPipes = 16;
}  // namespace

TEST_CASE("gather of operations sends all their SQEs in one io_uring_enter", "[io]") {
  std::vector<Pipe> pipes(kPipes);
  ringloop::run([](std::vector<Pipe>& ps) -> Coro<> {
    ringloop::Loop& loop = *ringloop::Loop::current();
    std::vector<ringloop::Op<ringloop::detail::WritePrep>> writes;
    for (Pipe& p : ps) writes.push_back(ringloop::io::write(p.write_fd, "abcd", 4));
    auto enters = loop.ring().submitting_enter_calls();
    auto submitted = loop.stats().operations_submitted;
    std::vector<std::size_t> counts = co_await ringloop::gather(writes);
    CHECK(loop.stats().operations_submitted - submitted == kPipes);
    // Far fewer enters that submit than operations. (Not every enter: on Linux 6.1 a pipe write
    // runs in an io-wq worker, and the loop enters again to wait for each late CQE.)
    CHECK(loop.ring().submitting_enter_calls() - enters <= 3);
    CHECK(counts == std::vector<std::size_t>(kPipes, 4));
    char a[4] = {}, b[4] = {};
    auto [got_a, got_b, nothing] =
        co_await ringloop::gather(ringloop::io::read(ps[0].read_fd, a, 4),
                                  ringloop::io::read(ps[1].read_fd, b, 4), ringloop::io::nop());
    CHECK(got_a + got_b == 8);
    (void)nothing;
  }(pipes));
}
