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
Coro<int> wait_for_inner_task(OuterBox& box) {
  co_return co_await ringloop::wait_for(ringloop::create_task(finish_then_cancel_outer(box)), 1s);
}
Coro<int> wait_for_inner_coro(OuterBox& box) {
  co_return co_await ringloop::wait_for(finish_then_cancel_outer(box), 1s);
}
}  // namespace

// Found by the model test (seed 5700443): a gather's first failure cancelled a sibling whose
// wait_for had its inner's value in hand, and the sibling returned the value as if never
// cancelled. asyncio raises CancelledError at the task's next step. A Task given to wait_for
// ends in a step of its own, so the caller resumes a step later: the cancel lands between.
TEST_CASE("a cancel that lands after wait_for's inner task finished is not lost",
          "[wait_for][cancel]") {
  OuterBox box;
  ringloop::run([](OuterBox& b) -> Coro<> {
    b.task = ringloop::create_task(wait_for_inner_task(b));
    CHECK_THROWS_AS(co_await b.task, CancelledError);
    CHECK(b.task.cancelled());
  }(box));
}

// Python 3.12: a coroutine given to wait_for runs in the caller's task, and the caller goes on
// in the step in which it returned, so the task has ended with the value before the cancel,
// started in that step, runs: cancel() finds it done and returns false.
TEST_CASE("wait_for's caller goes on in the step its inner Coro returned in",
          "[wait_for][cancel][conformance]") {
  OuterBox box;
  ringloop::run([](OuterBox& b) -> Coro<> {
    b.task = ringloop::create_task(wait_for_inner_coro(b));
    int value = co_await b.task;
    CHECK(value == 5);
    CHECK_FALSE(b.task.cancelled());
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

namespace {
// (Not the task itself as the result: a task holding a handle to itself would never be freed.)
Coro<bool> runs_in(ringloop::AnyTask expected) {
  co_await ringloop::sleep(0s);
  ringloop::AnyTask current = co_await ringloop::current_task();
  co_return current == expected;
}
Coro<std::uint32_t> cancelling_after_cancel(ringloop::AnyTask& me) {
  try {
    co_await ringloop::sleep(1h);
  } catch (const CancelledError&) {
  }
  co_return me.cancelling();
}
Coro<int> value_after_sleep(std::chrono::milliseconds delay, int value) {
  co_await ringloop::sleep(delay);
  co_return value;
}
}  // namespace

// Python 3.12's wait_for is `async with timeout(): return await coro`: the coroutine is awaited
// by the calling task, not wrapped in a task of its own.
TEST_CASE("wait_for runs a Coro in the caller's task, as Python 3.12 does",
          "[wait_for][conformance]") {
  ringloop::run([]() -> Coro<> {
    ringloop::AnyTask me = co_await ringloop::current_task();
    bool in_caller = co_await ringloop::wait_for(runs_in(me), 1s);
    CHECK(in_caller);
    // A Task given to wait_for runs in itself.
    bool task_in_caller = co_await ringloop::wait_for(ringloop::create_task(runs_in(me)), 1s);
    CHECK_FALSE(task_in_caller);
  }());
}

// The deadline cancels the caller's task itself (Task.cancelling() is 1 inside the body while
// it handles the cancel), and wait_for takes that request back as it turns the CancelledError
// into TimeoutError, or as a body that swallowed it returns (asyncio's uncancel()).
TEST_CASE("wait_for's deadline cancels the caller's task and takes the request back",
          "[wait_for][cancel][conformance]") {
  ringloop::run([]() -> Coro<> {
    ringloop::AnyTask me = co_await ringloop::current_task();
    std::uint32_t inside = co_await ringloop::wait_for(cancelling_after_cancel(me), 2ms);
    CHECK(inside == 1);
    CHECK(me.cancelling() == 0);
    CHECK_THROWS_AS(co_await ringloop::wait_for(value_after_sleep(1h, 1), 2ms), TimeoutError);
    CHECK(me.cancelling() == 0);
    co_await ringloop::sleep(0s);  // no cancel is left pending on the task
  }());
}

// Both the deadline and a cancel from elsewhere: two requests, wait_for takes back its own and
// the other leaves as CancelledError (Python 3.12's timeout(): uncancel() is still above the
// count at entry).
TEST_CASE("a cancel from elsewhere during wait_for's timeout stays a CancelledError",
          "[wait_for][cancel][conformance]") {
  ringloop::run([]() -> Coro<> {
    ringloop::AnyTask me = co_await ringloop::current_task();
    auto outer = ringloop::create_task([]() -> Coro<std::uint32_t> {
      ringloop::AnyTask self = co_await ringloop::current_task();
      try {
        // The body swallows the deadline's cancel and waits on; the second cancel ends it.
        co_await ringloop::wait_for(
            [](ringloop::AnyTask task) -> Coro<> {
              try {
                co_await ringloop::sleep(1h);
              } catch (const CancelledError&) {
              }
              CHECK(task.cancelling() == 1);
              co_await ringloop::sleep(1h);
            }(self),
            2ms);
      } catch (const CancelledError&) {
        co_return self.cancelling();
      }
      co_return 100;
    }());
    co_await ringloop::sleep(20ms);
    outer.cancel();
    std::uint32_t left = co_await outer;
    CHECK(left == 1);  // the outside request is still counted: not taken back
    CHECK(me.cancelling() == 0);
  }());
}

// The body ends after its timer reached the kernel: the timer is removed (TIMEOUT_REMOVE) and
// its record waits for that CQE on its own, while the caller goes on at once.
TEST_CASE("wait_for's caller does not wait for its timer's removal", "[wait_for][lazy_timer]") {
  ringloop::run([]() -> Coro<> {
    ringloop::Loop& loop = *ringloop::Loop::current();
    std::uint64_t submitted_before = loop.stats().operations_submitted;
    int value = co_await ringloop::wait_for(value_after_sleep(5ms, 3), 1h);
    CHECK(value == 3);
    // The sleep's and the timer's SQEs went to the kernel (the loop blocked on them); the
    // removal and the timer's own CQE are still owed: the caller did not wait for them.
    CHECK(loop.stats().operations_submitted - submitted_before == 2);
    CHECK(loop.in_flight() == 2);
    co_await ringloop::sleep(1ms);
    CHECK(loop.in_flight() == 0);  // the record freed itself at its CQE (ASan: no leak)
  }());
}

// A loop closing with a wait_for's body suspended: the task is cancelled, the body unwinds in
// it, the timer is let go, and the loop drains its CQEs before the ring goes.
TEST_CASE("a loop closes cleanly with a wait_for's timer in the kernel", "[wait_for][cancel]") {
  bool unwound = false;
  ringloop::run([](bool& flag) -> Coro<> {
    ringloop::create_task([](bool& f) -> Coro<> {
      try {
        co_await ringloop::wait_for(value_after_sleep(1h, 0), 2h);
      } catch (const CancelledError&) {
        f = true;
        throw;
      }
    }(flag));
    co_await ringloop::sleep(2ms);  // the timer and the sleep reach the kernel
  }(unwound));
  CHECK(unwound);
}

// The timer's record is made once the Coro has suspended (a Coro that finishes at once costs
// none). With no memory for it then, wait_for cannot keep the deadline: the Coro is cancelled
// and wait_for raises the error, rather than running it unbounded or unwinding past it.
TEST_CASE("wait_for with no memory for its timer cancels the Coro and says why",
          "[wait_for][cancel]") {
  ringloop::run([]() -> Coro<> {
    bool cancelled = false;
    bool finished = false;
    Coro<int> body = note_cancel(cancelled, finished);  // its frame is made here
    ringloop::detail::fail_allocations_after(0);        // the next allocation is the timer's
    try {
      co_await ringloop::wait_for(std::move(body), 1s);
      FAIL("wait_for returned without a timer");
    } catch (const std::system_error& error) {
      CHECK(error.code().value() == ENOMEM);
      CHECK_THAT(error.what(), Catch::Contains("no memory for its timer"));
    }
    ringloop::detail::fail_allocations_after(-1);
    CHECK(cancelled);
    ringloop::AnyTask me = co_await ringloop::current_task();
    CHECK(me.cancelling() == 0);
  }());
}
