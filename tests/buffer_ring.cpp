// Provided buffer rings and multishot receive (coro/io/buffer_ring.hpp): every buffer comes back
// to its ring whatever ends its use (released, cancelled, queued and dropped, the loop closing),
// and a ring that runs dry loses no byte.
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <cstdio>
#include <string>
#include <vector>

#include <ringloop/coro/io/buffer_ring.hpp>
#include <ringloop/ringloop.hpp>
#include "tests/io_support.hpp"

using namespace std::chrono_literals;
using ringloop::Buffer;
using ringloop::BufferRing;
using ringloop::Coro;
using ringloop::Loop;

namespace {

std::string text_of(const Buffer& buffer) {
  return std::string(reinterpret_cast<const char*>(buffer.data().data()), buffer.size());
}

}  // namespace

TEST_CASE("cancelling a multishot receive while buffers are out returns every buffer",
          "[bufring]") {
  Loop loop;
  BufferRing ring(loop, 8, 64);
  test_support::SocketPair pair;
  loop.run_until_complete([](BufferRing& r, test_support::SocketPair& p) -> Coro<> {
    auto received = ringloop::receive_multishot(p.a, r);
    std::vector<Buffer> held;
    for (const char* chunk : {"aaaa", "bbbb"}) {
      co_await p.b.send(chunk, 4);
      std::optional<Buffer> buffer = co_await received.next();
      REQUIRE(buffer.has_value());
      CHECK(text_of(*buffer) == chunk);
      held.push_back(std::move(*buffer));
    }
    co_await p.b.send("cccc", 4);
    for (int i = 0; i < 100 && received.queued() == 0; ++i) co_await ringloop::sleep(1ms);
    CHECK(received.queued() == 1);
    CHECK(r.available() == 5);  // two held, one queued
    received.cancel();
    std::optional<Buffer> queued = co_await received.next();  // queued before the last CQE
    REQUIRE(queued.has_value());
    CHECK(text_of(*queued) == "cccc");
    std::optional<Buffer> end = co_await received.next();
    CHECK_FALSE(end.has_value());
    CHECK(r.available() == 5);
    queued.reset();
    held.clear();
    CHECK(r.available() == 8);
    // A stream dropped with a buffer queued gives it back too.
    {
      auto again = ringloop::receive_multishot(p.a, r);
      co_await p.b.send("dddd", 4);
      for (int i = 0; i < 100 && again.queued() == 0; ++i) co_await ringloop::sleep(1ms);
      CHECK(r.available() == 7);
    }
    CHECK(r.available() == 8);
    co_await ringloop::sleep(1ms);  // the dropped stream's last CQE
    CHECK(Loop::current()->in_flight() == 0);
  }(ring, pair));
  loop.close();
  CHECK(ring.available() == 8);
}

TEST_CASE("a ring of two buffers loses no byte when the sender outruns the receiver", "[bufring]") {
  constexpr std::size_t kBytes = 256 * 1024;
  std::string sent(kBytes, '\0');
  for (std::size_t i = 0; i < kBytes; ++i)
    sent[i] = static_cast<char>('a' + (i * 7 + i / 1000) % 26);
  std::string got;
  std::uint64_t arms = 0;
  Loop loop;
  BufferRing ring(loop, 2, 1024);
  test_support::SocketPair pair;
  loop.run_until_complete([](BufferRing& r, test_support::SocketPair& p, const std::string& out,
                             std::string& in, std::uint64_t& armed) -> Coro<> {
    auto writer =
        ringloop::create_task([](test_support::SocketPair& q, const std::string& data) -> Coro<> {
          std::size_t done = 0;
          while (done < data.size())
            done += co_await q.b.send(data.data() + done, data.size() - done);
          co_await q.b.shutdown(SHUT_WR);
        }(p, out));
    auto received = ringloop::receive_multishot(p.a, r);
    for (;;) {
      std::optional<Buffer> buffer = co_await received.next();
      if (!buffer) break;
      in += text_of(*buffer);
      if (in.size() % 7 == 0) co_await ringloop::sleep(0ms);  // a slow consumer, now and then
    }
    armed = received.arms();
    co_await writer;
  }(ring, pair, sent, got, arms));
  CHECK(got.size() == sent.size());
  CHECK(got == sent);
  CHECK(arms > 1);  // the ring ran dry (-ENOBUFS) and the stream was re-armed
  CHECK(ring.available() == 2);
}

namespace {

// The server side of one echo on the multishot path: each buffer sent back, then released.
Coro<> echo_back(const ringloop::Socket& socket, const BufferRing& ring) {
  auto received = ringloop::receive_multishot(socket, ring);
  for (;;) {
    std::optional<Buffer> buffer = co_await received.next();
    if (!buffer) break;
    std::size_t sent = 0;
    while (sent < buffer->size())
      sent += co_await socket.send(buffer->data().data() + sent, buffer->size() - sent);
  }
}

// A client: `rounds` messages of 64 bytes, each echoed in full before the next.
Coro<> ping(const ringloop::Socket& socket, int rounds, int& echoed) {
  char message[64] = {};  // snprintf fills only the start
  char echo[64] = {};  // valgrind does not see the kernel fill it
  for (int round = 0; round < rounds; ++round) {
    std::snprintf(message, sizeof message, "round %d of a client, padded to 64 bytes........",
                  round);
    std::size_t sent = 0;
    while (sent < sizeof message)
      sent += co_await socket.send(message + sent, sizeof message - sent);
    std::size_t got = 0;
    while (got < sizeof echo) {
      std::size_t n = co_await socket.recv(echo + got, sizeof echo - got);
      REQUIRE(n > 0);
      got += n;
    }
    REQUIRE(std::string(echo, sizeof echo) == std::string(message, sizeof message));
    ++echoed;
  }
  co_await socket.shutdown(SHUT_WR);
}

}  // namespace

// Many streams waiting for a buffer of one small ring: each buffer given back re-arms one of
// them, and the turn is passed on, never lost, when the woken stream does not arm or its arming
// ends without a buffer (each client's end of file at the end): a lost turn left every stream
// waiting on a full ring with nothing in flight (the loop's deadlock check caught it), as
// bench's echo_multishot did with 1,000 connections on 16 buffers.
TEST_CASE("a ring far smaller than its streams serves every stream to the end", "[bufring]") {
  constexpr int kPairs = 64;
  constexpr int kRounds = 50;
  Loop loop;
  BufferRing ring(loop, 2, 64);
  std::vector<test_support::SocketPair> pairs(kPairs);
  int echoed = 0;
  loop.run_until_complete(
      [](BufferRing& r, std::vector<test_support::SocketPair>& ps, int& count) -> Coro<> {
        std::vector<Coro<>> sides;
        for (test_support::SocketPair& p : ps) {
          sides.push_back(echo_back(p.a, r));
          sides.push_back(ping(p.b, kRounds, count));
        }
        co_await ringloop::gather(std::move(sides));
      }(ring, pairs, echoed));
  CHECK(echoed == kPairs * kRounds);
  CHECK(ring.available() == 2);
}

TEST_CASE("buffers out when the loop closes come back to the ring", "[bufring]") {
  Loop loop;
  BufferRing ring(loop, 4, 64);
  test_support::SocketPair pair;
  loop.run_until_complete([](BufferRing& r, test_support::SocketPair& p) -> Coro<> {
    // A task that holds a buffer and waits for more, still pending when the loop closes.
    ringloop::create_task([](BufferRing& rr, test_support::SocketPair& pp) -> Coro<> {
      auto received = ringloop::receive_multishot(pp.a, rr);
      std::optional<Buffer> held = co_await received.next();
      std::optional<Buffer> never = co_await received.next();
    }(r, p));
    co_await p.b.send("x", 1);
    co_await ringloop::sleep(10ms);
    CHECK(r.available() == 3);
  }(ring, pair));
  loop.close();
  CHECK(ring.available() == 4);
}
