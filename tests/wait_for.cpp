// wait_for: result or TimeoutError; the inner work is cancelled and waited for; no timer when
// the inner finishes without suspending; Python 3.12's rules for races with cancellation.
#include <catch2/catch.hpp>

#include <stdexcept>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Task;
using ringloop::TimeoutError;
using test_support::fail_after;
using test_support::value_after;

namespace {

Coro<int> immediate(int value) { co_return value; }

Coro<int> swallow_cancel(int value) {
  try {
    co_await ringloop::sleep(std::chrono::hours(1));
  } catch (const CancelledError&) {
    co_return value;
  }
  co_return -1;
}

Coro<int> note_cancel(bool& cancelled, bool& finished) {
  try {
    co_await ringloop::sleep(std::chrono::hours(1));
  } catch (const CancelledError&) {
    cancelled = true;
    finished = true;
    throw;
  }
  co_return 0;
}

}  // namespace

TEST_CASE("wait_for returns the result when the inner finishes in time", "[wait_for]") {
  ringloop::run([]() -> Coro<> {
    int from_coro = co_await ringloop::wait_for(value_after(2ms, 3), 1s);
    CHECK(from_coro == 3);
    auto task = ringloop::create_task(value_after(2ms, 4));
    int from_task = co_await ringloop::wait_for(task, 1s);
    CHECK(from_task == 4);
  }());
}

TEST_CASE("wait_for arms no timer when the inner finishes without suspending", "[wait_for]") {
  ringloop::run([]() -> Coro<> {
    auto& stats = ringloop::Loop::current()->stats();
    auto submitted = stats.operations_submitted;
    int mismatches = 0;
    for (int i = 0; i < 1000; ++i) {
      int value = co_await ringloop::wait_for(immediate(i), 1s);
      mismatches += value != i;
    }
    CHECK(mismatches == 0);
    CHECK(stats.operations_submitted == submitted);
  }());
}

TEST_CASE("wait_for throws TimeoutError, after cancelling the inner and waiting for it",
          "[wait_for]") {
  bool cancelled = false;
  bool finished = false;
  auto start = std::chrono::steady_clock::now();
  ringloop::run([](bool& c, bool& f) -> Coro<> {
    CHECK_THROWS_AS(co_await ringloop::wait_for(note_cancel(c, f), 30ms), TimeoutError);
    CHECK(c);
    CHECK(f);  // the inner has finished before wait_for returned (libcoro #153, stdexec #1169)
  }(cancelled, finished));
  double elapsed = test_support::seconds_since(start);
  CHECK(elapsed >= 0.030);
  CHECK(elapsed < 0.5);
}

TEST_CASE("wait_for on a task cancels the task on timeout", "[wait_for]") {
  ringloop::run([]() -> Coro<> {
    auto task = ringloop::create_task(value_after(1000ms, 1));
    CHECK_THROWS_AS(co_await ringloop::wait_for(task, 5ms), TimeoutError);
    CHECK(task.cancelled());
  }());
}

TEST_CASE("an inner that swallows the cancel and returns a value wins over the timeout",
          "[wait_for]") {
  int value = ringloop::run(
      []() -> Coro<int> { co_return co_await ringloop::wait_for(swallow_cancel(5), 5ms); }());
  CHECK(value == 5);
}

TEST_CASE("an inner's own exception passes through wait_for", "[wait_for]") {
  ringloop::run([]() -> Coro<> {
    CHECK_THROWS_WITH(co_await ringloop::wait_for(fail_after(1ms, "inner failed"), 1s),
                      "inner failed");
  }());
}

// cpython #86296: an outer cancel must never turn into a TimeoutError, nor be lost.
TEST_CASE("cancelling the task inside wait_for raises CancelledError, never TimeoutError",
          "[wait_for][cancel]") {
  ringloop::run([]() -> Coro<> {
    bool cancelled = false;
    bool finished = false;
    auto outer = ringloop::create_task([](bool& c, bool& f) -> Coro<> {
      co_await ringloop::wait_for(note_cancel(c, f), 1s);
    }(cancelled, finished));
    co_await ringloop::sleep(2ms);
    outer.cancel();
    CHECK_THROWS_AS(co_await outer, CancelledError);
    CHECK(cancelled);
    CHECK(finished);
  }());
}

TEST_CASE("an outer cancel at the moment of the timeout still ends in CancelledError",
          "[wait_for][cancel]") {
  ringloop::run([]() -> Coro<> {
    for (int i = 0; i < 50; ++i) {
      auto deadline = std::chrono::steady_clock::now() + 1ms;
      auto outer = ringloop::create_task(
          []() -> Coro<> { co_await ringloop::wait_for(value_after(1000ms, 0), 1ms); }());
      co_await ringloop::sleep_until(deadline);
      bool was_pending = outer.cancel();
      try {
        co_await outer;
        FAIL("wait_for returned a value for an inner that cannot finish");
      } catch (const CancelledError&) {
        CHECK(was_pending);
      } catch (const TimeoutError&) {
        // Only possible when the timeout had already ended the task before cancel() came.
        CHECK_FALSE(was_pending);
      }
    }
  }());
}

TEST_CASE("wait_for racing an inner of the same duration ends exactly one way", "[wait_for]") {
  ringloop::run([]() -> Coro<> {
    int values = 0;
    int timeouts = 0;
    for (int i = 0; i < 200; ++i) {
      try {
        int v = co_await ringloop::wait_for(value_after(1ms, 7), 1ms);
        CHECK(v == 7);
        ++values;
      } catch (const TimeoutError&) {
        ++timeouts;
      }
    }
    CHECK(values + timeouts == 200);
  }());
}

TEST_CASE("wait_for takes any awaitable: a gather", "[wait_for]") {
  ringloop::run([]() -> Coro<> {
    auto [a, b] =
        co_await ringloop::wait_for(ringloop::gather(value_after(1ms, 1), value_after(2ms, 2)), 1s);
    CHECK(a + b == 3);
    CHECK_THROWS_AS(co_await ringloop::wait_for(
                        ringloop::gather(value_after(1ms, 1), value_after(500ms, 2)), 5ms),
                    TimeoutError);
  }());
}

// asyncio users write create_task(wait_for(...)) and gather(wait_for(...), ...): wait_for's
// result is a description that moves until it is awaited.
TEST_CASE("create_task, gather, shield and wait_for take a wait_for, as asyncio's do",
          "[wait_for]") {
  ringloop::run([]() -> Coro<> {
    Task<int> in_time = ringloop::create_task(ringloop::wait_for(value_after(1ms, 7), 1s));
    Task<int> too_late = ringloop::create_task(ringloop::wait_for(value_after(1s, 8), 5ms));
    CHECK(co_await in_time == 7);
    CHECK_THROWS_AS(co_await too_late, TimeoutError);

    auto [a, b] = co_await ringloop::gather(ringloop::wait_for(value_after(1ms, 1), 1s),
                                            ringloop::wait_for(value_after(2ms, 2), 1s));
    CHECK(a + b == 3);
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions,
                                              ringloop::wait_for(value_after(1ms, 1), 1s),
                                              ringloop::wait_for(value_after(1s, 2), 5ms));
    CHECK(std::get<0>(outcomes).value() == 1);
    CHECK_THROWS_AS(std::get<1>(outcomes).value(), TimeoutError);

    int shielded = co_await ringloop::shield(ringloop::wait_for(value_after(1ms, 3), 1s));
    CHECK(shielded == 3);
    // Nested: the inner deadline passes first.
    CHECK_THROWS_AS(co_await ringloop::wait_for(ringloop::wait_for(value_after(1s, 4), 5ms), 1s),
                    TimeoutError);
  }());
}

TEST_CASE("a wait_for awaited twice is an error that says so", "[wait_for]") {
  ringloop::run([]() -> Coro<> {
    auto waiting = ringloop::wait_for(immediate(5), 1s);
    // Awaited outside CHECK: inside it g++ 12 calls operator co_await three times (clang once).
    int first = co_await waiting;
    CHECK(first == 5);
    try {
      (void)co_await waiting;
      FAIL("a second await of a wait_for did not throw");
    } catch (const std::logic_error& e) {
      CHECK_THAT(e.what(), Catch::Contains("awaited already"));
    }
  }());
}

TEST_CASE("wait_for resumes once when its timer is removed while still in the loop's FIFO",
          "[wait_for][cancel]") {
  // Regression: with the CQ budget full, the timer waits in the FIFO; the child finishing
  // first removes it there, which completes it inside cancel(), and the awaiter was scheduled
  // twice (a double resume). Found by the virtual-time tests, where timers never reach the kernel.
  ringloop::LoopOptions options;
  options.max_in_flight = 1;
  ringloop::run(
      []() -> Coro<> {
        auto budget = ringloop::create_task(value_after(50ms, 0));  // holds the only CQE slot
        co_await ringloop::sleep(0ms);
        int value = co_await ringloop::wait_for(
            [](int v) -> Coro<int> {
              co_await ringloop::sleep(0ms);  // suspends without an SQE
              co_return v;
            }(5),
            1s);
        CHECK(value == 5);
        int rest = co_await budget;
        CHECK(rest == 0);
      }(),
      options);
}

namespace {
struct OuterBox {
  Task<int> task;
};
Coro<> cancel_outer(OuterBox& box) {
  box.task.cancel();
  co_return;
}
// Starts, as it returns, a task that cancels the task awaiting wait_for: that cancel lands
// after this inner has finished and before wait_for has resumed.
Coro<int> finish_then_cancel_outer(OuterBox& box) {
  co_await ringloop::sleep(1ms);
  ringloop::create_task(cancel_outer(box));
  co_return 5;
}
Coro<int> wait_for_inner(OuterBox& box) {
  co_return co_await ringloop::wait_for(finish_then_cancel_outer(box), 1s);
}
}  // namespace

// Found by the model test (seed 5700443): a gather's first failure cancelled a sibling whose
// wait_for had its inner's value in hand, and the sibling returned the value as if never
// cancelled. asyncio raises CancelledError at the task's next step.
TEST_CASE("a cancel that lands after wait_for's inner finished is not lost", "[wait_for][cancel]") {
  OuterBox box;
  ringloop::run([](OuterBox& b) -> Coro<> {
    b.task = ringloop::create_task(wait_for_inner(b));
    CHECK_THROWS_AS(co_await b.task, CancelledError);
    CHECK(b.task.cancelled());
  }(box));
}

TEST_CASE(
    "wait_for with a zero or negative timeout raises TimeoutError and never starts a coroutine",
    "[wait_for][conformance]") {
  // asyncio 3.12 wait_for (tasks.py): timeout <= 0 wraps the coroutine in a task, cancels it and
  // waits (_cancel_and_wait), so the body never runs; a task already done gives its result, a
  // pending task is cancelled and its outcome decides (TimeoutError if it ends cancelled).
  ringloop::run([]() -> Coro<> {
    int started = 0;
    auto body = [](int& count) -> Coro<int> {
      ++count;
      co_return 1;
    };
    CHECK_THROWS_AS(co_await ringloop::wait_for(body(started), 0s), TimeoutError);
    CHECK_THROWS_AS(co_await ringloop::wait_for(body(started), -5ms), TimeoutError);
    CHECK(started == 0);

    auto finished = ringloop::create_task(immediate(3));
    co_await ringloop::sleep(0ms);
    int from_finished = co_await ringloop::wait_for(finished, 0s);
    CHECK(from_finished == 3);

    auto pending = ringloop::create_task(value_after(1s, 4));
    co_await ringloop::sleep(0ms);
    CHECK_THROWS_AS(co_await ringloop::wait_for(pending, 0s), TimeoutError);
    CHECK(pending.cancelled());

    auto swallows = ringloop::create_task(swallow_cancel(5));
    co_await ringloop::sleep(0ms);
    int from_swallower = co_await ringloop::wait_for(swallows, 0s);
    CHECK(from_swallower == 5);
  }());
}

TEST_CASE(
    "a task awaited under a due wait_for runs its first step and its cleanup before the timeout",
    "[wait_for][conformance]") {
  // asyncio's BaseEventLoop._run_once appends the callbacks of the timers it finds due after
  // the handles already in the ready queue: the child's first step (queued by create_task) runs
  // before the timeout cancels it, so its body starts and its cleanup runs. Here the loop is
  // busy (a CQ budget of one, held by another sleep), so the timer waits in the loop's FIFO and
  // leaves it already due, in the same iteration as the child's first step waits to run.
  ringloop::LoopOptions options;
  options.max_in_flight = 1;
  ringloop::run(
      []() -> Coro<> {
        bool started = false;
        bool cleaned = false;
        auto holder = ringloop::create_task(value_after(1ms, 0));
        co_await ringloop::sleep(0ms);  // the holder's sleep takes the whole budget
        auto child = ringloop::create_task([](bool& start, bool& cleanup) -> Coro<int> {
          start = true;
          try {
            co_await ringloop::sleep(std::chrono::hours(1));
          } catch (const CancelledError&) {
            cleanup = true;
            throw;
          }
          co_return 1;
        }(started, cleaned));
        auto waiting = ringloop::wait_for(child, 100us);
        auto busy_until = std::chrono::steady_clock::now() + 5ms;  // holder's timer fires meanwhile
        while (std::chrono::steady_clock::now() < busy_until) {
        }
        CHECK_THROWS_AS(co_await waiting, TimeoutError);
        CHECK(started);
        CHECK(cleaned);
        co_await holder;
      }(),
      options);
}

TEST_CASE(
    "a cancel of wait_for's caller keeps the deadline: the inner is cancelled again "
    "when it passes during the unwind",
    "[wait_for][conformance]") {
  // Python 3.12's wait_for is `async with timeout(t)`: the caller's cancel leaves the timer armed,
  // and its expiry cancels the task again. The result stays CancelledError (an outer cancel).
  ringloop::run(
      []() -> Coro<> {
        auto t0 = ringloop::Loop::current()->now();
        int cancels_seen = 0;
        auto slow_unwind = [&]() -> Coro<int> {
          try {
            co_await ringloop::sleep(10s);
          } catch (const CancelledError&) {
            ++cancels_seen;
          }
          try {
            co_await ringloop::sleep(5s);  // longer than what is left of the deadline
          } catch (const CancelledError&) {
            ++cancels_seen;
            throw;
          }
          co_return 1;
        };
        auto caller = [&]() -> Coro<int> {
          co_return co_await ringloop::wait_for(slow_unwind(), 1s);
        };
        Task<int> task = ringloop::create_task(caller());
        co_await ringloop::sleep(100ms);
        task.cancel();
        CHECK_THROWS_AS(co_await task, CancelledError);
        CHECK(cancels_seen == 2);
        auto elapsed = ringloop::Loop::current()->now() - t0;
        CHECK(elapsed >= 1s);
        CHECK(elapsed < 2s);
      }(),
      ringloop::LoopOptions{.virtual_time = true});
}
