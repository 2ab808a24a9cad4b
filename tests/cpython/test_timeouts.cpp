// CPython 3.11's Lib/test/test_asyncio/test_timeouts.py, ported: one case per test, on virtual
// time. `async with asyncio.timeout(d) as cm: body` is `Timeout cm(d); co_await cm.run(body)`;
// time.sleep(d), which blocks the loop, is Loop::advance(d). PORTED.md lists every test.
#include <catch2/catch.hpp>

#include <exception>
#include <optional>
#include <stdexcept>

#include <ringloop/ringloop.hpp>
#include "tests/cpython/port.hpp"

using namespace std::chrono_literals;
using cpython_port::loop_time;
using cpython_port::run_virtual;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Timeout;
using ringloop::TimeoutError;

namespace {

double seconds(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

Coro<> sleep_for(std::chrono::milliseconds d) { co_await ringloop::sleep(d); }

ringloop::Loop& loop() { return *ringloop::Loop::current(); }

// unittest's `with self.assertRaises(E): await body`: E is caught, any other exception goes on,
// and no exception at all fails the test.
template <class E, class T>
Coro<> assert_raises(Coro<T> body) {
  try {
    co_await std::move(body);
  } catch (const E&) {
    co_return;
  }
  FAIL("no exception was raised");
}

}  // namespace

TEST_CASE(
    "test_timeout_basic: the deadline passing raises TimeoutError and marks the scope "
    "expired",
    "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    Timeout cm(10ms);
    CHECK_THROWS_AS(co_await cm.run(sleep_for(10s)), TimeoutError);
    CHECK(cm.expired());
  });
}

TEST_CASE("test_timeout_at_basic: timeout_at raises TimeoutError; when() is the deadline given",
          "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    auto deadline = loop().now() + 10ms;
    Timeout cm(deadline);
    CHECK_THROWS_AS(co_await cm.run(sleep_for(10s)), TimeoutError);
    CHECK(cm.expired());
    CHECK(cm.when() == deadline);
  });
}

TEST_CASE(
    "test_nested_timeouts: of two scopes with the same deadline only the outer raises "
    "TimeoutError; the inner lets CancelledError through",
    "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    bool cancelled = false;
    auto deadline = loop().now() + 10ms;
    Timeout cm1(deadline);
    Timeout cm2(deadline);
    auto outer_body = [&]() -> Coro<> {
      try {
        co_await cm2.run(sleep_for(10s));
      } catch (const CancelledError&) {
        cancelled = true;
        throw;
      }
    };
    CHECK_THROWS_AS(co_await cm1.run(outer_body()), TimeoutError);
    CHECK(cancelled);
    CHECK(cm1.expired());
    CHECK(cm2.expired());
  });
}

TEST_CASE("test_waiter_cancelled: the block sees CancelledError when the deadline passes",
          "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    bool cancelled = false;
    auto body = [&]() -> Coro<> {
      try {
        co_await ringloop::sleep(10s);
      } catch (const CancelledError&) {
        cancelled = true;
        throw;
      }
    };
    CHECK_THROWS_AS(co_await ringloop::timeout(10ms, body()), TimeoutError);
    CHECK(cancelled);
  });
}

TEST_CASE(
    "test_timeout_not_called: a block that finishes in time is not expired; when() is "
    "still ahead",
    "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    double t0 = loop_time();
    Timeout cm(10s);
    co_await cm.run(sleep_for(10ms));
    double t1 = loop_time();
    CHECK_FALSE(cm.expired());
    CHECK(t1 - t0 < 2);
    REQUIRE(cm.when().has_value());
    CHECK(seconds(*cm.when()) > t1);
  });
}

TEST_CASE("test_timeout_disabled: timeout(None) never expires and when() is None",
          "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    double t0 = loop_time();
    Timeout cm;  // asyncio.timeout(None)
    co_await cm.run(sleep_for(10ms));
    double t1 = loop_time();
    CHECK_FALSE(cm.expired());
    CHECK_FALSE(cm.when().has_value());
    CHECK(t1 - t0 < 2);
  });
}

TEST_CASE("test_timeout_at_disabled: timeout_at(None) never expires and when() is None",
          "[cpython][cpython_timeouts]") {
  // ringloop has one spelling for both timeout(None) and timeout_at(None): Timeout() with no
  // deadline; this case sets "no deadline" through reschedule(nullopt) from inside the block.
  run_virtual([]() -> Coro<> {
    double t0 = loop_time();
    Timeout cm(loop().now() + 1h);
    auto body = [&]() -> Coro<> {
      cm.reschedule(std::nullopt);
      co_await ringloop::sleep(10ms);
    };
    co_await cm.run(body());
    double t1 = loop_time();
    CHECK_FALSE(cm.expired());
    CHECK_FALSE(cm.when().has_value());
    CHECK(t1 - t0 < 2);
  });
}

TEST_CASE(
    "test_timeout_zero: a zero timeout expires at the first await; when() lies between "
    "before and after",
    "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    double t0 = loop_time();
    Timeout cm(0s);
    CHECK_THROWS_AS(co_await cm.run(sleep_for(10s)), TimeoutError);
    double t1 = loop_time();
    CHECK(cm.expired());
    CHECK(t1 - t0 < 2);
    REQUIRE(cm.when().has_value());
    CHECK(t0 <= seconds(*cm.when()));
    CHECK(seconds(*cm.when()) <= t1);
  });
}

TEST_CASE(
    "test_timeout_zero_sleep_zero: a zero timeout expires even when the block only "
    "sleeps 0",
    "[cpython][cpython_timeouts]") {
  // asyncio schedules the expiry of a deadline already due with call_soon, ahead of the block's
  // next step, so sleep(0) raises.
  run_virtual([]() -> Coro<> {
    double t0 = loop_time();
    Timeout cm(0s);
    CHECK_THROWS_AS(co_await cm.run(sleep_for(0ms)), TimeoutError);
    double t1 = loop_time();
    CHECK(cm.expired());
    CHECK(t1 - t0 < 2);
    REQUIRE(cm.when().has_value());
    CHECK(t0 <= seconds(*cm.when()));
    CHECK(seconds(*cm.when()) <= t1);
  });
}

TEST_CASE(
    "test_timeout_in_the_past_sleep_zero: a deadline 11 s in the past expires at sleep(0) "
    "and when() keeps the past deadline",
    "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    double t0 = loop_time();
    Timeout cm(-11s);
    CHECK_THROWS_AS(co_await cm.run(sleep_for(0ms)), TimeoutError);
    double t1 = loop_time();
    CHECK(cm.expired());
    CHECK(t1 - t0 < 2);
    REQUIRE(cm.when().has_value());
    CHECK(t0 >= seconds(*cm.when()));
    CHECK(seconds(*cm.when()) <= t1);
  });
}

TEST_CASE("test_foreign_exception_passed: an error raised in the block passes through unchanged",
          "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    Timeout cm(10ms);
    auto body = []() -> Coro<> {
      throw std::out_of_range("KeyError");
      co_return;
    };
    CHECK_THROWS_AS(co_await cm.run(body()), std::out_of_range);
    CHECK_FALSE(cm.expired());
  });
}

TEST_CASE(
    "test_foreign_exception_on_timeout: an error raised while the block is cancelled by "
    "the deadline replaces TimeoutError",
    "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    auto crash = []() -> Coro<> {
      try {
        co_await ringloop::sleep(1s);
      } catch (...) {
      }
      throw std::domain_error("ZeroDivisionError");  // finally: 1/0
    };
    CHECK_THROWS_AS(co_await ringloop::timeout(10ms, crash()), std::domain_error);
  });
}

TEST_CASE(
    "test_foreign_cancel_doesnt_timeout_if_not_expired: a cancel of the task itself stays "
    "CancelledError and the scope is not expired",
    "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    ringloop::Task<> self;  // asyncio.current_task()
    Timeout cm(10s);
    auto body = [&]() -> Coro<> {
      self.cancel();
      co_await ringloop::sleep(10s);
    };
    auto block = [&]() -> Coro<> { co_await cm.run(body()); };
    self = ringloop::create_task(block());
    CHECK_THROWS_AS(co_await self, CancelledError);
    CHECK_FALSE(cm.expired());
  });
}

TEST_CASE(
    "test_outer_task_is_not_cancelled: a task whose timeout expired inside it ends "
    "normally, not cancelled",
    "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    auto outer = []() -> Coro<> {
      CHECK_THROWS_AS(co_await ringloop::timeout(1ms, sleep_for(10s)), TimeoutError);
    };
    auto task = ringloop::create_task(outer());
    co_await task;
    CHECK_FALSE(task.cancelled());
    CHECK(task.done());
  });
}

TEST_CASE(
    "test_nested_timeouts_concurrent: the outer, earlier deadline wins over the inner one "
    "after the loop was blocked",
    "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    auto inner = []() -> Coro<> {
      loop().advance(10ms);  // time.sleep(0.01): pretend we crunch some numbers
      co_await ringloop::sleep(1s);
    };
    auto outer = [&]() -> Coro<> {
      // assertRaises(TimeoutError) around the inner scope: a CancelledError goes through it.
      try {
        co_await ringloop::timeout(100ms, inner());
      } catch (const TimeoutError&) {
        FAIL("the inner scope raised TimeoutError: its deadline was not the one that passed");
      }
    };
    CHECK_THROWS_AS(co_await ringloop::timeout(2ms, outer()), TimeoutError);
  });
}

TEST_CASE(
    "test_nested_timeouts_loop_busy: after a busy loop passed both deadlines, the outer "
    "scope raises TimeoutError at once",
    "[cpython][cpython_timeouts]") {
  // Both deadlines have passed when the loop gets back: both scopes cancel the task, the inner
  // one finds a cancel that is not its own (cancelling() is 2) and lets CancelledError through
  // its assertRaises(TimeoutError), and the outer one turns it into TimeoutError.
  run_virtual([]() -> Coro<> {
    double t0 = loop_time();
    auto outer = []() -> Coro<> {
      auto inner = []() -> Coro<> {
        loop().advance(100ms);  // time.sleep(0.1): pretend the loop is busy for a while
        co_await ringloop::sleep(1s);
      };
      co_await assert_raises<TimeoutError>(ringloop::timeout(10ms, inner()));
      co_await ringloop::sleep(10s);  // this sleep should be interrupted by the outer scope
    };
    CHECK_THROWS_AS(co_await ringloop::timeout(100ms, outer()), TimeoutError);
    double t1 = loop_time();
    CHECK(t0 <= t1);
    CHECK(t1 <= t0 + 1);
  });
}

TEST_CASE(
    "test_reschedule: another task moves the deadline and removes it; a cancel then stays "
    "CancelledError and the scope is not expired",
    "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    ringloop::Event fut;
    Timeout* entered = nullptr;
    auto deadline1 = loop().now() + 10s;
    auto deadline2 = deadline1 + 20s;
    auto f = [&]() -> Coro<> {
      Timeout cm(deadline1);
      auto body = [&]() -> Coro<> {
        entered = &cm;
        fut.set();
        co_await ringloop::sleep(50s);
      };
      try {
        co_await cm.run(body());
      } catch (const CancelledError&) {
        CHECK_FALSE(cm.expired());
        throw;
      }
    };
    auto task = ringloop::create_task(f());
    co_await fut.wait();
    Timeout& cm = *entered;
    CHECK(cm.when() == deadline1);
    cm.reschedule(deadline2);
    CHECK(cm.when() == deadline2);
    cm.reschedule(std::nullopt);
    CHECK_FALSE(cm.when().has_value());
    task.cancel();
    CHECK_THROWS_AS(co_await task, CancelledError);
  });
}

TEST_CASE(
    "test_nested_timeout_in_finally: a new scope inside the cleanup of an expired one "
    "expires on its own",
    "[cpython][cpython_timeouts]") {
  run_virtual([]() -> Coro<> {
    auto body = []() -> Coro<> {
      std::exception_ptr error;  // try/finally: C++ cannot await in a catch block
      try {
        co_await ringloop::sleep(1s);
      } catch (...) {
        error = std::current_exception();
      }
      CHECK_THROWS_AS(co_await ringloop::timeout(10ms, sleep_for(10s)), TimeoutError);
      if (error) std::rethrow_exception(error);
    };
    CHECK_THROWS_AS(co_await ringloop::timeout(10ms, body()), TimeoutError);
  });
}
