// timeout() and Timeout: asyncio.timeout's rules (3.11+): the block runs in the awaiting task;
// expiry cancels it and surfaces as TimeoutError; a cancel from elsewhere stays a
// CancelledError; the deadline can move; a block that ends first lets its timer go, and its
// caller goes on at once (the timer's record waits for its CQE alone).
#include <catch2/catch.hpp>

#include <cerrno>
#include <optional>
#include <stdexcept>
#include <system_error>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Timeout;
using ringloop::TimeoutError;
using test_support::seconds_since;
using test_support::value_after;

namespace {

Coro<int> two_steps(int& steps) {
  co_await ringloop::sleep(20ms);
  ++steps;
  co_await ringloop::sleep(20ms);
  ++steps;
  co_return steps;
}

Coro<int> extend_then_finish(Timeout& scope) {
  co_await ringloop::sleep(20ms);
  scope.reschedule_after(200ms);  // the first deadline (40 ms) would have cut the next sleep
  co_await ringloop::sleep(50ms);
  co_return 5;
}

}  // namespace

TEST_CASE("timeout returns the block's value when it finishes in time", "[timeout]") {
  ringloop::run([]() -> Coro<> {
    int steps = 0;
    int value = co_await ringloop::timeout(1s, two_steps(steps));
    CHECK(value == 2);
    // The timer was in the kernel (the loop blocked in the sleeps): its removal and its own CQE
    // are still owed, and the caller did not wait for them (Python's timeout() exit is
    // synchronous too); the record frees itself at its CQE (ASan: no leak).
    ringloop::Loop& loop = *ringloop::Loop::current();
    CHECK(loop.in_flight() == 2);
    co_await ringloop::sleep(1ms);
    CHECK(loop.in_flight() == 0);
  }());
}

TEST_CASE("timeout cancels the block at the deadline and throws TimeoutError", "[timeout]") {
  ringloop::run([]() -> Coro<> {
    int steps = 0;
    auto start = std::chrono::steady_clock::now();
    try {
      co_await ringloop::timeout(30ms, two_steps(steps));
      FAIL("no timeout");
    } catch (const TimeoutError&) {
    }
    double elapsed = seconds_since(start);
    CHECK(steps == 1);  // interrupted inside its second sleep
    CHECK(elapsed >= 0.030);
    auto& task = co_await ringloop::detail::current_task("test");
    CHECK(task.cancel_requests == 0);  // the scope took back the cancel it made
    co_await ringloop::sleep(1ms);     // and nothing is pending for later awaits
  }());
}

TEST_CASE("timeout_at takes an absolute deadline; a past one expires at once", "[timeout]") {
  ringloop::run([]() -> Coro<> {
    int steps = 0;
    auto when = std::chrono::steady_clock::now() + 30ms;
    CHECK_THROWS_AS(co_await ringloop::timeout_at(when, two_steps(steps)), TimeoutError);
    steps = 0;
    auto past = std::chrono::steady_clock::now() - 1s;
    CHECK_THROWS_AS(co_await ringloop::timeout_at(past, two_steps(steps)), TimeoutError);
    CHECK(steps == 0);
  }());
}

TEST_CASE("Timeout can be moved while the block runs, or removed", "[timeout]") {
  ringloop::run([]() -> Coro<> {
    Timeout scope(40ms);
    int value = co_await scope.run(extend_then_finish(scope));
    CHECK(value == 5);
    CHECK_FALSE(scope.expired());

    Timeout none;  // no deadline
    CHECK_FALSE(none.when().has_value());
    int direct = co_await none.run(value_after(5ms, 9));
    CHECK(direct == 9);

    Timeout removed(20ms);
    auto body = [](Timeout& s) -> Coro<int> {
      s.reschedule(std::nullopt);
      co_await ringloop::sleep(40ms);
      co_return 1;
    };
    int survived = co_await removed.run(body(removed));
    CHECK(survived == 1);
  }());
}

TEST_CASE("Timeout: rescheduling an expired scope or reusing one is refused", "[timeout]") {
  ringloop::run([]() -> Coro<> {
    Timeout scope(5ms);
    CHECK_THROWS_AS(co_await scope.run(value_after(1s, 1)), TimeoutError);
    CHECK(scope.expired());
    CHECK_THROWS_WITH(scope.reschedule(std::nullopt), Catch::Contains("passed already"));
    CHECK_THROWS_WITH(co_await scope.run(value_after(1ms, 1)),
                      Catch::Contains("only be used once"));
  }());
}

TEST_CASE("timeout: a cancel from outside stays a CancelledError", "[timeout]") {
  ringloop::run([]() -> Coro<> {
    auto inner = ringloop::create_task(
        []() -> Coro<int> { co_return co_await ringloop::timeout(1s, value_after(1s, 1)); }());
    co_await ringloop::sleep(10ms);
    inner.cancel();
    CHECK_THROWS_AS(co_await inner, CancelledError);
    CHECK(inner.cancelled());
  }());
}

TEST_CASE("timeout: the block may swallow the cancel and finish normally", "[timeout]") {
  ringloop::run([]() -> Coro<> {
    Timeout scope(10ms);
    int value = co_await scope.run([]() -> Coro<int> {
      try {
        co_await ringloop::sleep(1s);
      } catch (const CancelledError&) {
        co_return 3;
      }
      co_return 0;
    }());
    CHECK(value == 3);
    CHECK(scope.expired());
    co_await ringloop::sleep(1ms);  // the scope's cancel was taken back: this sleep is not cut
  }());
}

TEST_CASE("nested timeouts: the inner one that expires is the one that reports", "[timeout]") {
  ringloop::run([]() -> Coro<> {
    bool inner_timed_out = false;
    int value = co_await ringloop::timeout(1s, [](bool& flag) -> Coro<int> {
      try {
        co_await ringloop::timeout(10ms, value_after(1s, 1));
      } catch (const TimeoutError&) {
        flag = true;
      }
      co_return 2;
    }(inner_timed_out));
    CHECK(inner_timed_out);
    CHECK(value == 2);
  }());
}

TEST_CASE("Timeout keeps a deadline in the past as given", "[timeout][conformance]") {
  // asyncio.timeout(delay) is timeout_at(loop.time() + delay): when() is the past deadline, not
  // the time it was made.
  ringloop::run([]() -> Coro<> {
    auto before = ringloop::Loop::current()->now();
    Timeout scope(-11s);
    REQUIRE(scope.when().has_value());
    CHECK(*scope.when() <= before - 10s);
    CHECK(*scope.when() >= before - 12s);
    CHECK_THROWS_AS(co_await scope.run(value_after(1s, 1)), TimeoutError);
  }());
}

TEST_CASE("Timeout: rescheduling a scope that has not been entered is refused",
          "[timeout][conformance]") {
  // asyncio.Timeout.reschedule raises RuntimeError("Timeout has not been entered") before
  // __aenter__; here std::logic_error, as for its other states.
  ringloop::run([]() -> Coro<> {
    Timeout scope(1s);
    CHECK_THROWS_WITH(scope.reschedule(std::nullopt), Catch::Contains("not been entered"));
    CHECK_THROWS_AS(scope.reschedule_after(2s), std::logic_error);
    int value = co_await scope.run(value_after(1ms, 2));
    CHECK(value == 2);
  }());
}

TEST_CASE("a Timeout already due when its block starts expires at the block's first await",
          "[timeout][conformance]") {
  // asyncio: reschedule() with a due deadline calls call_soon(_on_timeout), ahead of the block's
  // next step; a block with no await ends before that handle runs, which __aexit__ cancels.
  ringloop::run(
      []() -> Coro<> {
        Timeout at_zero(0s);
        int steps = 0;
        auto yields_once = [&]() -> Coro<> {
          co_await ringloop::sleep(0s);
          ++steps;
        };
        CHECK_THROWS_AS(co_await at_zero.run(yields_once()), TimeoutError);
        CHECK(steps == 0);
        CHECK(at_zero.expired());

        Timeout past(-1s);
        auto no_await = []() -> Coro<int> { co_return 7; };
        int value = co_await past.run(no_await());
        CHECK(value == 7);
        CHECK_FALSE(past.expired());
        co_await ringloop::sleep(1ms);  // no cancel left pending on the task
        CHECK(ringloop::Loop::current() != nullptr);
      }(),
      ringloop::LoopOptions{.virtual_time = true});
}

TEST_CASE("Timeout: moving the deadline later leaves its timer in the kernel (no SQE, no CQE)",
          "[timeout]") {
  // The idle-timeout shape (asyncio: cm.reschedule(loop.time() + idle) after each message): the
  // timer armed for the first deadline stays; when it fires, the rest is armed. Removing and
  // re-arming it at each move would reap three CQEs a move (the timeout's, the remove's, a
  // sleep's) where this reaps one.
  ringloop::run([]() -> Coro<> {
    Timeout scope(10ms);
    bool moved_past_first_deadline = false;
    std::uint64_t reaped_while_moving = 0;
    auto last_move = std::chrono::steady_clock::now();
    auto body = [&]() -> Coro<> {
      co_await ringloop::sleep(2ms);  // the 10 ms timer is in the kernel now
      ringloop::Loop& loop = *ringloop::Loop::current();
      std::uint64_t reaped_before = loop.stats().cqes_reaped;
      for (int i = 0; i < 40; ++i) {  // 40 ms and more: past the first deadline
        scope.reschedule_after(300ms);
        last_move = std::chrono::steady_clock::now();
        co_await ringloop::sleep(1ms);
      }
      reaped_while_moving = loop.stats().cqes_reaped - reaped_before;
      moved_past_first_deadline = true;
      co_await ringloop::sleep(5s);  // the deadline, 300 ms after the last move, ends this
    };
    CHECK_THROWS_AS(co_await scope.run(body()), TimeoutError);
    double after_last_move = seconds_since(last_move);
    CHECK(moved_past_first_deadline);
    CHECK(reaped_while_moving <= 45);  // the 40 sleeps and the first timer; not 120
    CHECK(after_last_move >= 0.29);    // a timer never fires early
    CHECK(after_last_move < 3.0);      // the moved deadline fired, not the 5 s sleep
  }());
}

TEST_CASE("Timeout: a deadline moved later, then earlier than its armed timer, counts",
          "[timeout]") {
  ringloop::run(
      []() -> Coro<> {
        ringloop::Loop& loop = *ringloop::Loop::current();
        auto start = loop.now();
        Timeout later(100ms);
        auto moved_later = [&]() -> Coro<> {
          co_await ringloop::sleep(1ms);
          later.reschedule_after(499ms);  // 500 ms from the start; the 100 ms timer stays
          co_await ringloop::sleep(10s);
        };
        CHECK_THROWS_AS(co_await later.run(moved_later()), TimeoutError);
        CHECK(loop.now() - start >= 500ms);
        CHECK(loop.now() - start < 501ms);  // the virtual clock moves a few ns per read

        start = loop.now();
        Timeout earlier(200ms);
        auto moved_both_ways = [&]() -> Coro<> {
          co_await ringloop::sleep(1ms);
          earlier.reschedule_after(999ms);  // later: left as it is
          earlier.reschedule_after(49ms);   // earlier than the armed 200 ms: removed, re-armed
          co_await ringloop::sleep(10s);
        };
        CHECK_THROWS_AS(co_await earlier.run(moved_both_ways()), TimeoutError);
        CHECK(loop.now() - start >= 50ms);
        CHECK(loop.now() - start < 51ms);  // the virtual clock moves a few ns per read

        start = loop.now();
        Timeout ends_first(100ms);
        auto finishes = [&]() -> Coro<int> {
          co_await ringloop::sleep(1ms);
          ends_first.reschedule_after(1s);
          co_await ringloop::sleep(150ms);  // past the timer's 100 ms: it arms the rest
          co_return 3;
        };
        int value = co_await ends_first.run(finishes());
        CHECK(value == 3);
        CHECK_FALSE(ends_first.expired());
        CHECK(loop.now() - start >= 151ms);
        CHECK(loop.now() - start < 152ms);  // the virtual clock moves a few ns per read
      }(),
      ringloop::LoopOptions{.virtual_time = true});
}

// The deadline moved later leaves the first timer in the kernel; when it fires, the same
// record is armed for the rest, so keeping the moved deadline needs no memory.
TEST_CASE("Timeout: a deadline moved later is re-armed with no new allocation", "[timeout]") {
  ringloop::run(
      []() -> Coro<> {
        Timeout scope(10ms);
        auto start = ringloop::Loop::current()->now();
        auto body = [&]() -> Coro<int> {
          co_await ringloop::sleep(1ms);
          scope.reschedule_after(100ms);                // the 10 ms timer stays armed
          ringloop::detail::fail_allocations_after(0);  // any frame or record now fails
          co_await ringloop::sleep(50ms);               // the re-arm at 10 ms happens here
          ringloop::detail::fail_allocations_after(-1);
          co_return 7;
        };
        int value = co_await scope.run(body());
        ringloop::detail::fail_allocations_after(-1);
        CHECK(value == 7);
        CHECK_FALSE(scope.expired());
        CHECK(ringloop::Loop::current()->now() - start >= 51ms);
      }(),
      ringloop::LoopOptions{.virtual_time = true});
}

// Moving the deadline earlier needs a new timer record, made before the old timer goes: with
// no memory for it, reschedule throws bad_alloc and the scope keeps the deadline it had, timer
// and all (it still expires then), rather than running on with no deadline.
TEST_CASE("Timeout: with no memory to move the deadline earlier, the old deadline stays",
          "[timeout]") {
  ringloop::run(
      []() -> Coro<> {
        Timeout scope(10ms);
        auto start = ringloop::Loop::current()->now();
        auto before = scope.when();
        bool refused = false;
        bool cancelled = false;
        auto body = [&]() -> Coro<> {
          co_await ringloop::sleep(1ms);
          ringloop::detail::fail_allocations_after(0);
          try {
            scope.reschedule_after(5ms);
          } catch (const std::bad_alloc&) {
            refused = true;
          }
          ringloop::detail::fail_allocations_after(-1);
          try {
            co_await ringloop::sleep(50ms);
          } catch (const CancelledError&) {
            cancelled = true;
            throw;
          }
        };
        bool timed_out = false;
        try {
          co_await scope.run(body());
        } catch (const ringloop::TimeoutError&) {
          timed_out = true;
        }
        ringloop::detail::fail_allocations_after(-1);
        CHECK(refused);
        CHECK(scope.when() == before);
        CHECK(cancelled);
        CHECK(timed_out);
        auto elapsed = ringloop::Loop::current()->now() - start;
        CHECK(elapsed >= 10ms);
        CHECK(elapsed < 11ms);
        ringloop::AnyTask me = co_await ringloop::current_task();
        CHECK(me.cancelling() == 0);
      }(),
      ringloop::LoopOptions{.virtual_time = true});
}
