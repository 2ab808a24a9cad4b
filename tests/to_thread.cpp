// to_thread and run_in_executor: blocking calls on worker threads, resumed on the loop's
// thread; results, exceptions, many at once, cancellation that abandons the call, wait_for.
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;

namespace {
int add_slowly(int a, int b) {
  std::this_thread::sleep_for(5ms);
  return a + b;
}
}  // namespace

TEST_CASE("to_thread runs the call on another thread and resumes on the loop's", "[thread]") {
  ringloop::run([]() -> Coro<> {
    auto loop_thread = std::this_thread::get_id();
    std::thread::id call_thread;
    int sum = co_await ringloop::to_thread(
        [&call_thread](int a, int b) {
          call_thread = std::this_thread::get_id();
          return add_slowly(a, b);
        },
        2, 3);
    CHECK(sum == 5);
    CHECK(call_thread != loop_thread);
    CHECK(std::this_thread::get_id() == loop_thread);
    co_await ringloop::to_thread([] {});  // void calls too
  }());
}

TEST_CASE("an exception thrown by the call reaches the awaiting coroutine", "[thread]") {
  ringloop::run([]() -> Coro<> {
    CHECK_THROWS_WITH(
        co_await ringloop::to_thread([]() -> int { throw std::runtime_error("in thread"); }),
        "in thread");
  }());
}

TEST_CASE("many calls run at once and all come back", "[thread]") {
  ringloop::run([]() -> Coro<> {
    std::vector<Coro<int>> calls;
    for (int i = 0; i < 100; ++i)
      calls.push_back(
          [](int n) -> Coro<int> { co_return co_await ringloop::to_thread(add_slowly, n, 1); }(i));
    auto start = std::chrono::steady_clock::now();
    auto results = co_await ringloop::gather(calls);
    for (int i = 0; i < 100; ++i) CHECK(results[i] == i + 1);
    // Run by the pool's threads side by side, not one after the other (100 x 5 ms).
    CHECK(test_support::seconds_since(start) < 0.45);
  }());
}

TEST_CASE("cancelling a to_thread resumes at once and abandons the result", "[thread][cancel]") {
  std::atomic<bool> call_finished{false};
  auto start = std::chrono::steady_clock::now();
  double cancelled_after = 0;
  ringloop::run([](std::atomic<bool>& finished, double& after,
                   std::chrono::steady_clock::time_point t0) -> Coro<> {
    auto task = ringloop::create_task([](std::atomic<bool>& f) -> Coro<int> {
      co_return co_await ringloop::to_thread([&f] {
        std::this_thread::sleep_for(300ms);
        f = true;
        return 1;
      });
    }(finished));
    co_await ringloop::sleep(10ms);
    task.cancel();
    CHECK_THROWS_AS(co_await task, CancelledError);
    after = test_support::seconds_since(t0);
    CHECK_FALSE(finished.load());
  }(call_finished, cancelled_after, start));
  CHECK(cancelled_after < 0.2);
  // run() returned only once the worker was done: nothing of the call outlives the loop.
  CHECK(call_finished.load());
  CHECK(test_support::seconds_since(start) >= 0.3);
}

TEST_CASE("wait_for on a to_thread times out and abandons the call", "[thread][wait_for]") {
  ringloop::run([]() -> Coro<> {
    CHECK_THROWS_AS(co_await ringloop::wait_for(
                        ringloop::to_thread([] { std::this_thread::sleep_for(100ms); }), 10ms),
                    ringloop::TimeoutError);
  }());
}

TEST_CASE("run_in_executor uses the caller's pool", "[thread]") {
  ringloop::ThreadPool pool(2);
  CHECK(pool.size() == 2);
  int value = ringloop::run([](ringloop::ThreadPool& p) -> Coro<int> {
    co_return co_await ringloop::run_in_executor(p, add_slowly, 20, 22);
  }(pool));
  CHECK(value == 42);
  CHECK_THROWS_AS(ringloop::ThreadPool(0), std::invalid_argument);
}
