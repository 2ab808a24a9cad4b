// Unix domain sockets: start_unix_server / open_unix_connection over a socket file and an
// abstract name, the file's removal on close (only while it is ours), the bad paths, and
// descriptors passed with send_fds / recv_fds (SCM_RIGHTS), MSG_CTRUNC included.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Server;
using ringloop::Socket;
using ringloop::Stream;
using test_support::echo_lines;

namespace {

std::string temp_path(const char* name) {
  return "/tmp/ringloop-unix-" + std::to_string(::getpid()) + "-" + name;
}

bool is_socket_file(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0 && S_ISSOCK(status.st_mode);
}

bool exists(const std::string& path) {
  struct stat status {};
  return ::lstat(path.c_str(), &status) == 0;
}

Coro<std::string> round_trip(Stream& stream, std::string line) {
  co_await stream.write(line);
  std::string reply = co_await stream.read_until("\n");
  co_return reply;
}

}  // namespace

TEST_CASE("a Unix server echoes through its socket file and removes the file on close", "[unix]") {
  std::string path = temp_path("echo.sock");
  ringloop::run([path]() -> Coro<> {
    Server server = co_await ringloop::start_unix_server(&echo_lines, path);
    CHECK(is_socket_file(path));
    Stream client = co_await ringloop::open_unix_connection(path);
    std::string reply = co_await round_trip(client, "over a unix socket\n");
    CHECK(reply == "over a unix socket\n");
    co_await client.close();
    server.close();
    CHECK_FALSE(exists(path));  // removed by close(), as asyncio 3.13's cleanup_socket
    co_await server.wait_closed();
  }());
}

TEST_CASE("a Unix socket file replaced by someone else is left alone on close", "[unix]") {
  std::string path = temp_path("replaced.sock");
  ringloop::run([path]() -> Coro<> {
    Server server = co_await ringloop::start_unix_server(&echo_lines, path);
    ::unlink(path.c_str());
    int other = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ringloop::SocketAddress address = ringloop::unix_address(path);
    REQUIRE(::bind(other, address.get(), address.length) == 0);
    server.close();
    CHECK(is_socket_file(path));  // another inode: not ours to remove
    ::close(other);
    ::unlink(path.c_str());
    co_await server.wait_closed();
  }());
}

TEST_CASE("a stale socket file is replaced; a path that is not a socket is refused", "[unix]") {
  std::string stale = temp_path("stale.sock");
  int dead = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ringloop::SocketAddress address = ringloop::unix_address(stale);
  REQUIRE(::bind(dead, address.get(), address.length) == 0);
  ::close(dead);  // the file stays, as after a server that died
  std::string regular = temp_path("regular-file");
  ::close(::open(regular.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  ringloop::run([stale, regular]() -> Coro<> {
    Server server = co_await ringloop::start_unix_server(&echo_lines, stale);
    Stream client = co_await ringloop::open_unix_connection(stale);
    std::string reply = co_await round_trip(client, "fresh\n");
    CHECK(reply == "fresh\n");
    co_await client.close();
    server.close();
    co_await server.wait_closed();

    std::string message;
    int code = 0;
    try {
      Server refused = co_await ringloop::start_unix_server(&echo_lines, regular);
    } catch (const std::system_error& error) {
      message = error.what();
      code = error.code().value();
    }
    CHECK(code == EADDRINUSE);
    CHECK_THAT(message, Catch::Contains("'" + regular + "' exists and is not a socket"));
  }());
  struct stat status {};
  CHECK(::stat(regular.c_str(), &status) == 0);  // untouched
  CHECK(S_ISREG(status.st_mode));
  ::unlink(regular.c_str());
}

TEST_CASE("a Unix path longer than sun_path is refused with its length", "[unix]") {
  std::string long_path = "/tmp/" + std::string(150, 'x');
  try {
    ringloop::unix_address(long_path);
    FAIL("no error");
  } catch (const std::invalid_argument& error) {
    CHECK_THAT(error.what(), Catch::Contains("is 155 bytes long; sun_path holds at most 107"));
  }
  ringloop::run([long_path]() -> Coro<> {
    CHECK_THROWS_AS(co_await ringloop::start_unix_server(&echo_lines, long_path),
                    std::invalid_argument);
    CHECK_THROWS_AS(co_await ringloop::open_unix_connection(long_path), std::invalid_argument);
  }());
  CHECK_NOTHROW(ringloop::unix_address(std::string(107, 'y')));
  CHECK_THROWS_AS(ringloop::unix_address(std::string(108, 'y')), std::invalid_argument);
  CHECK_NOTHROW(ringloop::unix_address(std::string(1, '\0') + std::string(107, 'z')));
  CHECK_THROWS_AS(ringloop::unix_address(std::string("a\0b", 3)), std::invalid_argument);
  CHECK_THROWS_AS(ringloop::unix_address(""), std::invalid_argument);
}

TEST_CASE("connecting to a missing Unix path names the path", "[unix]") {
  std::string path = temp_path("nobody-here.sock");
  ringloop::run([path]() -> Coro<> {
    std::string message;
    int code = 0;
    try {
      Stream stream = co_await ringloop::open_unix_connection(path);
    } catch (const std::system_error& error) {
      message = error.what();
      code = error.code().value();
    }
    CHECK(code == ENOENT);
    CHECK_THAT(message, Catch::Contains("connect to unix socket '" + path + "' failed"));
  }());
}

TEST_CASE("an abstract Unix name ('\\0' first) serves without a file", "[unix]") {
  std::string name = std::string(1, '\0') + "ringloop-test-" + std::to_string(::getpid());
  ringloop::run([name]() -> Coro<> {
    Server server = co_await ringloop::start_unix_server(&echo_lines, name);
    Stream client = co_await ringloop::open_unix_connection(name);
    std::string reply = co_await round_trip(client, "abstract\n");
    CHECK(reply == "abstract\n");
    co_await client.close();
    server.close();
    co_await server.wait_closed();
    std::string message;
    try {
      Stream gone = co_await ringloop::open_unix_connection(name);
    } catch (const std::system_error& error) {
      message = error.what();
    }
    CHECK_THAT(message, Catch::Contains("'@ringloop-test-"));
  }());
}

TEST_CASE("send_fds passes descriptors that recv_fds receives close-on-exec", "[unix]") {
  std::string path = temp_path("fds.sock");
  ringloop::run([path]() -> Coro<> {
    // The handler receives a pipe's read end and answers with what it reads there.
    Server server = co_await ringloop::start_unix_server(
        [](Stream stream) -> Coro<> {
          ringloop::ReceivedFds received = co_await ringloop::recv_fds(stream, 64, 4);
          std::string answer = received.data + ":" + std::to_string(received.fds.size());
          if (received.fds.size() == 1) {
            int flags = ::fcntl(received.fds[0].fd(), F_GETFD);
            answer += (flags & FD_CLOEXEC) != 0 ? ":cloexec:" : ":inheritable:";
            char buffer[16] = {};
            std::size_t n =
                co_await ringloop::io::read(received.fds[0].fd(), buffer, sizeof(buffer));
            answer += std::string(buffer, n);
          }
          co_await stream.write(answer + "\n");
        },
        path);
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    REQUIRE(::write(pipe_fds[1], "through", 7) == 7);
    Stream client = co_await ringloop::open_unix_connection(path);
    int fds[] = {pipe_fds[0]};
    std::size_t sent = co_await ringloop::send_fds(client, "fd", fds);
    CHECK(sent == 2);
    std::string answer = co_await client.read_until("\n");
    CHECK(answer == "fd:1:cloexec:through\n");
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    co_await client.close();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST_CASE("recv_fds reports MSG_CTRUNC and leaks none of the descriptors", "[unix]") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  int before = test_support::open_fd_count();
  ringloop::run([&pair]() -> Coro<> {
    Socket a(pair[0]);
    Socket b(pair[1]);
    int three[] = {0, 1, 2};
    co_await ringloop::send_fds(a, "abc", three);
    std::string data;
    std::string message;
    try {
      ringloop::ReceivedFds received = co_await ringloop::recv_fds(b, 16, 1);
    } catch (const ringloop::FdsTruncatedError& error) {
      data = error.data;
      message = error.what();
    }
    CHECK(data == "abc");
    CHECK_THAT(message, Catch::Contains("MSG_CTRUNC"));
    // Nothing sent: a closed peer reads as empty.
    co_await a.close();
    ringloop::ReceivedFds end = co_await ringloop::recv_fds(b, 16, 1);
    CHECK(end.data.empty());
    CHECK(end.fds.empty());
  }());
  CHECK(test_support::open_fd_count() ==
        before - 2);  // the pair closed; not one received descriptor left open
  CHECK_THROWS_AS(ringloop::run(ringloop::send_fds(Socket(), "", {})), std::invalid_argument);
}
