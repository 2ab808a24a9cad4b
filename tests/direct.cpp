// Direct descriptors (issue #18): a sparse file table per loop, accept/socket/openat into a slot
// the kernel picks (IORING_FILE_INDEX_ALLOC), operations with IOSQE_FIXED_FILE, close through
// IORING_OP_CLOSE on the slot or by clearing it on destruction, and the errors (a second table,
// a full table, a missing path, a kernel older than 5.19).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <system_error>

#include <ringloop/ringloop.hpp>

using ringloop::Coro;
using ringloop::DirectFd;
using ringloop::DirectFileTable;
using ringloop::Loop;
using ringloop::Socket;
using ringloop::Stream;
namespace io = ringloop::io;

namespace {

Coro<std::string> recv_some(const DirectFd& fd) {
  char buffer[64] = {};
  std::size_t n = co_await fd.recv(buffer, sizeof buffer);
  co_return std::string(buffer, n);
}

}  // namespace

TEST_CASE("a connection accepted into the file table echoes through IOSQE_FIXED_FILE", "[fixed]") {
  ringloop::run([]() -> Coro<> {
    DirectFileTable table(*Loop::current(), 64);
    CHECK(table.slots() == 64);
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    auto accepting = ringloop::create_task(io::accept_direct(listener.fd()));
    Stream client = co_await ringloop::open_connection("127.0.0.1", ringloop::local_port(listener));
    DirectFd server = co_await std::move(accepting);
    REQUIRE(server.valid());
    CHECK(server.index() >= 0);
    CHECK(server.index() < 64);
    co_await client.write("ping\n");
    std::string got = co_await recv_some(server);
    CHECK(got == "ping\n");
    std::size_t sent = co_await server.send("pong\n", 5);
    CHECK(sent == 5);
    std::string reply = co_await client.read_until("\n");
    CHECK(reply == "pong\n");
    co_await server.shutdown(SHUT_WR);
    std::string rest = co_await client.read();
    CHECK(rest.empty());  // the end of the stream: the shutdown went to the right socket
    co_await server.close();
    CHECK_FALSE(server.valid());
    co_await server.close();  // a second close does nothing
  }());
}

TEST_CASE("a direct socket connects and sends; dropping a DirectFd closes its socket", "[fixed]") {
  ringloop::run([]() -> Coro<> {
    DirectFileTable table(*Loop::current(), 8);
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    auto address = ringloop::make_address("127.0.0.1", ringloop::local_port(listener));
    auto accepting = ringloop::create_task(listener.accept());
    Socket peer;
    {
      DirectFd client = co_await io::socket_direct(AF_INET, SOCK_STREAM);
      co_await client.connect(address.get(), address.length);
      peer = co_await std::move(accepting);
      std::size_t sent = co_await client.send("direct", 6);
      CHECK(sent == 6);
      char buffer[16] = {};
      std::size_t n = co_await peer.recv(buffer, sizeof buffer);
      CHECK(std::string(buffer, n) == "direct");
    }  // the slot is cleared: the kernel closes the socket, and the peer reads the end
    char buffer[16] = {};
    std::size_t n = co_await peer.recv(buffer, sizeof buffer);
    CHECK(n == 0);
  }());
}

TEST_CASE("openat_direct reads a file through its slot; a missing path is named", "[fixed]") {
  char path[] = "/tmp/ringloop-direct-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "file bytes", 10) == 10);
  ::close(fd);
  ringloop::run([](std::string p) -> Coro<> {
    DirectFileTable table(*Loop::current(), 4);
    DirectFd file = co_await io::openat_direct(AT_FDCWD, p.c_str(), O_RDONLY);
    char buffer[32] = {};
    std::size_t n = co_await file.read(buffer, sizeof buffer, 0);
    CHECK(std::string(buffer, n) == "file bytes");
    std::string missing = p + ".missing";
    try {
      co_await io::openat_direct(AT_FDCWD, missing.c_str(), O_RDONLY);
      FAIL("openat_direct of a missing path succeeded");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == ENOENT);
      CHECK_THAT(e.what(), Catch::StartsWith("openat_direct " + missing + ": "));
    }
  }(path));
  ::unlink(path);
}

TEST_CASE("install_direct puts an open socket into a slot; both stay usable", "[fixed]") {
  ringloop::run([]() -> Coro<> {
    DirectFileTable table(*Loop::current(), 4);
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    DirectFd direct = co_await io::install_direct(fds[0]);
    CHECK(direct.valid());
    std::size_t sent = co_await direct.send("slot", 4);
    CHECK(sent == 4);
    char buffer[8] = {};
    CHECK(::read(fds[1], buffer, sizeof buffer) == 4);
    CHECK(std::string(buffer, 4) == "slot");
    CHECK(::write(fds[0], "fd", 2) == 2);  // the fd itself still works
    ::close(fds[0]);
    ::close(fds[1]);
  }());
}

TEST_CASE("a second file table and a full table are errors that say so", "[fixed]") {
  ringloop::run([]() -> Coro<> {
    DirectFileTable table(*Loop::current(), 1);
    try {
      DirectFileTable second(*Loop::current(), 1);
      FAIL("a second file table was accepted");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == EBUSY);
      CHECK_THAT(e.what(), Catch::Contains("one per loop"));
    }
    DirectFd first = co_await io::socket_direct(AF_INET, SOCK_STREAM);
    CHECK(first.valid());
    try {
      co_await io::socket_direct(AF_INET, SOCK_STREAM);
      FAIL("a socket went into a full table");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == ENFILE);
      CHECK_THAT(e.what(), Catch::StartsWith("socket_direct"));
    }
  }());
}

TEST_CASE("on a kernel older than 5.19, accept_direct fails naming the version", "[fixed][probe]") {
  struct Masked {
    Masked() { ringloop::Probe::mask_opcodes_for_tests({IORING_OP_SOCKET}); }
    ~Masked() { ringloop::Probe::mask_opcodes_for_tests({}); }
  } masked;
  ringloop::run([]() -> Coro<> {
    try {
      co_await io::accept_direct(0);
      FAIL("accept_direct ran on a kernel without slot allocation");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == ENOSYS);
      CHECK_THAT(e.what(), Catch::Contains("needs Linux 5.19"));
    }
  }());
}
