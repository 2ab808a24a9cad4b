// Timers get their SQE at the loop's submit point, not when they are armed: one removed before
// then (wait_for's timer when the inner work ends within the iteration, a sleep cancelled at
// once) never reaches the kernel, so no TIMEOUT, no TIMEOUT_REMOVE and no CQE. One still
// pending after an iteration, or when the loop is about to block, is submitted as before.
#include <catch2/catch.hpp>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Task;

namespace {

Coro<int> yield_once(int value) {
  co_await ringloop::sleep(0s);
  co_return value;
}

Coro<> sleep_for(std::chrono::milliseconds duration) { co_await ringloop::sleep(duration); }

std::uint64_t submitted() { return ringloop::Loop::current()->stats().operations_submitted; }

}  // namespace

TEST_CASE("a wait_for whose inner work ends within the iteration sends no timer to the kernel",
          "[lazy_timer]") {
  ringloop::run([]() -> Coro<> {
    ringloop::Loop& loop = *ringloop::Loop::current();
    std::uint64_t before = submitted();
    std::uint64_t enters_before = loop.ring().submitting_enter_calls();
    int sum = 0;
    for (int i = 0; i < 100; ++i) {
      int value = co_await ringloop::wait_for(yield_once(i), 1s);
      sum += value;
    }
    CHECK(sum == 4950);
    CHECK(submitted() - before == 0);
    CHECK(loop.ring().submitting_enter_calls() - enters_before == 0);
    CHECK(loop.in_flight() == 0);
  }());
}

TEST_CASE("a sleep cancelled before the loop's submit point ends without an SQE", "[lazy_timer]") {
  ringloop::run([]() -> Coro<> {
    Task<> sleeper = ringloop::create_task(sleep_for(1h));
    co_await ringloop::sleep(0s);  // the sleeper's first step runs in this iteration too
    std::uint64_t before = submitted();
    CHECK(ringloop::Loop::current()->in_flight() == 1);  // the lazy timer counts as owed
    sleeper.cancel();
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions, sleeper);
    CHECK(sleeper.cancelled());
    CHECK_FALSE(std::get<0>(outcomes).has_value());
    CHECK(submitted() - before == 0);
  }());
}

TEST_CASE("a timer pending for an iteration reaches the kernel, and fires on time",
          "[lazy_timer]") {
  ringloop::run([]() -> Coro<> {
    std::uint64_t before = submitted();
    Task<> sleeper = ringloop::create_task(sleep_for(20ms));
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 3; ++i) co_await ringloop::sleep(0s);  // the loop never blocks here
    CHECK(submitted() - before == 1);
    co_await sleeper;
    CHECK(std::chrono::steady_clock::now() - start >= 20ms);
  }());
}

TEST_CASE("a lazy timer due by the submit point completes without the kernel", "[lazy_timer]") {
  ringloop::run([]() -> Coro<> {
    std::uint64_t before = submitted();
    Task<> sleeper = ringloop::create_task(sleep_for(1ms));
    co_await ringloop::sleep(0s);  // the sleeper arms its timer in this iteration, before us
    auto start = std::chrono::steady_clock::now();
    // Busy for longer than the sleep, without letting the loop reach its submit point.
    while (std::chrono::steady_clock::now() - start < 3ms) {
    }
    co_await sleeper;
    CHECK(submitted() - before == 0);
  }());
}
