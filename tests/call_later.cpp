// call_soon, call_later, call_at: order, timing, cancellable handles, and exceptions that are
// reported without stopping the loop.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;

TEST_CASE("call_soon runs callbacks on the next step, in order", "[call_later]") {
  ringloop::run([]() -> Coro<> {
    std::vector<int> order;
    ringloop::call_soon([&] { order.push_back(1); });
    ringloop::call_soon([&] { order.push_back(2); });
    CHECK(order.empty());  // not run inline
    co_await ringloop::sleep(0ms);
    co_await ringloop::sleep(0ms);
    CHECK(order == std::vector<int>{1, 2});
  }());
}

TEST_CASE("call_later and call_at run at their time, earliest first", "[call_later]") {
  ringloop::run([]() -> Coro<> {
    std::vector<std::string> order;
    auto start = std::chrono::steady_clock::now();
    double late_at = 0;
    ringloop::call_later(30ms, [&] {
      order.push_back("later 30");
      late_at = test_support::seconds_since(start);
    });
    ringloop::call_at(start + 10ms, [&] { order.push_back("at 10"); });
    auto handle = ringloop::call_later(20ms, [&] { order.push_back("cancelled"); });
    CHECK(handle.when() >= start + 20ms);
    CHECK(handle.cancel());
    CHECK_FALSE(handle.cancel());  // once
    co_await ringloop::sleep(50ms);
    CHECK(order == std::vector<std::string>{"at 10", "later 30"});
    CHECK(late_at >= 0.030);
    CHECK(handle.cancelled());
    CHECK(ringloop::Loop::current()->in_flight() == 0);  // the removed timer's CQE came back
  }());
}

TEST_CASE("a handle whose callback ran cannot be cancelled", "[call_later]") {
  ringloop::run([]() -> Coro<> {
    int calls = 0;
    auto handle = ringloop::call_later(1ms, [&] { ++calls; });
    co_await ringloop::sleep(10ms);
    CHECK(calls == 1);
    CHECK(handle.done());
    CHECK_FALSE(handle.cancel());
    CHECK_FALSE(handle.cancelled());
  }());
}

TEST_CASE("an exception escaping a callback is reported and the loop goes on", "[call_later]") {
  std::string err = test_support::capture_stderr([] {
    ringloop::run([]() -> Coro<> {
      int after = 0;
      ringloop::call_soon([] { throw std::runtime_error("callback broke"); });
      ringloop::call_later(1ms, [&] { ++after; });
      co_await ringloop::sleep(10ms);
      CHECK(after == 1);
    }());
  });
  CHECK_THAT(err, Catch::Contains("exception in callback: callback broke"));
}

TEST_CASE("callbacks need a running loop or an explicit one", "[call_later]") {
  CHECK_THROWS_WITH(ringloop::call_soon([] {}), Catch::Contains("no running event loop"));
  ringloop::Loop loop;
  int calls = 0;
  ringloop::call_later(loop, 1ms, [&] { ++calls; });
  loop.run_until_complete([]() -> Coro<> { co_await ringloop::sleep(5ms); }());
  CHECK(calls == 1);
}
