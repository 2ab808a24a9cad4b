// Coro<T>: lazy, runs when awaited, propagates results and exceptions, runs once, and a long
// chain of synchronous awaits does not grow the stack.
#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::Coro;

namespace {

Coro<int> add_one(int value, int& runs) {
  ++runs;
  co_return value + 1;
}

Coro<int> throws_after_sleep() {
  co_await ringloop::sleep(1ms);
  throw std::runtime_error("boom");
}

Coro<> empty_body() { co_return; }

Coro<int> forty_two() { co_return 42; }

Coro<std::unique_ptr<int>> move_only() { co_return std::make_unique<int>(7); }

}  // namespace

TEST_CASE("a Coro does not run until it is awaited", "[coro]") {
  int runs = 0;
  ringloop::run([&]() -> Coro<> {
    auto coro = add_one(1, runs);
    CHECK(runs == 0);
    co_await ringloop::sleep(1ms);
    CHECK(runs == 0);
    int value = co_await coro;
    CHECK(value == 2);
    CHECK(runs == 1);
  }());
}

TEST_CASE("a Coro that is never awaited never runs and is freed", "[coro]") {
  int runs = 0;
  { auto coro = add_one(1, runs); }
  CHECK(runs == 0);
}

TEST_CASE("awaiting a Coro returns its value, also move-only ones", "[coro]") {
  auto value = ringloop::run([]() -> Coro<int> {
    auto pointer = co_await move_only();
    co_return *pointer + co_await forty_two();
  }());
  CHECK(value == 49);
}

TEST_CASE("an exception thrown in a Coro propagates to its awaiter", "[coro]") {
  ringloop::run([]() -> Coro<> { CHECK_THROWS_WITH(co_await throws_after_sleep(), "boom"); }());
  CHECK_THROWS_WITH(ringloop::run(throws_after_sleep()), "boom");
}

TEST_CASE("awaiting the same Coro twice is a clear error", "[coro]") {
  ringloop::run([]() -> Coro<> {
    auto coro = forty_two();
    int first = co_await coro;
    CHECK(first == 42);
    CHECK_THROWS_WITH(co_await coro, Catch::Contains("awaited twice"));
  }());
}

TEST_CASE("awaiting an empty Coro is a clear error", "[coro]") {
  ringloop::run([]() -> Coro<> {
    auto coro = forty_two();
    auto moved = std::move(coro);
    CHECK_THROWS_WITH(co_await coro, Catch::Contains("empty Coro"));
    int value = co_await moved;
    CHECK(value == 42);
  }());
}

namespace {
Coro<int> one() { co_return 1; }
Coro<> yields_then_returns(int& counter) {
  co_await ringloop::sleep(0s);
  ++counter;
}
}  // namespace

// PITFALLS.md, "Toolchain": g++ 12 at -O0 and under sanitizers overflows the 8 MiB stack here
// if the await of a synchronously finishing child nests a resume.
TEST_CASE("a million synchronous awaits in a loop do not grow the stack", "[coro][stack]") {
  long total = ringloop::run([]() -> Coro<long> {
    long sum = 0;
    for (int i = 0; i < 1'000'000; ++i) sum += co_await one();
    co_return sum;
  }());
  CHECK(total == 1'000'000);
}

TEST_CASE("awaits that suspend and resume from the loop do not grow the stack", "[coro][stack]") {
  int counter = 0;
  ringloop::run([](int& c) -> Coro<> {
    for (int i = 0; i < 200'000; ++i) co_await yields_then_returns(c);
  }(counter));
  CHECK(counter == 200'000);
}

TEST_CASE("a Coro<void> with an empty body can be awaited", "[coro]") {
  ringloop::run([]() -> Coro<> { co_await empty_body(); }());
}
