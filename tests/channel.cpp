// Channel<T>: a bounded queue between the loops of a LoopGroup; values in order across loops,
// senders held back while it is full, close() drains then ends both sides, a waiting send or
// receive that is cancelled takes nothing and loses nothing.
//
// Catch2's assertions are not thread-safe: the loops record, the test's thread checks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::Channel;
using ringloop::ChannelClosed;
using ringloop::Coro;
using ringloop::LoopGroup;
using ringloop::LoopGroupOptions;

namespace {
LoopGroupOptions two_loops(bool msg_ring) {
  LoopGroupOptions options;
  options.loops = 2;
  options.loop.msg_ring_doorbells = msg_ring;
  return options;
}
}  // namespace

TEST_CASE("a Channel carries values between loops in order, both ways", "[thread][channel]") {
  bool msg_ring = GENERATE(true, false);
  LoopGroup group(two_loops(msg_ring));
  Channel<int> ping(1), pong(1);
  std::vector<int> back;
  group.run([&](std::size_t i) -> Coro<> {
    if (i == 1) {
      for (int n = 0; n < 200; ++n) {
        int v = co_await ping.receive();
        co_await pong.send(v * 2);
      }
      co_return;
    }
    for (int n = 0; n < 200; ++n) {
      co_await ping.send(n);
      int v = co_await pong.receive();
      back.push_back(v);
    }
  });
  REQUIRE(back.size() == 200);
  for (int n = 0; n < 200; ++n) CHECK(back[static_cast<std::size_t>(n)] == 2 * n);
}

TEST_CASE("a full Channel holds its senders back; close() lets the receiver drain, then ends it",
          "[thread][channel]") {
  LoopGroup group(two_loops(true));
  Channel<std::unique_ptr<int>> channel(2);  // move-only items
  std::vector<int> got;
  std::size_t most_waiting = 0;
  std::string receive_error, send_error;
  group.run([&](std::size_t i) -> Coro<> {
    if (i == 0) {
      for (int n = 0; n < 6; ++n) co_await channel.send(std::make_unique<int>(n));
      channel.close();
      try {
        co_await channel.send(std::make_unique<int>(99));
      } catch (const ChannelClosed& e) {
        send_error = e.what();
      }
      co_return;
    }
    co_await ringloop::sleep(20ms);  // the sender fills the channel meanwhile, then waits
    for (;;) {
      most_waiting = std::max(most_waiting, channel.size());
      try {
        auto item = co_await channel.receive();
        got.push_back(*item);
      } catch (const ChannelClosed& e) {
        receive_error = e.what();
        break;
      }
    }
  });
  CHECK(got == std::vector<int>{0, 1, 2, 3, 4, 5});
  CHECK(most_waiting <= 2);
  CHECK(receive_error == "Channel.receive: the channel is closed");
  CHECK(send_error == "Channel.send: the channel is closed");
}

TEST_CASE("a send cancelled while the Channel is full sends nothing", "[thread][channel]") {
  LoopGroup group(two_loops(true));
  Channel<int> channel(1);
  bool timed_out = false;
  std::vector<int> got;
  group.run([&](std::size_t i) -> Coro<> {
    if (i == 0) {
      co_await channel.send(1);
      try {
        co_await ringloop::wait_for(channel.send(2), 10ms);
      } catch (const ringloop::TimeoutError&) {
        timed_out = true;
      }
      co_await channel.send(3);
      channel.close();
      co_return;
    }
    co_await ringloop::sleep(40ms);
    for (;;) {
      try {
        int v = co_await channel.receive();
        got.push_back(v);
      } catch (const ChannelClosed&) {
        break;
      }
    }
  });
  CHECK(timed_out);
  CHECK(got == std::vector<int>{1, 3});
}

TEST_CASE("a receive cancelled on an empty Channel takes nothing; two receivers are refused",
          "[thread][channel]") {
  LoopGroup group(two_loops(true));
  Channel<int> channel(4);
  bool timed_out = false;
  std::string second_receiver;
  int got = 0;
  group.run([&](std::size_t i) -> Coro<> {
    if (i == 1) co_return;
    try {
      co_await ringloop::wait_for(channel.receive(), 5ms);
    } catch (const ringloop::TimeoutError&) {
      timed_out = true;
    }
    auto first = ringloop::create_task(
        [](Channel<int>& c) -> Coro<int> { co_return co_await c.receive(); }(channel));
    co_await ringloop::sleep(1ms);
    try {
      co_await channel.receive();
    } catch (const std::logic_error& e) {
      second_receiver = e.what();
    }
    // From the other loop: the send wakes the receiver waiting on loop 0.
    co_await ringloop::submit_to(1, [&channel]() -> Coro<void> {
      return [](Channel<int>& c) -> Coro<void> { co_await c.send(7); }(channel);
    });
    got = co_await first;
  });
  CHECK(timed_out);
  CHECK_THAT(second_receiver, Catch::Contains("one receiver at a time"));
  CHECK(got == 7);
}
