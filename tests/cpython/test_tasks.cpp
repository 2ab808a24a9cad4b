// CPython 3.11's Lib/test/test_asyncio/test_tasks.py, ported in part (the cancellation group
// first): one case per test, on virtual time. A hand-made Python future that the test only sets
// is an Event here; asyncio.current_task() is the Task handle the test keeps. test_utils'
// run_briefly(loop) is one `co_await sleep(0s)` of the main task. PORTED.md lists every test.
#include <catch2/catch.hpp>

#include <exception>
#include <stdexcept>
#include <tuple>

#include <ringloop/ringloop.hpp>
#include "tests/cpython/port.hpp"

using namespace std::chrono_literals;
using cpython_port::run_virtual;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Event;
using ringloop::Task;
using ringloop::TimeoutError;

namespace {

auto run_briefly() { return ringloop::sleep(0s); }

}  // namespace

TEST_CASE(
    "test_cancelling: cancel() makes cancelling() true, a second cancel() still says "
    "true, and the task ends cancelled",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    auto task = []() -> Coro<> { co_await ringloop::sleep(10s); };
    auto t = ringloop::create_task(task());
    CHECK_FALSE(t.cancelling());
    CHECK(t.cancel());
    CHECK(t.cancelling());
    CHECK(t.cancel());
    CHECK_THROWS_AS(co_await t, CancelledError);
  });
}

TEST_CASE(
    "test_uncancel_basic: a task that uncancels in its handler goes on; a second cancel "
    "ends it; uncancel after the end changes nothing",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Task<> t;
    auto task = [&]() -> Coro<> {
      bool cancelled = false;
      try {
        co_await ringloop::sleep(10s);
      } catch (const CancelledError&) {
        cancelled = true;
        t.uncancel();  // asyncio.current_task().uncancel()
      }
      if (cancelled) co_await ringloop::sleep(10s);
    };
    t = ringloop::create_task(task());
    co_await ringloop::sleep(10ms);
    CHECK(t.cancel());  // cancel first sleep
    CHECK(t.cancelling() == 1);
    CHECK_FALSE(t.cancelled());
    co_await ringloop::sleep(10ms);
    CHECK(t.cancelling() == 0);  // after .uncancel()
    CHECK_FALSE(t.cancelled());
    CHECK(t.cancel());  // cancel second sleep
    CHECK(t.cancelling() == 1);
    CHECK_FALSE(t.cancelled());
    CHECK_THROWS_AS(co_await t, CancelledError);
    CHECK(t.cancelled());
    CHECK(t.done());
    t.uncancel();
    CHECK(t.cancelled());
    CHECK(t.done());
  });
}

namespace {

// make_request_with_timeout() of test_uncancel_structured_blocks: a timeout written by hand
// with call_later, cancel() and uncancel().
Coro<std::tuple<bool, bool, bool>> make_request_with_timeout(
    Task<std::tuple<bool, bool, bool>>& task, std::chrono::milliseconds sleep,
    std::chrono::milliseconds timeout) {
  bool timed_out = false;
  bool structured_block_finished = false;
  bool outer_code_reached = false;
  auto timeout_handle = ringloop::call_later(timeout, [&] {
    timed_out = true;
    task.cancel();
  });
  try {
    std::exception_ptr error;
    try {
      co_await ringloop::sleep(sleep);  // structured block affected by the timeout
      structured_block_finished = true;
    } catch (...) {
      error = std::current_exception();
    }
    // finally:
    timeout_handle.cancel();
    bool is_cancel = false;
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const CancelledError&) {
        is_cancel = true;
      } catch (...) {
      }
    }
    if (timed_out && task.uncancel() == 0 && is_cancel) throw TimeoutError("timed out");
    if (error) std::rethrow_exception(error);
  } catch (const TimeoutError&) {
    CHECK(timed_out);
  }
  outer_code_reached = true;  // outer code not affected by the timeout
  co_await ringloop::sleep(0s);
  co_return std::make_tuple(timed_out, structured_block_finished, outer_code_reached);
}

}  // namespace

TEST_CASE(
    "test_uncancel_structured_blocks: a hand-made timeout that uncancels leaves no cancel "
    "pending on the task",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Task<std::tuple<bool, bool, bool>> t1;
    t1 = ringloop::create_task(make_request_with_timeout(t1, 10s, 100ms));
    auto [timed_out, finished, reached] = co_await t1;
    CHECK(timed_out);
    CHECK_FALSE(finished);
    CHECK(reached);
    CHECK(t1.cancelling() == 0);

    Task<std::tuple<bool, bool, bool>> t2;
    t2 = ringloop::create_task(make_request_with_timeout(t2, 0ms, 10s));
    auto [timed_out2, finished2, reached2] = co_await t2;
    CHECK_FALSE(timed_out2);
    CHECK(finished2);
    CHECK(reached2);
    CHECK(t2.cancelling() == 0);
  });
}

TEST_CASE("test_cancel: a task cancelled from call_soon ends cancelled; cancel() then says false",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    auto task = []() -> Coro<int> {
      co_await ringloop::sleep(10s);
      co_return 12;
    };
    auto t = ringloop::create_task(task());
    ringloop::call_soon([t]() mutable { t.cancel(); });
    CHECK_THROWS_AS(co_await t, CancelledError);
    CHECK(t.done());
    CHECK(t.cancelled());
    CHECK_FALSE(t.cancel());
  });
}

TEST_CASE("test_cancel_yield: a task cancelled between two sleep(0) ends cancelled",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    auto task = []() -> Coro<int> {
      co_await ringloop::sleep(0s);
      co_await ringloop::sleep(0s);
      co_return 12;
    };
    auto t = ringloop::create_task(task());
    co_await run_briefly();  // start coro
    t.cancel();
    CHECK_THROWS_AS(co_await t, CancelledError);
    CHECK(t.done());
    CHECK(t.cancelled());
    CHECK_FALSE(t.cancel());
  });
}

TEST_CASE(
    "test_cancel_task_catching: a task that catches the cancel of its wait and returns 42 "
    "ends with 42, not cancelled",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Event fut1, fut2;
    auto task = [&]() -> Coro<int> {
      co_await fut1.wait();
      try {
        co_await fut2.wait();
      } catch (const CancelledError&) {
        co_return 42;
      }
      co_return 0;
    };
    auto t = ringloop::create_task(task());
    co_await run_briefly();
    fut1.set();
    co_await run_briefly();
    t.cancel();
    int res = co_await t;
    CHECK(res == 42);
    CHECK_FALSE(t.cancelled());
  });
}

TEST_CASE(
    "test_cancel_task_ignoring: a task that ignores the cancel of one wait goes on to the "
    "next and returns its result",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Event fut1, fut2, fut3;
    int fut3_result = 0;
    auto task = [&]() -> Coro<int> {
      co_await fut1.wait();
      try {
        co_await fut2.wait();
      } catch (const CancelledError&) {
      }
      co_await fut3.wait();
      co_return fut3_result;
    };
    auto t = ringloop::create_task(task());
    co_await run_briefly();
    fut1.set();
    co_await run_briefly();
    t.cancel();
    co_await run_briefly();
    fut3_result = 42;
    fut3.set();
    int res = co_await t;
    CHECK(res == 42);
    CHECK_FALSE(t.cancelled());
  });
}

TEST_CASE("test_cancel_current_task: a task that cancels itself is cancelled at its next sleep",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Task<int> t;
    bool slept = false;
    auto task = [&]() -> Coro<int> {
      t.cancel();
      co_await ringloop::sleep(100s);  // cancelled at once
      slept = true;
      co_return 12;
    };
    t = ringloop::create_task(task());
    CHECK_FALSE(t.cancelled());
    double t0 = cpython_port::loop_time();
    CHECK_THROWS_AS(co_await t, CancelledError);
    CHECK(cpython_port::loop_time() - t0 < 1);
    CHECK_FALSE(slept);
    CHECK(t.done());
    CHECK(t.cancelled());
    CHECK_FALSE(t.cancel());
  });
}

TEST_CASE("test_cancel_at_end: a task that cancels itself and returns ends cancelled",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Task<int> t;
    auto task = [&]() -> Coro<int> {
      t.cancel();
      co_return 12;
    };
    t = ringloop::create_task(task());
    CHECK_FALSE(t.cancelled());
    CHECK_THROWS_AS(co_await t, CancelledError);
    CHECK(t.done());
    CHECK(t.cancelled());
    CHECK_FALSE(t.cancel());
  });
}

TEST_CASE(
    "test_cancel_awaited_task: a task that cancels itself and then awaits another task "
    "cancels that task",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Task<> task, nested_task;
    Event fut;
    bool fut_wait_cancelled = false;
    auto nested = [&]() -> Coro<> {
      try {
        co_await fut.wait();
      } catch (const CancelledError&) {
        fut_wait_cancelled = true;
        throw;
      }
    };
    auto coro = [&]() -> Coro<> {
      nested_task = ringloop::create_task(nested());
      co_await ringloop::sleep(0s);
      task.cancel();
      co_await nested_task;
    };
    task = ringloop::create_task(coro());
    CHECK_THROWS_AS(co_await task, CancelledError);
    CHECK(task.cancelled());
    CHECK(nested_task.cancelled());
    CHECK(fut_wait_cancelled);  // fut.cancelled()
  });
}
