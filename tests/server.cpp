// Server (asyncio's start_server): one task per connection, close() and wait_closed() with
// handlers running, close_clients/abort_clients, a drain deadline, socket options, several hosts,
// and accept's back-off under EMFILE (in a child process with a lowered RLIMIT_NOFILE).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Server;
using ringloop::ServerOptions;
using ringloop::Stream;
using test_support::echo_lines;

namespace {

std::uint16_t port_of(const Server& server, std::size_t i = 0) {
  return ringloop::local_port(server.sockets().at(i));
}

Coro<std::string> round_trip(Stream& stream, std::string line) {
  co_await stream.write(line);
  std::string reply = co_await stream.read_until("\n");
  co_return reply;
}

Coro<bool> connect_refused(std::string host, std::uint16_t port) {
  try {
    Stream stream = co_await ringloop::open_connection(host, port);
  } catch (const std::system_error& error) {
    co_return error.code().value() == ECONNREFUSED;
  }
  co_return false;
}

// What happened to each handler of a test.
struct Outcomes {
  int finished = 0;
  int cancelled = 0;
  int eof = 0;
};

// Reads until the end of the stream; counts how it ended.
Coro<> read_to_end(Stream stream, Outcomes& outcomes) {
  try {
    for (;;) {
      std::string data = co_await stream.read();
      if (data.empty()) break;
    }
    ++outcomes.eof;
  } catch (const CancelledError&) {
    ++outcomes.cancelled;
    throw;
  } catch (const std::system_error&) {  // a reset, after abort_clients
    ++outcomes.eof;
  }
  ++outcomes.finished;
}

}  // namespace

TEST_CASE(
    "a Server runs each connection's handler in its own task, and close() leaves them running",
    "[server]") {
  bool multishot = GENERATE(true, false);
  INFO("multishot_accept = " << multishot);
  ringloop::run([multishot]() -> Coro<> {
    Server server = co_await ringloop::start_server(&echo_lines, "127.0.0.1", 0,
                                                    {.multishot_accept = multishot});
    CHECK(server.is_serving());
    REQUIRE(server.sockets().size() == 1);
    std::uint16_t port = port_of(server);
    Stream a = co_await ringloop::open_connection("127.0.0.1", port);
    Stream b = co_await ringloop::open_connection("127.0.0.1", port);
    std::string from_b = co_await round_trip(b, "b\n");
    std::string from_a = co_await round_trip(a, "a\n");
    CHECK(from_a == "a\n");
    CHECK(from_b == "b\n");
    CHECK(server.active_connections() == 2);

    server.close();
    CHECK_FALSE(server.is_serving());
    CHECK(server.sockets().empty());
    bool refused = co_await connect_refused("127.0.0.1", port);
    CHECK(refused);
    std::string again = co_await round_trip(a, "still\n");  // the handlers go on
    CHECK(again == "still\n");

    auto waiting = ringloop::create_task(server.wait_closed());
    co_await ringloop::sleep(20ms);
    CHECK_FALSE(waiting.done());  // a and b are still being served
    co_await a.close();
    co_await ringloop::sleep(20ms);
    CHECK_FALSE(waiting.done());
    CHECK(server.active_connections() == 1);
    co_await b.close();
    co_await waiting;
    CHECK(server.active_connections() == 0);
  }());
}

TEST_CASE("wait_closed returns once the server is closed and idle, in either order", "[server]") {
  ringloop::run([]() -> Coro<> {
    Server server = co_await ringloop::start_server(&echo_lines, "127.0.0.1", 0);
    auto waiting = ringloop::create_task(server.wait_closed());
    co_await ringloop::sleep(20ms);
    CHECK_FALSE(waiting.done());  // not closed yet (asyncio 3.12.1's rule)
    server.close();
    co_await waiting;
    co_await server.wait_closed();  // and again, at once
  }());
}

TEST_CASE("serve_forever ends when another task closes the server, and on cancel closes it",
          "[server]") {
  ringloop::run([]() -> Coro<> {
    Server server =
        co_await ringloop::start_server(&echo_lines, "127.0.0.1", 0, {.start_serving = false});
    CHECK_FALSE(server.is_serving());
    std::uint16_t port = port_of(server);
    bool refused = co_await connect_refused("127.0.0.1", port);  // bound, not listening
    CHECK(refused);
    auto forever = ringloop::create_task(server.serve_forever());
    co_await ringloop::sleep(0ms);
    CHECK(server.is_serving());
    Stream a = co_await ringloop::open_connection("127.0.0.1", port);
    std::string reply = co_await round_trip(a, "x\n");
    CHECK(reply == "x\n");
    bool second_refused = false;
    try {
      co_await server.serve_forever();  // one at a time
    } catch (const std::logic_error&) {
      second_refused = true;
    }
    CHECK(second_refused);
    server.close();
    co_await ringloop::sleep(20ms);
    CHECK_FALSE(forever.done());  // it waits as wait_closed does
    co_await a.close();
    co_await forever;  // returns normally
  }());
  ringloop::run([]() -> Coro<> {
    Outcomes outcomes;
    Server server = co_await ringloop::start_server(
        [&outcomes](Stream s) { return read_to_end(std::move(s), outcomes); }, "127.0.0.1", 0,
        {.drain_timeout = 50ms});
    auto forever = ringloop::create_task(server.serve_forever());
    Stream idle = co_await ringloop::open_connection("127.0.0.1", port_of(server));
    co_await ringloop::sleep(20ms);
    auto start = std::chrono::steady_clock::now();
    forever.cancel();
    bool cancelled = false;
    try {
      co_await forever;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    CHECK(cancelled);
    CHECK(test_support::seconds_since(start) >= 0.045);  // the drain deadline cut the handler
    CHECK(outcomes.cancelled == 1);
    CHECK(server.active_connections() == 0);
  }());
}

TEST_CASE("a server closed while handlers run loses none of them and closes every fd", "[server]") {
  bool multishot = GENERATE(true, false);
  INFO("multishot_accept = " << multishot);
  int fds_before = test_support::open_fd_count();
  Outcomes outcomes;
  ringloop::run([&outcomes, multishot]() -> Coro<> {
    Server server = co_await ringloop::start_server(
        [&outcomes](Stream s) { return read_to_end(std::move(s), outcomes); }, "127.0.0.1", 0,
        {.drain_timeout = 100ms, .multishot_accept = multishot});
    std::uint16_t port = port_of(server);
    std::vector<Stream> clients;
    for (int i = 0; i < 6; ++i)
      clients.push_back(co_await ringloop::open_connection("127.0.0.1", port));
    co_await ringloop::sleep(20ms);
    REQUIRE(server.active_connections() == 6);
    server.close();
    for (int i = 0; i < 3; ++i) co_await clients[static_cast<std::size_t>(i)].close();
    co_await server.wait_closed();  // three end at EOF, three are cancelled at the deadline
    CHECK(outcomes.eof == 3);
    CHECK(outcomes.cancelled == 3);
    CHECK(outcomes.finished == 3);
  }());
  CHECK(test_support::open_fd_count() == fds_before);
}

TEST_CASE("close_clients cancels the handlers; abort_clients ends their reads", "[server]") {
  ringloop::run([]() -> Coro<> {
    Outcomes outcomes;
    Server server = co_await ringloop::start_server(
        [&outcomes](Stream s) { return read_to_end(std::move(s), outcomes); }, "127.0.0.1", 0);
    std::uint16_t port = port_of(server);
    Stream a = co_await ringloop::open_connection("127.0.0.1", port);
    Stream b = co_await ringloop::open_connection("127.0.0.1", port);
    co_await ringloop::sleep(20ms);
    server.close_clients();
    co_await ringloop::sleep(20ms);
    CHECK(outcomes.cancelled == 2);
    CHECK(server.active_connections() == 0);
    std::string end = co_await a.read();  // the handler's Stream closed as it unwound
    CHECK(end.empty());

    Stream c = co_await ringloop::open_connection("127.0.0.1", port);
    co_await ringloop::sleep(20ms);
    server.abort_clients();
    server.close();
    co_await server.wait_closed();
    CHECK(outcomes.eof == 1);
    CHECK(outcomes.cancelled == 2);
    bool reset = false;
    try {
      std::string data = co_await c.read();
      reset = data.empty();
    } catch (const std::system_error& error) {
      reset = error.code().value() == ECONNRESET;
    }
    CHECK(reset);
  }());
}

TEST_CASE("a handler's exception reaches the exception handler and the server goes on",
          "[server]") {
  std::vector<std::string> reports;
  ringloop::run([&reports]() -> Coro<> {
    ringloop::Loop::current()->set_exception_handler(
        [&reports](ringloop::Loop&, const ringloop::ExceptionContext& context) {
          reports.push_back(context.message);
        });
    int calls = 0;
    Server server = co_await ringloop::start_server(
        [&calls](Stream s) -> Coro<> {
          if (++calls == 1) throw std::runtime_error("first handler broke");
          co_await echo_lines(std::move(s));
        },
        "127.0.0.1", 0);
    Stream a = co_await ringloop::open_connection("127.0.0.1", port_of(server));
    Stream b = co_await ringloop::open_connection("127.0.0.1", port_of(server));
    std::string reply = co_await round_trip(b, "ok\n");
    CHECK(reply == "ok\n");
    co_await b.close();
    server.close();
    co_await server.wait_closed();
  }());
  REQUIRE(reports.size() == 1);
  CHECK(reports[0] == "a connection handler failed");
}

TEST_CASE("start_server sets its socket options on the accepted sockets", "[server]") {
  ringloop::run([]() -> Coro<> {
    int nodelay = -1, keepalive = -1, rcvbuf = -1;
    auto handler = [&](Stream s) -> Coro<> {
      socklen_t length = sizeof(int);
      ::getsockopt(s.socket().fd(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &length);
      ::getsockopt(s.socket().fd(), SOL_SOCKET, SO_KEEPALIVE, &keepalive, &length);
      ::getsockopt(s.socket().fd(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, &length);
      co_await s.write("done\n");
    };
    Server server = co_await ringloop::start_server(
        handler, "127.0.0.1", 0, {.keep_alive = true, .receive_buffer_bytes = 64 * 1024});
    Stream a = co_await ringloop::open_connection("127.0.0.1", port_of(server));
    std::string reply = co_await a.read_until("\n");
    CHECK(reply == "done\n");
    CHECK(nodelay == 1);
    CHECK(keepalive == 1);
    CHECK(rcvbuf >= 64 * 1024);  // the kernel doubles it for its bookkeeping
    server.close();
    co_await server.wait_closed();
  }());
}

TEST_CASE("reuse_port lets two servers share a port; without it the bind error names the address",
          "[server]") {
  ringloop::run([]() -> Coro<> {
    Server first =
        co_await ringloop::start_server(&echo_lines, "127.0.0.1", 0, {.reuse_port = true});
    std::uint16_t port = port_of(first);
    Server second =
        co_await ringloop::start_server(&echo_lines, "127.0.0.1", port, {.reuse_port = true});
    CHECK(port_of(second) == port);
    std::string message;
    int code = 0;
    try {
      Server third = co_await ringloop::start_server(&echo_lines, "127.0.0.1", port);
    } catch (const std::system_error& error) {
      message = error.what();
      code = error.code().value();
    }
    CHECK(code == EADDRINUSE);
    CHECK_THAT(message, Catch::Contains("bind to '127.0.0.1' port " + std::to_string(port)));
    // A host is resolved (asyncio binds every address of a name): one that does not resolve
    // is a GaiError naming it.
    std::string unresolved;
    try {
      Server fourth = co_await ringloop::start_server(&echo_lines, "no-such-host.invalid", 0);
    } catch (const ringloop::GaiError& error) {
      unresolved = error.what();
    }
    CHECK_THAT(unresolved, Catch::Contains("no-such-host.invalid"));
  }());
}

TEST_CASE("start_server binds each host of a list, and \"\" binds every interface", "[server]") {
  ringloop::run([]() -> Coro<> {
    std::vector<std::string> hosts = {"127.0.0.1", "::1"};
    Server both = co_await ringloop::start_server(&echo_lines, hosts, 0);
    REQUIRE(both.sockets().size() == 2);
    Stream v4 = co_await ringloop::open_connection("127.0.0.1", port_of(both, 0));
    Stream v6 = co_await ringloop::open_connection("::1", port_of(both, 1));
    std::string r4 = co_await round_trip(v4, "4\n");
    std::string r6 = co_await round_trip(v6, "6\n");
    CHECK(r4 == "4\n");
    CHECK(r6 == "6\n");

    Server any = co_await ringloop::start_server(&echo_lines, "", 0);
    REQUIRE(any.sockets().size() == 2);  // 0.0.0.0 and ::, IPV6_V6ONLY on the second
    Stream local = co_await ringloop::open_connection("127.0.0.1", port_of(any, 0));
    std::string r = co_await round_trip(local, "any\n");
    CHECK(r == "any\n");
  }());
}

TEST_CASE("start_server binds every address a host name resolves to", "[server][host]") {
  // The machine's own name, as asyncio's start_server(host=name) binds each of its addresses
  // (the same list getaddrinfo gives with AI_PASSIVE); each socket answers on its address.
  char name[256] = {};
  REQUIRE(::gethostname(name, sizeof name - 1) == 0);
  ringloop::run([](std::string host) -> Coro<> {
    std::vector<ringloop::AddrInfo> infos =
        co_await ringloop::getaddrinfo(host, 0, AF_UNSPEC, SOCK_STREAM, 0, AI_PASSIVE);
    REQUIRE_FALSE(infos.empty());
    Server server = co_await ringloop::start_server(&echo_lines, host, 0);
    REQUIRE_FALSE(server.sockets().empty());
    CHECK(server.sockets().size() <= infos.size());
    auto host_of = [](const ringloop::SocketAddress& address) {
      return ringloop::detail::host_text(address);  // "127.0.1.1", "::1"
    };
    for (std::size_t i = 0; i < server.sockets().size(); ++i) {
      ringloop::SocketAddress bound;
      bound.length = sizeof bound.storage;
      REQUIRE(::getsockname(server.sockets()[i].fd(), reinterpret_cast<sockaddr*>(&bound.storage),
                            &bound.length) == 0);
      bool listed = false;
      for (const ringloop::AddrInfo& info : infos)
        listed = listed || host_of(info.address) == host_of(bound);
      CHECK(listed);
      Stream stream = co_await ringloop::open_connection(host_of(bound), bound.port());
      std::string reply = co_await round_trip(stream, "by name\n");
      CHECK(reply == "by name\n");
    }
  }(name));
}

TEST_CASE("accept backs off under EMFILE, reports once per episode, and serves again",
          "[server][rlimit]") {
  bool multishot = GENERATE(true, false);
  INFO("multishot_accept = " << multishot);
  int results[2];
  REQUIRE(::pipe2(results, O_CLOEXEC) == 0);
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child == 0) {
    test_support::in_forked_child();
    ::close(results[0]);
    int out = results[1];
    ringloop::run([out, multishot]() -> Coro<> {
      int shortages = 0, recoveries = 0, others = 0, served = 0;
      ringloop::Loop::current()->set_exception_handler(
          [&](ringloop::Loop&, const ringloop::ExceptionContext& context) {
            if (context.message.rfind("accept failed", 0) == 0)
              ++shortages;
            else if (context.message.rfind("accept succeeds again", 0) == 0)
              ++recoveries;
            else
              ++others;
          });
      Server server = co_await ringloop::start_server(
          [&served](Stream s) -> Coro<> {
            ++served;
            co_await s.write("hello\n");
          },
          "127.0.0.1", 0, {.multishot_accept = multishot});
      // UBSan's vptr check of a call through std::error_category validates the object's
      // memory with a pipe the first time it meets the type; with every descriptor taken it
      // cannot, and reports a false "invalid vptr" (whether an earlier test made that call first
      // depends on the order). Making the call here, with descriptors to spare, settles it.
      (void)std::system_category().message(EMFILE);
      (void)std::generic_category().message(EMFILE);
      try {
        throw std::system_error(EMFILE, std::system_category(), "accept");
      } catch (const std::system_error& e) {
        (void)e.code();
        (void)e.what();
      }
      // A low limit, then every descriptor taken: each accept fails with EMFILE.
      rlimit limit{};
      ::getrlimit(RLIMIT_NOFILE, &limit);
      limit.rlim_cur = std::min<rlim_t>(limit.rlim_cur, 256);
      ::setrlimit(RLIMIT_NOFILE, &limit);
      std::vector<int> fillers;
      for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
      std::uint16_t port = port_of(server);
      (void)!::write(out, &port, sizeof(port));
      co_await ringloop::sleep(400ms);  // about six failed accepts: 10, 20, 40, 80, 160 ms apart
      for (int fd : fillers) ::close(fd);
      for (int i = 0; i < 2500 && served < 3; ++i) co_await ringloop::sleep(10ms);
      int counts[4] = {shortages, recoveries, others, served};
      (void)!::write(out, counts, sizeof(counts));
      server.close();
      co_await server.wait_closed();
    }());
    ::_exit(0);
  }
  ::close(results[1]);
  std::uint16_t port = 0;
  REQUIRE(::read(results[0], &port, sizeof(port)) == sizeof(port));
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval limit{30, 0};  // generous: the machine may be loaded
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    ringloop::SocketAddress address = ringloop::make_address("127.0.0.1", port);
    CHECK(::connect(fd, address.get(), address.length) == 0);  // queued in the backlog
    clients.push_back(fd);
  }
  for (int fd : clients) {
    char reply[6] = {};
    ssize_t got = -1;
    do  // a signal another test left a handler for may interrupt it
      got = ::recv(fd, reply, sizeof(reply), MSG_WAITALL);
    while (got < 0 && errno == EINTR);
    INFO("recv: " << (got < 0 ? std::strerror(errno) : "") << " after " << got);
    CHECK(got == 6);
    CHECK(std::string(reply, 6) == "hello\n");
    ::close(fd);
  }
  int counts[4] = {-1, -1, -1, -1};
  CHECK(::read(results[0], counts, sizeof(counts)) == sizeof(counts));
  ::close(results[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(counts[0] == 1);  // one report for the whole episode, not one per retry
  CHECK(counts[1] == 1);  // and one when accept works again
  CHECK(counts[2] == 0);
  CHECK(counts[3] == 3);
}
