// sleep and sleep_until: one TIMEOUT SQE, never early, sleep(0) without an SQE, odd durations.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;
using Clock = std::chrono::steady_clock;

TEST_CASE("a sleep lasts about as long as asked", "[sleep]") {
  auto start = Clock::now();
  ringloop::run([]() -> Coro<> { co_await ringloop::sleep(50ms); }());
  double elapsed = test_support::seconds_since(start);
  CHECK(elapsed >= 0.050);
  CHECK(elapsed < 0.5);
}

// cpython #127859, uvloop #739, libuv #4773: timers that fire early.
TEST_CASE("a sleep never returns before its deadline on the monotonic clock", "[sleep]") {
  ringloop::run([]() -> Coro<> {
    std::mt19937 random(12345);
    std::uniform_int_distribution<int> micros(1, 3000);
    for (int i = 0; i < 300; ++i) {
      auto duration = std::chrono::microseconds(micros(random));
      auto deadline = Clock::now() + duration;
      co_await ringloop::sleep(duration);
      CHECK(Clock::now() >= deadline);
    }
  }());
}

TEST_CASE("sleep_until wakes at an absolute deadline, not before", "[sleep]") {
  ringloop::run([]() -> Coro<> {
    auto deadline = Clock::now() + 20ms;
    co_await ringloop::sleep_until(deadline);
    CHECK(Clock::now() >= deadline);
    co_await ringloop::sleep_until(Clock::now() - 1s);  // in the past: returns at once
  }());
}

TEST_CASE("sleep(0) yields to other tasks without an SQE", "[sleep]") {
  ringloop::Loop loop;
  int other_ran = 0;
  loop.run_until_complete([](int& flag) -> Coro<> {
    ringloop::create_task([](int& f) -> Coro<> {
      f = 1;
      co_return;
    }(flag));
    auto submitted = ringloop::Loop::current()->stats().operations_submitted;
    co_await ringloop::sleep(0s);
    CHECK(flag == 1);
    CHECK(ringloop::Loop::current()->stats().operations_submitted == submitted);
  }(other_ran));
}

TEST_CASE("negative and huge durations are handled, not overflowed", "[sleep]") {
  ringloop::run([]() -> Coro<> {
    auto start = Clock::now();
    co_await ringloop::sleep(-5s);
    co_await ringloop::sleep(std::chrono::nanoseconds::min());
    CHECK(test_support::seconds_since(start) < 0.5);
    // hours::max() must mean "practically never", not a deadline in the past.
    auto forever = ringloop::create_task(
        []() -> Coro<> { co_await ringloop::sleep(std::chrono::hours::max()); }());
    co_await ringloop::sleep(10ms);
    CHECK_FALSE(forever.done());
    forever.cancel();
    CHECK_THROWS_AS(co_await forever, ringloop::CancelledError);
  }());
}

TEST_CASE("100k concurrent sleeps all complete, once each", "[sleep][scale]") {
  constexpr int kSleepers = 100'000;
  std::vector<int> woke(kSleepers, 0);
  auto start = Clock::now();
  ringloop::run([](std::vector<int>& flags) -> Coro<> {
    std::vector<ringloop::Task<>> tasks;
    tasks.reserve(flags.size());
    for (int& flag : flags)
      tasks.push_back(ringloop::create_task([](int& f) -> Coro<> {
        co_await ringloop::sleep(50ms);
        ++f;
      }(flag)));
    co_await ringloop::gather(tasks);
  }(woke));
  for (int flag : woke) REQUIRE(flag == 1);
  CHECK(test_support::seconds_since(start) >= 0.050);
}

namespace {
Coro<> sleep_until_and_check(Clock::time_point deadline, int& early) {
  co_await ringloop::sleep_until(deadline);
  early += Clock::now() < deadline;
}
}  // namespace

TEST_CASE("sleeps that wait for CQ room past their deadline end without an SQE, never early",
          "[sleep]") {
  ringloop::LoopOptions options;
  options.max_in_flight = 4;  // 196 of the 200 sleeps wait in the FIFO
  int early = 0;
  std::uint64_t submitted = 0;
  ringloop::run(
      [](int& e, std::uint64_t& s) -> Coro<> {
        auto deadline = Clock::now() + 5ms;
        std::vector<Coro<>> sleepers;
        for (int i = 0; i < 200; ++i) sleepers.push_back(sleep_until_and_check(deadline, e));
        co_await ringloop::gather(sleepers);
        s = ringloop::Loop::current()->stats().operations_submitted;
      }(early, submitted),
      options);
  CHECK(early == 0);
  CHECK(submitted < 200);  // those due when room freed never visited the kernel
}
