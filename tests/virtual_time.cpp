// Virtual time (LoopOptions::virtual_time): timeouts wait on the loop's clock, which jumps to the
// next deadline when nothing else can run, so minutes of timeouts take milliseconds; the
// outcomes and their order are those of real time. (The guide's examples under virtual time:
// guide.cpp.)
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <string>
#include <thread>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/io_support.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::LoopOptions;
using ringloop::TimeoutError;
using test_support::seconds_since;
using test_support::value_after;

namespace {

const LoopOptions kVirtual{.virtual_time = true};

double virtual_seconds(ringloop::Loop& loop, std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(loop.now() - since).count();
}

// A program of timeouts: what happened, and when, in whole units of the loop's clock.
struct Event {
  std::string what;
  long units;
};

Coro<std::vector<Event>> timeout_program(std::chrono::milliseconds unit) {
  std::vector<Event> log;
  ringloop::Loop& loop = *ringloop::Loop::current();
  auto start = loop.now();
  auto stamp = [&](const std::string& what) {
    log.push_back({what, static_cast<long>((loop.now() - start) / unit)});
  };
  try {
    co_await ringloop::wait_for(value_after(unit * 30, 1), unit * 10);
  } catch (const TimeoutError&) {
    stamp("wait_for timed out");
  }
  int fast = co_await ringloop::wait_for(value_after(unit * 5, 2), unit * 10);
  stamp("wait_for " + std::to_string(fast));
  auto [a, b] = co_await ringloop::gather(value_after(unit * 20, 3), value_after(unit * 10, 4));
  stamp("gather " + std::to_string(a) + std::to_string(b));
  try {
    co_await ringloop::timeout(unit * 15, value_after(unit * 60, 5));
  } catch (const TimeoutError&) {
    stamp("timeout expired");
  }
  int called = 0;
  ringloop::call_later(unit * 5, [&called] { ++called; });
  auto later = ringloop::call_later(unit * 6, [&called] { called += 10; });
  later.cancel();
  co_await ringloop::sleep(unit * 10);
  stamp("callbacks " + std::to_string(called));
  co_return log;
}

}  // namespace

TEST_CASE("a program of timeouts gives the same trace in real and virtual time", "[virtual_time]") {
  auto real = ringloop::run(timeout_program(10ms));
  auto start = std::chrono::steady_clock::now();
  auto virt = ringloop::run(timeout_program(1min), kVirtual);  // an hour and more of timeouts
  double wall = seconds_since(start);
  CHECK(wall < 1.0);
  // The same events in the same order; virtual time is exact, real time only ever later (by
  // the machine's lateness, which adds up along the program: much of it under valgrind).
  std::vector<std::string> expected_what = {"wait_for timed out", "wait_for 2", "gather 34",
                                            "timeout expired", "callbacks 1"};
  std::vector<long> expected_units = {10, 15, 35, 50, 60};
  REQUIRE(real.size() == 5);
  REQUIRE(virt.size() == 5);
  for (std::size_t i = 0; i < 5; ++i) {
    CHECK(real[i].what == expected_what[i]);
    CHECK(virt[i].what == expected_what[i]);
    CHECK(virt[i].units == expected_units[i]);
    CHECK(real[i].units >= expected_units[i]);
  }
}

TEST_CASE("advance() moves the virtual clock by hand", "[virtual_time]") {
  ringloop::run(
      []() -> Coro<> {
        ringloop::Loop& loop = *ringloop::Loop::current();
        auto sleeper = ringloop::create_task(value_after(10s, 1));
        co_await ringloop::sleep(0ms);  // let it start: its timeout is on the virtual clock
        loop.advance(5s);
        co_await ringloop::sleep(0ms);
        CHECK_FALSE(sleeper.done());
        loop.advance(5s);
        co_await ringloop::sleep(0ms);
        co_await ringloop::sleep(0ms);
        CHECK(sleeper.done());
        CHECK_THROWS_AS(loop.advance(-1s), std::invalid_argument);
      }(),
      kVirtual);
  ringloop::Loop real;
  CHECK_FALSE(real.has_virtual_time());
  CHECK_THROWS_WITH(real.advance(1s), Catch::Contains("does not use virtual time"));
}

TEST_CASE("virtual time: a deadline on real I/O fires on the virtual clock", "[virtual_time]") {
  ringloop::run(
      []() -> Coro<> {
        ringloop::Loop& loop = *ringloop::Loop::current();
        test_support::SocketPair pair;
        char byte = 0;
        auto start = loop.now();
        auto wall = std::chrono::steady_clock::now();
        CHECK_THROWS_AS(co_await ringloop::wait_for(pair.a.recv(&byte, 1), 30s), TimeoutError);
        CHECK(virtual_seconds(loop, start) == Approx(30.0).margin(1e-3));
        CHECK(seconds_since(wall) < 1.0);
        // Data already there: the I/O wins and its virtual timeout is removed.
        co_await pair.b.send("x", 1);
        std::size_t got = co_await ringloop::wait_for(pair.a.recv(&byte, 1), 30s);
        CHECK(got == 1);
        CHECK(byte == 'x');
        CHECK(loop.in_flight() == 0);
      }(),
      kVirtual);
}

TEST_CASE("virtual time waits for work on other threads before jumping", "[virtual_time][thread]") {
  ringloop::run(
      []() -> Coro<> {
        int value = co_await ringloop::wait_for(ringloop::to_thread([] {
                                                  std::this_thread::sleep_for(30ms);
                                                  return 7;
                                                }),
                                                1s);
        CHECK(value == 7);  // the 1 s virtual deadline did not jump past the real 30 ms
      }(),
      kVirtual);
}

TEST_CASE("virtual time: cancelling a task cancels its timer on the virtual clock",
          "[virtual_time]") {
  ringloop::run(
      []() -> Coro<> {
        ringloop::Loop& loop = *ringloop::Loop::current();
        auto sleeper = ringloop::create_task(value_after(1h, 1));
        co_await ringloop::sleep(0ms);
        CHECK(loop.in_flight() == 1);
        sleeper.cancel();
        CHECK_THROWS_AS(co_await sleeper, CancelledError);
        CHECK(loop.in_flight() == 0);
        auto start = loop.now();
        co_await ringloop::sleep(0ms);
        CHECK(virtual_seconds(loop, start) < 1e-6);  // the clock did not jump to the hour
      }(),
      kVirtual);
}
