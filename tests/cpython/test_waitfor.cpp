// CPython 3.11's Lib/test/test_asyncio/test_waitfor.py, ported: one case per test, on virtual
// time. A Python future that a test sets by hand is an Event here (or a finished Task, for a
// future that is done already). PORTED.md lists every test of the file.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/cpython/port.hpp"

using namespace std::chrono_literals;
using cpython_port::loop_time;
using cpython_port::run_virtual;
using cpython_port::wait_for_coro;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Event;
using ringloop::Task;
using ringloop::TimeoutError;

namespace {

constexpr auto kEpsilon = 100us;  // test_waitfor's _EPSILON: a timeout that is > 0, but tiny

// test_waitfor's SlowTask: runs for 0.2 s of the loop's clock, ignoring cancel requests.
struct SlowTask {
  static constexpr auto kTaskTimeout = 200ms;
  bool exited = false;

  Coro<> run() {
    auto exit_at = ringloop::Loop::current()->now() + kTaskTimeout;
    while (true) {
      auto to_sleep = exit_at - ringloop::Loop::current()->now();
      if (to_sleep <= 0ns) break;
      try {
        co_await ringloop::sleep(to_sleep);
      } catch (const CancelledError&) {
      }
    }
    exited = true;
  }
};

// foo() of test_wait_for and test_wait_for_timeout_less_then_0_or_0.
Coro<std::string> sleep_ten_seconds(bool& running, Event* started) {
  running = true;
  if (started != nullptr) started->set();
  try {
    co_await ringloop::sleep(10s);
  } catch (...) {
    running = false;
    throw;
  }
  running = false;
  co_return "done";
}

// inner() of test_wait_for_waits_for_task_cancellation: on a cancel, sleeps a little before
// re-raising; `done` is its `finally`. (C++ cannot await in a catch block: the handler notes
// the cancel and the await follows it.)
Coro<> slow_to_cancel(bool& done) {
  bool cancelled = false;
  try {
    co_await ringloop::sleep(10s);
  } catch (const CancelledError&) {
    cancelled = true;
  }
  if (cancelled) {
    try {
      co_await ringloop::sleep(kEpsilon);
    } catch (...) {
      done = true;
      throw;
    }
    done = true;
    throw CancelledError();
  }
  done = true;
}

}  // namespace

TEST_CASE(
    "test_asyncio_wait_for_cancelled: cancelling wait_for waits for an inner that ignores "
    "the cancel",
    "[cpython][cpython_waitfor]") {
  run_virtual([]() -> Coro<> {
    SlowTask t;
    auto wait_for_task = ringloop::create_task(wait_for_coro(t.run(), SlowTask::kTaskTimeout * 2));
    co_await ringloop::sleep(0s);
    wait_for_task.cancel();
    std::vector<Task<>> tasks{wait_for_task};
    co_await ringloop::wait(tasks);
    CHECK(t.exited);
  });
}

TEST_CASE(
    "test_asyncio_wait_for_timeout: wait_for returns only after an inner that ignores the "
    "cancel has exited",
    "[cpython][cpython_waitfor]") {
  run_virtual([]() -> Coro<> {
    SlowTask t;
    try {
      co_await ringloop::wait_for(t.run(), SlowTask::kTaskTimeout / 2);
    } catch (const TimeoutError&) {
    }
    CHECK(t.exited);
  });
}

TEST_CASE(
    "test_wait_for_timeout_less_then_0_or_0_future_done: a finished awaitable's result "
    "comes back even with a zero timeout",
    "[cpython][cpython_waitfor]") {
  run_virtual([]() -> Coro<> {
    auto fut = ringloop::create_task([]() -> Coro<std::string> { co_return "done"; }());
    co_await fut;  // fut.set_result('done')
    double t0 = loop_time();
    std::string ret = co_await ringloop::wait_for(fut, 0s);
    double t1 = loop_time();
    CHECK(ret == "done");
    CHECK(fut.done());
    CHECK(t1 - t0 < 0.1);
  });
}

TEST_CASE(
    "test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started: wait_for(coro, 0) "
    "raises TimeoutError without starting the coroutine",
    "[cpython][cpython_waitfor]") {
  run_virtual([]() -> Coro<> {
    bool foo_started = false;
    auto foo = [&]() -> Coro<> {
      foo_started = true;
      co_return;
    };
    double t0 = loop_time();
    CHECK_THROWS_AS(co_await ringloop::wait_for(foo(), 0s), TimeoutError);
    double t1 = loop_time();
    CHECK_FALSE(foo_started);
    CHECK(t1 - t0 < 0.1);
  });
}

TEST_CASE(
    "test_wait_for_timeout_less_then_0_or_0: a zero or negative timeout cancels a started "
    "task and raises TimeoutError",
    "[cpython][cpython_waitfor]") {
  for (auto timeout : {0s, -1s}) {
    run_virtual([timeout]() -> Coro<> {
      bool foo_running = false;
      Event started;
      auto fut = ringloop::create_task(sleep_ten_seconds(foo_running, &started));
      co_await started.wait();
      double t0 = loop_time();
      CHECK_THROWS_AS(co_await ringloop::wait_for(fut, timeout), TimeoutError);
      double t1 = loop_time();
      CHECK(fut.done());
      CHECK(fut.cancelled());
      CHECK_FALSE(foo_running);
      CHECK(t1 - t0 < 0.1);
    });
  }
}

TEST_CASE("test_wait_for: the timeout cancels the task and raises TimeoutError",
          "[cpython][cpython_waitfor]") {
  run_virtual([]() -> Coro<> {
    bool foo_running = false;
    auto fut = ringloop::create_task(sleep_ten_seconds(foo_running, nullptr));
    double t0 = loop_time();
    CHECK_THROWS_AS(co_await ringloop::wait_for(fut, 100ms), TimeoutError);
    double t1 = loop_time();
    CHECK(fut.done());
    CHECK(fut.cancelled());
    CHECK(t1 - t0 < 0.5);
    CHECK(t1 - t0 >= 0.1);
    CHECK_FALSE(foo_running);
  });
}

TEST_CASE("test_wait_for_race_condition: a result that arrives before the timeout is returned",
          "[cpython][cpython_waitfor]") {
  run_virtual([]() -> Coro<> {
    Event fut;
    auto task = wait_for_coro(
        [](Event& e) -> Coro<std::string> {
          co_await e.wait();
          co_return "ok";
        }(fut),
        200ms);
    ringloop::call_later(100ms, [&fut] { fut.set(); });
    std::string res = co_await task;
    CHECK(res == "ok");
  });
}

TEST_CASE(
    "test_wait_for_cancellation_race_condition: an inner that swallows the timeout's cancel "
    "and returns a value wins",
    "[cpython][cpython_waitfor]") {
  run_virtual([]() -> Coro<> {
    auto inner = []() -> Coro<int> {
      bool cancelled = false;
      try {
        co_await ringloop::sleep(1s);
      } catch (const CancelledError&) {
        cancelled = true;
      }
      CHECK(cancelled);
      co_return 1;
    };
    int result = co_await ringloop::wait_for(inner(), 10ms);
    CHECK(result == 1);
  });
}

TEST_CASE(
    "test_wait_for_waits_for_task_cancellation: TimeoutError comes only after the task has "
    "finished its cancellation",
    "[cpython][cpython_waitfor]") {
  run_virtual([]() -> Coro<> {
    bool task_done = false;
    auto inner = [&]() -> Coro<> { co_await slow_to_cancel(task_done); };
    auto inner_task = ringloop::create_task(inner());
    CHECK_THROWS_AS(co_await ringloop::wait_for(inner_task, kEpsilon), TimeoutError);
    CHECK(task_done);
  });
}

TEST_CASE(
    "test_wait_for_waits_for_task_cancellation_w_timeout_0: with a zero timeout too, "
    "TimeoutError comes only after the task has finished its cancellation",
    "[cpython][cpython_waitfor]") {
  run_virtual([]() -> Coro<> {
    bool task_done = false;
    auto inner = [&]() -> Coro<> { co_await slow_to_cancel(task_done); };
    auto foo = [&]() -> Coro<> {
      auto inner_task = ringloop::create_task(inner());
      co_await ringloop::sleep(kEpsilon);
      co_await ringloop::wait_for(inner_task, 0s);
    };
    CHECK_THROWS_AS(co_await foo(), TimeoutError);
    CHECK(task_done);
  });
}

TEST_CASE(
    "test_wait_for_reraises_exception_during_cancellation: an error the task raises while "
    "being cancelled by the timeout is what wait_for raises",
    "[cpython][cpython_waitfor]") {
  struct FooException : std::runtime_error {
    FooException() : std::runtime_error("FooException") {}
  };
  run_virtual([]() -> Coro<> {
    auto foo = []() -> Coro<> {
      auto inner = []() -> Coro<> {
        try {
          co_await ringloop::sleep(200ms);
        } catch (...) {
        }
        throw FooException();  // finally: raise FooException
      };
      auto inner_task = ringloop::create_task(inner());
      co_await ringloop::wait_for(inner_task, kEpsilon);
    };
    CHECK_THROWS_AS(co_await foo(), FooException);
  });
}

TEST_CASE(
    "test_wait_for_self_cancellation (3.12 rules): an inner that swallows both the "
    "timeout's and the outer cancel and returns 42 makes wait_for return 42",
    "[cpython][cpython_waitfor]") {
  // 3.11 expects CancelledError from the outer task; 3.12 dropped the test when wait_for moved
  // onto timeout(): there, the inner's value wins (python3.12 runs this program to 42).
  run_virtual([]() -> Coro<> {
    auto inner = []() -> Coro<int> {
      // The first two sleeps each swallow one cancel; the third is not guarded.
      for (int guarded = 0; guarded < 2; ++guarded) {
        bool cancelled = false;
        try {
          co_await ringloop::sleep(300ms);
        } catch (const CancelledError&) {
          cancelled = true;
        }
        if (!cancelled) co_return 42;
      }
      co_await ringloop::sleep(300ms);
      co_return 42;
    };
    auto inner_task = ringloop::create_task(inner());
    auto task = ringloop::create_task(wait_for_coro(inner_task, 100ms));
    co_await ringloop::sleep(200ms);
    task.cancel();
    int outer = co_await task;
    CHECK(outer == 42);
    int value = co_await inner_task;
    CHECK(value == 42);
  });
}

namespace {

Coro<> cancel_wait_for(std::chrono::seconds timeout) {
  Event never;
  auto task = ringloop::create_task(
      [](Event& e) -> Coro<> { co_await e.wait(); }(never));  // blocking_coroutine
  auto wait = ringloop::create_task(wait_for_coro(task, timeout));
  ringloop::call_soon([wait]() mutable { wait.cancel(); });
  CHECK_THROWS_AS(co_await wait, CancelledError);
  // Python issue #23219: cancelling the wait must also cancel the task
  CHECK(task.cancelled());
}

}  // namespace

TEST_CASE("test_cancel_wait_for: cancelling wait_for cancels the task it waits for",
          "[cpython][cpython_waitfor]") {
  run_virtual([]() -> Coro<> { co_await cancel_wait_for(60s); });
}
