// TCP streams over loopback: listen_tcp + serve + open_connection, Stream's read, read_exactly,
// read_until and write, 1,000 concurrent connections, shutting a server down, and the owning
// types' close (through the ring when a loop runs).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Socket;
using ringloop::Stream;

namespace {

// Echoes lines until the client ends the stream.
Coro<> echo_lines(Stream stream) {
  try {
    for (;;) {
      std::string line = co_await stream.read_until("\n");
      co_await stream.write(line);
    }
  } catch (const ringloop::IncompleteReadError&) {
  }
  co_await stream.close();
}

Coro<std::string> ask(std::string host, std::uint16_t port, std::string line) {
  Stream stream = co_await ringloop::open_connection(host, port);
  co_await stream.write(line);
  std::string answer = co_await stream.read_until("\n");
  co_await stream.write_eof();
  co_return answer;
}

}  // namespace

TEST_CASE("serve and open_connection echo a line over IPv4 and IPv6", "[io][stream]") {
  for (const char* host : {"127.0.0.1", "::1", "localhost"}) {
    INFO(host);
    std::string answer = ringloop::run([](std::string h) -> Coro<std::string> {
      Socket listener = ringloop::listen_tcp(h, 0);
      auto server = ringloop::create_task(ringloop::serve(listener, &echo_lines));
      std::string reply = co_await ask(h, ringloop::local_port(listener), "hello\n");
      server.cancel();
      CHECK_THROWS_AS(co_await server, CancelledError);
      co_return reply;
    }(host));
    CHECK(answer == "hello\n");
  }
}

TEST_CASE("Stream: read, read_exactly, read_until across partial reads, and their errors",
          "[io][stream]") {
  ringloop::run([]() -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    Stream client = co_await ringloop::open_connection("127.0.0.1", ringloop::local_port(listener));
    Stream server(co_await listener.accept());
    // Written in small pieces, so each read spans several recvs.
    auto writer = ringloop::create_task([](Stream& s) -> Coro<> {
      // A named array: g++ 12 mishandles an initializer_list range across a co_await.
      static constexpr const char* kPieces[] = {"ab", "cd", "ef\nli", "ne two", "\r\nrest"};
      for (const char* piece : kPieces) {
        co_await s.write(piece);
        co_await ringloop::sleep(1ms);
      }
      co_await s.write_eof();
    }(client));
    std::string four = co_await server.read_exactly(4);
    CHECK(four == "abcd");
    std::string line = co_await server.read_until("\n");
    CHECK(line == "ef\n");
    std::string crlf = co_await server.read_until("\r\n");
    CHECK(crlf == "line two\r\n");
    std::string some = co_await server.read(2);
    CHECK(some == "re");
    try {
      co_await server.read_exactly(10);
      FAIL("read_exactly past the end of the stream succeeded");
    } catch (const ringloop::IncompleteReadError& error) {
      CHECK(error.partial == "st");
      CHECK(error.expected == 10);
    }
    std::string end = co_await server.read();
    CHECK(end.empty());
    co_await writer;
  }());
}

TEST_CASE("read_until without a separator within its limit throws LimitOverrunError",
          "[io][stream]") {
  ringloop::run([]() -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    Stream client = co_await ringloop::open_connection("127.0.0.1", ringloop::local_port(listener));
    Stream server(co_await listener.accept());
    co_await client.write(std::string(100, 'x'));
    CHECK_THROWS_AS(co_await server.read_until("\n", 64), ringloop::LimitOverrunError);
  }());
}

TEST_CASE("an echo server serves 1,000 concurrent connections", "[io][stream][scale]") {
  constexpr int kClients = 1000;
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  if (files.rlim_cur < 4 * kClients && files.rlim_max >= 4 * kClients) {
    files.rlim_cur = 4 * kClients;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  int matched = ringloop::run([]() -> Coro<int> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    std::uint16_t port = ringloop::local_port(listener);
    auto server = ringloop::create_task(ringloop::serve(listener, &echo_lines));
    std::vector<Coro<std::string>> clients;
    for (int i = 0; i < kClients; ++i)
      clients.push_back(ask("127.0.0.1", port, "client " + std::to_string(i) + "\n"));
    std::vector<std::string> answers = co_await ringloop::gather(clients);
    int same = 0;
    for (int i = 0; i < kClients; ++i)
      same += answers[static_cast<std::size_t>(i)] == "client " + std::to_string(i) + "\n";
    server.cancel();
    CHECK_THROWS_AS(co_await server, CancelledError);
    co_return same;
  }());
  CHECK(matched == kClients);
}

namespace {
Coro<> wait_forever(Stream stream, int& cancelled) {
  try {
    co_await stream.read();
  } catch (const CancelledError&) {
    ++cancelled;
    throw;
  }
}
}  // namespace

TEST_CASE("cancelling serve stops accepting and cancels every connection task",
          "[io][stream][cancel]") {
  int cancelled = 0;
  ringloop::run([](int& count) -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    std::uint16_t port = ringloop::local_port(listener);
    // A capturing handler is fine: serve's frame holds it until every connection ended.
    auto server = ringloop::create_task(ringloop::serve(
        listener, [&count](Stream s) { return wait_forever(std::move(s), count); }));
    std::vector<Stream> clients;
    for (int i = 0; i < 10; ++i)
      clients.push_back(co_await ringloop::open_connection("127.0.0.1", port));
    co_await ringloop::sleep(5ms);
    server.cancel();
    CHECK_THROWS_AS(co_await server, CancelledError);
    CHECK(count == 10);
    // The listener no longer accepts: a connection waits in the backlog, unanswered.
    Stream late = co_await ringloop::open_connection("127.0.0.1", port);
    char buffer[4] = {};
    CHECK_THROWS_AS(co_await ringloop::wait_for(late.socket().recv(buffer, sizeof(buffer)), 20ms),
                    ringloop::TimeoutError);
  }(cancelled));
  CHECK(cancelled == 10);
}

TEST_CASE("an owning Socket closes its fd on destruction, through the ring in a loop",
          "[io][stream]") {
  ringloop::run([]() -> Coro<> {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    auto before = ringloop::Loop::current()->stats().cqes_reaped;
    { Socket owner(fds[0]); }
    { ringloop::File file(fds[1]); }
    co_await ringloop::io::nop();
    CHECK(::fcntl(fds[0], F_GETFD) == -1);
    CHECK(::fcntl(fds[1], F_GETFD) == -1);
    CHECK(ringloop::Loop::current()->stats().cqes_reaped - before >= 3);  // 2 closes + nop
  }());
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  { Socket owner(fds[0]); }  // no loop: ::close
  CHECK(::fcntl(fds[0], F_GETFD) == -1);
  ::close(fds[1]);
}

TEST_CASE("addresses are numeric; a name is a clear error", "[io][stream]") {
  CHECK(ringloop::make_address("127.0.0.1", 80).family() == AF_INET);
  CHECK(ringloop::make_address("[::1]", 80).family() == AF_INET6);
  CHECK_THROWS_WITH(ringloop::make_address("example.com", 80),
                    Catch::Contains("does not resolve names"));
}
