// Multishot accept (coro/io/multishot.hpp): one SQE accepts every connection, a slow consumer
// pauses it at its bound without losing a connection, and cancel ends the stream after the
// kernel's last CQE, also when the loop closes with the stream held outside any task.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <ringloop/coro/io/multishot.hpp>
#include <ringloop/ringloop.hpp>
#include "tests/loopback.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Socket;

namespace {

using test_support::connect_to;

}  // namespace

TEST_CASE("multishot accept gives every connection from one SQE", "[multishot]") {
  constexpr int kClients = 50;
  std::set<int> fds;
  std::uint64_t arms = 0;
  ringloop::run([](std::set<int>& seen, std::uint64_t& armed) -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    auto accepts = ringloop::multishot_accept(listener);
    std::vector<Socket> clients;
    for (int i = 0; i < kClients; ++i)
      clients.push_back(connect_to(ringloop::local_port(listener)));
    std::vector<Socket> accepted;
    for (int i = 0; i < kClients; ++i) {
      std::optional<Socket> connection = co_await accepts.next();
      REQUIRE(connection.has_value());
      seen.insert(connection->fd());
      accepted.push_back(std::move(*connection));
    }
    armed = accepts.arms();
  }(fds, arms));
  CHECK(fds.size() == kClients);
  CHECK(arms == 1);
}

TEST_CASE("cancelling a multishot accept ends the stream once its last CQE is in", "[multishot]") {
  ringloop::run([]() -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    auto accepts = ringloop::multishot_accept(listener);
    CHECK(accepts.armed());
    accepts.cancel();
    std::optional<Socket> end = co_await accepts.next();
    CHECK_FALSE(end.has_value());
    CHECK_FALSE(accepts.armed());  // the kernel's last CQE came before the end
    std::optional<Socket> again = co_await accepts.next();
    CHECK_FALSE(again.has_value());
    CHECK(ringloop::Loop::current()->in_flight() == 0);
  }());
}

constexpr std::size_t kSlowClients = 40;

TEST_CASE("a slow consumer pauses multishot accept at its bound and loses no connection",
          "[multishot]") {
  ringloop::run([]() -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    auto accepts = ringloop::multishot_accept(listener, SOCK_CLOEXEC, /*max_queued=*/4);
    std::vector<Socket> clients;
    for (int i = 0; i < 4; ++i) clients.push_back(connect_to(ringloop::local_port(listener)));
    co_await ringloop::sleep(20ms);  // the kernel accepts them: the queue is full, and paused
    CHECK(accepts.queued() == 4);
    CHECK_FALSE(accepts.armed());
    while (clients.size() < kSlowClients)
      clients.push_back(connect_to(ringloop::local_port(listener)));
    co_await ringloop::sleep(20ms);
    CHECK(accepts.queued() == 4);  // the others wait in the listen backlog, not in memory
    std::set<int> fds;
    std::vector<Socket> accepted;
    for (std::size_t i = 0; i < kSlowClients; ++i) {
      std::optional<Socket> connection = co_await accepts.next();
      REQUIRE(connection.has_value());
      fds.insert(connection->fd());
      accepted.push_back(std::move(*connection));
    }
    CHECK(fds.size() == kSlowClients);
    CHECK(accepts.arms() > 1);
  }());
}

TEST_CASE("a multishot accept stream destroyed with connections queued closes them",
          "[multishot]") {
  ringloop::run([]() -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    std::vector<Socket> clients;
    {
      auto accepts = ringloop::multishot_accept(listener);
      for (int i = 0; i < 3; ++i) clients.push_back(connect_to(ringloop::local_port(listener)));
      for (int i = 0; i < 100 && accepts.queued() < 3; ++i) co_await ringloop::sleep(1ms);
      CHECK(accepts.queued() == 3);
    }  // cancelled; the record frees itself at its last CQE
    co_await ringloop::sleep(10ms);
    for (Socket& client : clients) {
      char byte = 0;
      CHECK(::recv(client.fd(), &byte, 1, MSG_DONTWAIT) == 0);  // the server's end was closed
    }
    CHECK(ringloop::Loop::current()->in_flight() == 0);
  }());
}

TEST_CASE("a multishot stream held outside any task ends when its loop closes, and may outlive it",
          "[multishot]") {
  using Accepts = decltype(ringloop::multishot_accept(std::declval<const Socket&>()));
  int fds_before = test_support::open_fd_count();
  std::optional<Socket> listener;
  std::optional<Accepts> held;  // no task holds it: Loop::close must end it
  std::vector<Socket> clients;
  {
    ringloop::Loop loop;
    loop.run_until_complete(
        [](std::optional<Socket>& l, std::optional<Accepts>& h, std::vector<Socket>& c) -> Coro<> {
          l.emplace(ringloop::listen_tcp("127.0.0.1", 0));
          h.emplace(ringloop::multishot_accept(*l));
          c.push_back(connect_to(ringloop::local_port(*l)));
          for (int i = 0; i < 1000 && h->queued() < 1; ++i) co_await ringloop::sleep(1ms);
        }(listener, held, clients));
    REQUIRE(held->queued() == 1);
    CHECK(held->armed());
    loop.close();  // cancels the accept and reaps its last CQE (it waited for ever before)
    CHECK_FALSE(held->armed());
    CHECK(held->queued() == 1);  // what was accepted stays, to be taken or released
    CHECK(loop.in_flight() == 0);
  }
  held.reset();  // after the loop is gone: closes the queued connection, touches no loop
  char byte = 0;
  CHECK(::recv(clients[0].fd(), &byte, 1, MSG_DONTWAIT) == 0);  // the server's end was closed
  clients.clear();
  listener.reset();
  CHECK(test_support::open_fd_count() == fds_before);
}

TEST_CASE("a multishot record's result queue keeps order through bursts and holds nothing empty",
          "[multishot]") {
  ringloop::detail::CqeFifo fifo;
  CHECK(fifo.empty());
  std::int32_t next_in = 0, next_out = 0;
  auto push = [&](int count) {
    for (int i = 0; i < count; ++i) fifo.push_back({next_in++, 0});
  };
  auto pop = [&](int count) {
    for (int i = 0; i < count; ++i) {
      REQUIRE_FALSE(fifo.empty());
      CHECK(fifo.front().result == next_out++);
      fifo.pop_front();
    }
  };
  push(200);
  pop(100);  // more than half taken from the front: the next push compacts
  push(50);
  CHECK(fifo.size() == 150);
  std::int32_t expected = next_out;
  for (const ringloop::MultishotCqe& cqe : fifo) CHECK(cqe.result == expected++);
  pop(150);
  CHECK(fifo.empty());
  push(3);  // after a burst: small again
  pop(2);
  push(1);
  pop(2);
  CHECK(fifo.empty());
  CHECK(fifo.size() == 0);
}
