// A cancelled task unwinds through user code, which may throw something else or await again.
// asyncio's rules: the task ends with what its coroutine ended with. A CancelledError handler
// that throws makes the task fail with that exception (not cancelled), and every awaiter sees
// it: co_await, gather with and without return_exceptions, wait_for. A task that catches
// CancelledError may await again and finish normally. Nothing leaks; the loop goes on.
// (A destructor cannot throw during unwinding in C++, std::terminate; destructors do run.)
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Task;
using ringloop::TimeoutError;

namespace {

// Sleeps until cancelled; then (after awaiting again, if asked) throws another exception.
// No co_await may appear in a handler: the handler notes the cancel, the code after it acts.
Coro<int> cleanup_throws(bool await_in_cleanup) {
  bool cancelled = false;
  try {
    co_await ringloop::sleep(1h);
  } catch (const CancelledError&) {
    cancelled = true;
  }
  if (cancelled) {
    if (await_in_cleanup) co_await ringloop::sleep(1ms);
    throw std::runtime_error("cleanup failed");
  }
  co_return 0;
}

// Records its destruction, which runs while a cancelled frame unwinds.
struct Guard {
  std::vector<int>& log;
  int id;
  ~Guard() { log.push_back(id); }
};

Coro<int> guarded_sleep(std::vector<int>& log) {
  Guard outer{log, 1};
  {
    Guard inner{log, 2};
    co_await ringloop::sleep(1h);
  }
  co_return 0;
}

// Catches the cancel, sleeps again, returns normally.
Coro<int> catch_then_sleep(int& cancels) {
  try {
    co_await ringloop::sleep(1h);
  } catch (const CancelledError&) {
    ++cancels;
  }
  co_await ringloop::sleep(2ms);
  co_return 7;
}

// Catches the first cancel, then sleeps an hour again: a second cancel ends it.
Coro<int> catch_once_then_sleep(int& cancels) {
  try {
    co_await ringloop::sleep(1h);
  } catch (const CancelledError&) {
    ++cancels;
  }
  co_await ringloop::sleep(1h);
  co_return 7;
}

// Waits until the task has reached its first await, so a cancel finds it in there.
Coro<> until_started() { co_await ringloop::sleep(1ms); }

}  // namespace

TEST_CASE("a CancelledError handler that throws ends the task with that exception",
          "[cancel][fault]") {
  ringloop::run([]() -> Coro<> {
    for (bool await_in_cleanup : {false, true}) {
      auto task = ringloop::create_task(cleanup_throws(await_in_cleanup));
      co_await until_started();
      CHECK(task.cancel());
      CHECK_THROWS_WITH(co_await task, "cleanup failed");
      CHECK(task.done());
      CHECK_FALSE(task.cancelled());
      CHECK(task.exception() != nullptr);
      CHECK_FALSE(task.cancel());  // finished: cancel() says false
    }
    // The loop goes on.
    int value = co_await test_support::value_after(1ms, 3);
    CHECK(value == 3);
  }());
}

TEST_CASE("destructors run while a cancelled task unwinds, before its awaiter resumes",
          "[cancel][fault]") {
  std::vector<int> log;
  ringloop::run([](std::vector<int>& l) -> Coro<> {
    auto task = ringloop::create_task(guarded_sleep(l));
    co_await until_started();
    task.cancel();
    CHECK_THROWS_AS(co_await task, CancelledError);
    CHECK(l == std::vector<int>{2, 1});
  }(log));
}

TEST_CASE("gather sees the exception a cancelled child threw while unwinding",
          "[cancel][fault][gather]") {
  ringloop::run([]() -> Coro<> {
    // Without return_exceptions: the child's exception is the first failure; the other child
    // is cancelled and awaited; the exception is rethrown.
    auto child = ringloop::create_task(cleanup_throws(true));
    auto other = ringloop::create_task(test_support::value_after(1h, 0));
    auto gathering = ringloop::create_task(
        [](Task<int> a, Task<int> b) -> Coro<> { co_await ringloop::gather(a, b); }(child, other));
    co_await until_started();
    child.cancel();
    CHECK_THROWS_WITH(co_await gathering, "cleanup failed");
    CHECK(other.cancelled());

    // With return_exceptions: the outcome holds it, not CancelledError.
    auto child2 = ringloop::create_task(cleanup_throws(false));
    auto sibling = ringloop::create_task(test_support::value_after(5ms, 4));
    auto collecting = ringloop::create_task([](Task<int> a, Task<int> b) -> Coro<int> {
      auto [first, second] = co_await ringloop::gather(ringloop::return_exceptions, a, b);
      CHECK_THROWS_WITH(first.value(), "cleanup failed");
      co_return second.value();
    }(child2, sibling));
    co_await until_started();
    child2.cancel();
    int second = co_await collecting;
    CHECK(second == 4);
  }());
}

TEST_CASE("a cancelled gather ends cancelled even when a child throws while unwinding",
          "[cancel][fault][gather]") {
  // asyncio too: the gather was cancelled, so its awaiter sees CancelledError; the child's own
  // exception counts as retrieved (no "never retrieved" report).
  std::string report = test_support::capture_stderr([] {
    ringloop::run([]() -> Coro<> {
      auto gathering = ringloop::create_task([]() -> Coro<> {
        co_await ringloop::gather(cleanup_throws(true), test_support::value_after(1h, 0));
      }());
      co_await until_started();
      gathering.cancel();
      CHECK_THROWS_AS(co_await gathering, CancelledError);
    }());
  });
  CHECK(report.empty());
}

TEST_CASE("wait_for passes on what the timed-out inner threw while unwinding",
          "[cancel][fault][wait_for]") {
  // Python 3.12: only a CancelledError from the inner becomes TimeoutError.
  ringloop::run([]() -> Coro<> {
    CHECK_THROWS_WITH(co_await ringloop::wait_for(cleanup_throws(false), 2ms), "cleanup failed");
    CHECK_THROWS_WITH(co_await ringloop::wait_for(cleanup_throws(true), 2ms), "cleanup failed");
  }());
}

TEST_CASE("a task that catches CancelledError may await again and finish normally",
          "[cancel][fault]") {
  ringloop::run([]() -> Coro<> {
    int cancels = 0;
    auto task = ringloop::create_task(catch_then_sleep(cancels));
    co_await until_started();
    CHECK(task.cancel());
    int value = co_await task;
    CHECK(value == 7);
    CHECK(cancels == 1);
    CHECK_FALSE(task.cancelled());

    // A second cancel, during the second wait, ends it cancelled.
    int more = 0;
    auto twice = ringloop::create_task(catch_once_then_sleep(more));
    co_await until_started();
    twice.cancel();
    co_await ringloop::sleep(1ms);
    CHECK_FALSE(twice.done());
    twice.cancel();
    CHECK_THROWS_AS(co_await twice, CancelledError);
    CHECK(more == 1);
    CHECK(twice.cancelled());
  }());
}
