// splice, tee and sendfile (issue #18): a file served to a TCP socket through sendfile and
// checked byte for byte, a proxy that splices one socket into another through a pipe, tee
// duplicating a pipe's bytes, and the error on a kernel without IORING_OP_SPLICE.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include <ringloop/ringloop.hpp>

using ringloop::Coro;
using ringloop::Socket;
using ringloop::Stream;
namespace io = ringloop::io;

namespace {

// Bytes no two offsets of which repeat within a few MiB: a misplaced chunk shows.
std::string pattern(std::size_t size) {
  std::string data(size, '\0');
  std::uint32_t x = 2463534242u;
  for (auto& c : data) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return data;
}

// A temporary file holding `data`, open for reading.
struct TempFile {
  std::string path;
  int fd = -1;
  explicit TempFile(const std::string& data) {
    char name[] = "/tmp/ringloop-splice-XXXXXX";
    fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    path = name;
    REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  }
  ~TempFile() {
    ::close(fd);
    ::unlink(path.c_str());
  }
};

// Reads from fd until the peer ends the stream.
Coro<std::string> read_all(int fd) {
  std::string all;
  std::vector<char> chunk(65536, '\0');
  for (;;) {
    std::size_t n = co_await io::recv(fd, chunk.data(), chunk.size());
    if (n == 0) break;
    all.append(chunk.data(), n);
  }
  co_return all;
}

// A connected TCP pair over loopback: (client side, accepted side).
Coro<std::pair<Socket, Socket>> tcp_pair() {
  Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
  auto accepting = ringloop::create_task(
      [](const Socket& l) -> Coro<Socket> { co_return co_await l.accept(); }(listener));
  Stream client = co_await ringloop::open_connection("127.0.0.1", ringloop::local_port(listener));
  Socket accepted = co_await std::move(accepting);
  co_return std::pair<Socket, Socket>(std::move(client.socket()), std::move(accepted));
}

}  // namespace

TEST_CASE("sendfile serves a file to a TCP socket byte for byte, from any offset", "[splice]") {
  const std::string data = pattern(3 * 1024 * 1024 + 12345);  // several 1 MiB chunks and a tail
  TempFile file(data);
  struct Case {
    std::uint64_t offset;
    std::size_t count;
    std::size_t expected;
  };
  for (Case c : {Case{0, data.size(), data.size()}, Case{1000, 5000, 5000},
                 Case{data.size() - 10, 100, 10}}) {  // past the end: what there is
    INFO("offset " << c.offset << ", count " << c.count);
    ringloop::run([](int file_fd, Case k, const std::string& all) -> Coro<> {
      auto [client, server] = co_await tcp_pair();
      auto receiving = ringloop::create_task(read_all(client.fd()));
      std::size_t sent = co_await ringloop::sendfile(server.fd(), file_fd, k.offset, k.count);
      CHECK(sent == k.expected);
      co_await server.shutdown(SHUT_WR);
      std::string received = co_await receiving;
      REQUIRE(received.size() == k.expected);
      CHECK(received == all.substr(k.offset, k.expected));
    }(file.fd, c, data));
  }
}

// A python3 client (a program nobody here wrote) connects, reads to the end and compares what
// arrived with the file it reads itself; prints "match N" or what differs.
static std::string python_client(std::uint16_t port, const std::string& path) {
  std::string script =
      "import socket, sys\n"
      "s = socket.create_connection(('127.0.0.1', " +
      std::to_string(port) +
      "))\n"
      "got = bytearray()\n"
      "while True:\n"
      "    b = s.recv(1 << 16)\n"
      "    if not b: break\n"
      "    got += b\n"
      "want = open('" +
      path +
      "', 'rb').read()\n"
      "print('match %d' % len(got) if got == want else 'differ %d %d' % (len(got), len(want)))\n";
  std::string command = "python3 -c \"" + script + "\" 2>&1";
  std::string out;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[256];
    while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
    ::pclose(pipe);
  }
  return out;
}

TEST_CASE("a python3 client receives a file served with sendfile, byte for byte", "[splice]") {
  if (std::system("command -v python3 >/dev/null 2>&1") != 0) {
    WARN("no python3 here (the kernel-6.1 guest has none): skipped");
    return;
  }
  const std::string data = pattern(2 * 1024 * 1024 + 99);
  TempFile file(data);
  std::string out =
      ringloop::run([](int fd, std::string path, std::size_t size) -> Coro<std::string> {
        Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
        std::uint16_t port = ringloop::local_port(listener);
        auto client = ringloop::create_task(ringloop::to_thread(python_client, port, path));
        Socket connection = co_await listener.accept();
        std::size_t sent = co_await ringloop::sendfile(connection.fd(), fd, 0, size);
        CHECK(sent == size);
        co_await connection.close();  // the client's recv sees the end
        std::string result = co_await client;
        co_return result;
      }(file.fd, file.path, data.size()));
  CHECK(out == "match " + std::to_string(data.size()) + "\n");
}

TEST_CASE("a proxy splices one socket into another through a pipe, byte for byte", "[splice]") {
  const std::string data = pattern(2 * 1024 * 1024 + 777);
  ringloop::run([](const std::string& all) -> Coro<> {
    auto [source, proxy_in] = co_await tcp_pair();
    auto [proxy_out, sink] = co_await tcp_pair();
    auto receiving = ringloop::create_task(read_all(sink.fd()));
    auto sending = ringloop::create_task([](const Socket& s, const std::string& d) -> Coro<> {
      Stream stream(Socket(::dup(s.fd())));
      co_await stream.write(d);
      co_await stream.write_eof();
      co_await stream.close();
    }(source, all));
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    std::size_t moved = 0;
    for (;;) {
      std::size_t in = co_await io::splice(proxy_in.fd(), pipe_fds[1], 65536, SPLICE_F_MOVE);
      if (in == 0) break;  // the source ended its stream
      for (std::size_t out = 0; out < in;)
        out += co_await io::splice(pipe_fds[0], proxy_out.fd(), in - out, SPLICE_F_MOVE);
      moved += in;
    }
    co_await proxy_out.shutdown(SHUT_WR);
    co_await sending;
    std::string received = co_await receiving;
    CHECK(moved == all.size());
    REQUIRE(received.size() == all.size());
    CHECK(received == all);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  }(data));
}

TEST_CASE("tee copies a pipe's bytes into another pipe without consuming them", "[splice]") {
  ringloop::run([]() -> Coro<> {
    int a[2], b[2];
    REQUIRE(::pipe2(a, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(b, O_CLOEXEC) == 0);
    REQUIRE(::write(a[1], "teed bytes", 10) == 10);
    std::size_t copied = co_await io::tee(a[0], b[1], 100);
    CHECK(copied == 10);
    char first[16] = {}, second[16] = {};
    std::size_t n1 = co_await io::read(a[0], first, sizeof first);
    std::size_t n2 = co_await io::read(b[0], second, sizeof second);
    CHECK(std::string(first, n1) == "teed bytes");
    CHECK(std::string(second, n2) == "teed bytes");
    for (int fd : {a[0], a[1], b[0], b[1]}) ::close(fd);
  }());
}

TEST_CASE("splice between two non-pipes is an error naming splice", "[splice]") {
  TempFile file("x");
  ringloop::run([](int fd) -> Coro<> {
    try {
      co_await io::splice(fd, 0, fd, 1, 1);
      FAIL("splice between two files succeeded");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == EINVAL);
      CHECK_THAT(e.what(), Catch::StartsWith("splice"));
    }
  }(file.fd));
}

TEST_CASE("on a kernel without IORING_OP_SPLICE, sendfile fails naming the kernel that has it",
          "[splice][probe]") {
  TempFile file("data");
  struct Masked {
    Masked() { ringloop::Probe::mask_opcodes_for_tests({IORING_OP_SPLICE}); }
    ~Masked() { ringloop::Probe::mask_opcodes_for_tests({}); }
  } masked;
  ringloop::run([](int fd) -> Coro<> {
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    try {
      co_await ringloop::sendfile(out[1], fd, 0, 4);
      FAIL("sendfile ran without IORING_OP_SPLICE");
    } catch (const std::system_error& e) {
      CHECK_THAT(e.what(), Catch::Contains("IORING_OP_SPLICE needs Linux 5.7"));
    }
    ::close(out[0]);
    ::close(out[1]);
  }(file.fd));
}

// PEP 475 for io_uring. A splice from a socket blocks in one of the kernel's io-wq workers, and
// a worker, being one of the process's threads, is interrupted when the process is stopped and
// continued (Ctrl-Z then fg, a debugger, a cgroup freeze): the CQE says -ERESTARTSYS, which
// io_uring's splice hands on as is ("Unknown error 512"). Nothing moved, and the program asked
// for no interruption, so the loop submits the operation again and the caller gets its bytes.
// A helper process stops and continues this one while the splice waits, then sends the data.
TEST_CASE("a splice interrupted by the process being stopped and continued is submitted again",
          "[splice][signals]") {
  ringloop::run([]() -> Coro<> {
    auto [source, proxy_in] = co_await tcp_pair();
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    int go[2];  // the helper starts once the splice is about to go in (valgrind is slow)
    REQUIRE(::pipe2(go, O_CLOEXEC) == 0);
    pid_t parent = ::getpid();
    pid_t helper = ::fork();
    REQUIRE(helper >= 0);
    if (helper == 0) {
      char byte = 0;
      if (::read(go[0], &byte, 1) != 1) ::_exit(2);
      for (int i = 0; i < 10; ++i) {
        ::usleep(20'000);
        ::kill(parent, SIGSTOP);
        ::usleep(5'000);
        ::kill(parent, SIGCONT);
      }
      ::usleep(20'000);
      ssize_t sent = ::send(source.fd(), "hello", 5, MSG_NOSIGNAL);
      ::_exit(sent == 5 ? 0 : 1);
    }
    ::close(go[0]);
    REQUIRE(::write(go[1], "g", 1) == 1);
    ::close(go[1]);
    std::uint64_t restarted_before = ringloop::Loop::running("test").stats().operations_restarted;
    std::size_t in = co_await io::splice(proxy_in.fd(), pipe_fds[1], 65536, SPLICE_F_MOVE);
    // The helper's exit status says nothing here: under valgrind it is valgrind's own (99,
    // its leak check of the forked copy). The bytes arriving are what shows it did its part.
    ::waitpid(helper, nullptr, 0);
    REQUIRE(in == 5);
    char got[5] = {};
    REQUIRE(::read(pipe_fds[0], got, sizeof got) == 5);
    CHECK(std::string(got, 5) == "hello");
    std::uint64_t restarted =
        ringloop::Loop::running("test").stats().operations_restarted - restarted_before;
    INFO("operations restarted: " << restarted);
    // The kernel interrupts the worker at each stop while the splice waits (10 of 10 here).
    CHECK(restarted >= 1);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  }());
}

// The other side of that rule: the kernel cancels a splice running in an io-wq worker by
// interrupting the worker, so the -EINTR of a cancelled splice (a task's cancel, a timeout()
// scope's deadline) is the cancel arriving, never a reason to go in again.
TEST_CASE("a splice blocked in the kernel ends on cancel and on a timeout() deadline", "[splice]") {
  ringloop::run([]() -> Coro<> {
    auto [source, proxy_in] = co_await tcp_pair();
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    auto splice_in = [](int in, int out) -> Coro<std::size_t> {
      co_return co_await io::splice(in, out, 65536, SPLICE_F_MOVE);  // nothing is ever sent
    };
    auto started = std::chrono::steady_clock::now();
    auto splicing = ringloop::create_task(splice_in(proxy_in.fd(), pipe_fds[1]));
    co_await ringloop::sleep(std::chrono::milliseconds(20));
    splicing.cancel();
    CHECK_THROWS_AS(co_await splicing, ringloop::CancelledError);
    bool timed_out = false;
    try {
      co_await ringloop::timeout(std::chrono::milliseconds(30),
                                 splice_in(proxy_in.fd(), pipe_fds[1]));
    } catch (const ringloop::TimeoutError&) {
      timed_out = true;
    }
    CHECK(timed_out);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    CHECK(seconds < 5.0);  // bounds a hang, not a speed
    CHECK(ringloop::Loop::running("test").stats().operations_restarted == 0);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  }());
}

// The bound on that rule: an operation the kernel keeps interrupting ends with EINTR after 100
// restarts in a row, instead of keeping the loop busy for ever. A helper stops and continues
// this process every 2 ms for over a second while one splice waits.
TEST_CASE("an operation interrupted 100 times in a row ends with EINTR", "[splice][signals]") {
  ringloop::run([]() -> Coro<> {
    auto [source, proxy_in] = co_await tcp_pair();
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    int go[2];
    REQUIRE(::pipe2(go, O_CLOEXEC) == 0);
    // The helper goes on until this pipe ends. It is never killed: killed between a stop and
    // its continue, it would leave this process stopped for good.
    int done[2];
    REQUIRE(::pipe2(done, O_CLOEXEC | O_NONBLOCK) == 0);
    pid_t parent = ::getpid();
    pid_t helper = ::fork();
    REQUIRE(helper >= 0);
    if (helper == 0) {
      ::close(done[1]);
      char byte = 0;
      if (::read(go[0], &byte, 1) != 1) ::_exit(2);
      for (int i = 0; i < 600; ++i) {
        ::usleep(1'000);
        ::kill(parent, SIGSTOP);
        ::usleep(1'000);
        ::kill(parent, SIGCONT);
        if (::read(done[0], &byte, 1) == 0) ::_exit(0);  // the test closed its end
      }
      // Interrupted fewer than 100 times: a byte ends the splice, and the test fails, not hangs.
      (void)::send(source.fd(), "x", 1, MSG_NOSIGNAL);
      ::_exit(0);
    }
    ::close(go[0]);
    ::close(done[0]);
    REQUIRE(::write(go[1], "g", 1) == 1);
    ::close(go[1]);
    std::uint64_t before = ringloop::Loop::running("test").stats().operations_restarted;
    int error = 0;
    try {
      co_await io::splice(proxy_in.fd(), pipe_fds[1], 65536, SPLICE_F_MOVE);  // nothing is sent
    } catch (const std::system_error& e) {
      error = e.code().value();
    }
    ::close(done[1]);
    ::waitpid(helper, nullptr, 0);
    std::uint64_t restarted = ringloop::Loop::running("test").stats().operations_restarted - before;
    INFO("operations restarted: " << restarted);
    CHECK(error == EINTR);
    CHECK(restarted == 100);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  }());
}
