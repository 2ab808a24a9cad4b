// CPython 3.11's Lib/test/test_asyncio/test_tasks.py, ported in part (the cancellation group
// first): one case per test, on virtual time. A hand-made Python future that the test only sets
// is an Event here; asyncio.current_task() is the Task handle the test keeps. test_utils'
// run_briefly(loop) is one `co_await sleep(0s)` of the main task. PORTED.md lists every test.
#include <catch2/catch.hpp>

#include <exception>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

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

// ---- wait

namespace {

Coro<> sleep_for(std::chrono::milliseconds d) { co_await ringloop::sleep(d); }

template <class T>
Coro<T> sleep_then(std::chrono::milliseconds d, T value) {
  co_await ringloop::sleep(d);
  co_return value;
}

// `set(done) == {a, b}`: the tasks of a vector, as the set of their handles.
template <class T>
std::set<void*> handles(const std::vector<Task<T>>& tasks) {
  std::set<void*> out;
  for (const auto& t : tasks) out.insert(t.handle().address());
  return out;
}
template <class T>
std::set<void*> handles(std::initializer_list<const Task<T>*> tasks) {
  std::set<void*> out;
  for (const auto* t : tasks) out.insert(t->handle().address());
  return out;
}

double now() { return cpython_port::loop_time(); }

// [a, b, ...] as a vector (g++ 12 rejects a braced list inside a co_await expression).
template <class T, class... Rest>
std::vector<Task<T>> list(const Task<T>& first, const Rest&... rest) {
  return std::vector<Task<T>>{first, rest...};
}

}  // namespace

TEST_CASE("test_wait: wait returns when every task is done; a second wait takes no time",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    double t0 = now();
    auto a = ringloop::create_task(sleep_for(100ms));
    auto b = ringloop::create_task(sleep_for(150ms));
    auto foo = [&]() -> Coro<int> {
      auto [done, pending] = co_await ringloop::wait(list(b, a));
      CHECK(handles(done) == handles<void>({&a, &b}));
      CHECK(pending.empty());
      co_return 42;
    };
    int res = co_await ringloop::create_task(foo());
    CHECK(res == 42);
    CHECK(now() - t0 == Approx(0.15).margin(1e-6));
    res = co_await ringloop::create_task(foo());
    CHECK(now() - t0 == Approx(0.15).margin(1e-6));
    CHECK(res == 42);
  });
}

TEST_CASE("test_wait_duplicate_coroutines: a task given twice is waited for once",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    auto coro = [](std::string s) -> Coro<std::string> { co_return s; };
    auto c = ringloop::create_task(coro("test"));
    auto task =
        ringloop::create_task(ringloop::wait(list(c, c, ringloop::create_task(coro("spam")))));
    auto [done, pending] = co_await task;
    CHECK(pending.empty());
    std::set<std::string> results;
    for (auto& f : done) results.insert(f.result());
    CHECK(results == std::set<std::string>{"test", "spam"});
  });
}

TEST_CASE("test_wait_errors: wait on an empty set is an error", "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    CHECK_THROWS_AS(co_await ringloop::wait(std::vector<Task<>>()), std::invalid_argument);
  });
}

TEST_CASE("test_wait_first_completed: FIRST_COMPLETED returns with the first task done",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    double t0 = now();
    auto a = ringloop::create_task(sleep_for(10s));
    auto b = ringloop::create_task(sleep_for(100ms));
    auto task =
        ringloop::create_task(ringloop::wait(list(b, a), ringloop::ReturnWhen::first_completed));
    auto [done, pending] = co_await task;
    CHECK(handles(done) == handles<void>({&b}));
    CHECK(handles(pending) == handles<void>({&a}));
    CHECK_FALSE(a.done());
    CHECK(b.done());
    CHECK(now() - t0 == Approx(0.1).margin(1e-6));
    a.cancel();
  });
}

TEST_CASE(
    "test_wait_really_done: FIRST_COMPLETED counts a task done only once it has finished; "
    "two tasks a yield apart are both done",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    auto coro1 = []() -> Coro<> { co_await ringloop::sleep(0s); };
    auto coro2 = []() -> Coro<> {
      co_await ringloop::sleep(0s);
      co_await ringloop::sleep(0s);
    };
    auto a = ringloop::create_task(coro1());
    auto b = ringloop::create_task(coro2());
    auto task =
        ringloop::create_task(ringloop::wait(list(b, a), ringloop::ReturnWhen::first_completed));
    auto [done, pending] = co_await task;
    CHECK(handles(done) == handles<void>({&a, &b}));
    CHECK(a.done());
    CHECK(b.done());
    co_await b;
  });
}

namespace {

struct ZeroDivisionError : std::runtime_error {
  ZeroDivisionError() : std::runtime_error("ZeroDivisionError") {}
};

}  // namespace

TEST_CASE(
    "test_wait_first_exception: FIRST_EXCEPTION returns at once when a task has failed "
    "already",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    double t0 = now();
    auto a = ringloop::create_task(sleep_for(10s));
    auto exc = []() -> Coro<> {
      throw ZeroDivisionError();
      co_return;
    };
    auto b = ringloop::create_task(exc());
    auto task =
        ringloop::create_task(ringloop::wait(list(b, a), ringloop::ReturnWhen::first_exception));
    auto [done, pending] = co_await task;
    CHECK(handles(done) == handles<void>({&b}));
    CHECK(handles(pending) == handles<void>({&a}));
    CHECK(now() - t0 == Approx(0).margin(1e-6));
    a.cancel();
    CHECK_THROWS_AS(co_await b, ZeroDivisionError);
  });
}

TEST_CASE(
    "test_wait_first_exception_in_wait: FIRST_EXCEPTION returns when a task fails while "
    "waited for",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    double t0 = now();
    auto a = ringloop::create_task(sleep_for(10s));
    auto exc = []() -> Coro<> {
      co_await ringloop::sleep(10ms);
      throw ZeroDivisionError();
    };
    auto b = ringloop::create_task(exc());
    auto [done, pending] =
        co_await ringloop::wait(list(b, a), ringloop::ReturnWhen::first_exception);
    CHECK(handles(done) == handles<void>({&b}));
    CHECK(handles(pending) == handles<void>({&a}));
    CHECK(now() - t0 == Approx(0.01).margin(1e-6));
    a.cancel();
    CHECK_THROWS_AS(co_await b, ZeroDivisionError);
  });
}

TEST_CASE("test_wait_with_exception: ALL_COMPLETED waits for every task, failed ones included",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    double t0 = now();
    auto a = ringloop::create_task(sleep_for(100ms));
    auto sleeper = []() -> Coro<> {
      co_await ringloop::sleep(150ms);
      throw ZeroDivisionError();
    };
    auto b = ringloop::create_task(sleeper());
    auto foo = [&]() -> Coro<> {
      auto [done, pending] = co_await ringloop::wait(list(b, a));
      CHECK(done.size() == 2);
      CHECK(pending.empty());
      int errors = 0;
      for (auto& f : done) errors += f.exception() != nullptr;
      CHECK(errors == 1);
    };
    co_await ringloop::create_task(foo());
    CHECK(now() - t0 == Approx(0.15).margin(1e-6));
    co_await ringloop::create_task(foo());
    CHECK(now() - t0 == Approx(0.15).margin(1e-6));
  });
}

TEST_CASE("test_wait_with_timeout: the timeout returns the unfinished tasks as pending",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    double t0 = now();
    auto a = ringloop::create_task(sleep_for(100ms));
    auto b = ringloop::create_task(sleep_for(150ms));
    auto foo = [&]() -> Coro<> {
      auto [done, pending] = co_await ringloop::wait(list(b, a), 110ms);
      CHECK(handles(done) == handles<void>({&a}));
      CHECK(handles(pending) == handles<void>({&b}));
    };
    co_await ringloop::create_task(foo());
    CHECK(now() - t0 == Approx(0.11).margin(1e-6));
    co_await b;
  });
}

TEST_CASE("test_wait_concurrent_complete: a task that finishes at the timeout is done",
          "[cpython][cpython_tasks]") {
  // CPython's test runs wait() as its own task (run_until_complete), created after a and b, so
  // a's sleep is armed before the wait's timeout, both due at 0.1 s: a's step runs first. (Awaited
  // directly in the task that created a, the timeout is armed first and asyncio, like ringloop,
  // reports a pending: python3 on a virtual-time loop, checked by hand.)
  run_virtual([]() -> Coro<> {
    double t0 = now();
    auto a = ringloop::create_task(sleep_for(100ms));
    auto b = ringloop::create_task(sleep_for(150ms));
    auto waiting = ringloop::create_task(ringloop::wait(list(b, a), 100ms));
    auto [done, pending] = co_await waiting;
    CHECK(handles(done) == handles<void>({&a}));
    CHECK(handles(pending) == handles<void>({&b}));
    CHECK(now() - t0 == Approx(0.1).margin(1e-6));
    co_await b;
  });
}

// ---- as_completed

TEST_CASE("test_as_completed: tasks come back in the order they finish",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    double t0 = now();
    std::set<std::string> completed;
    bool time_shifted = false;
    auto sleeper = [&](std::chrono::milliseconds dt, std::string x) -> Coro<std::string> {
      co_await ringloop::sleep(dt);
      completed.insert(x);
      if (!time_shifted && completed.count("a") && completed.count("b")) {
        time_shifted = true;
        ringloop::Loop::current()->advance(140ms);
      }
      co_return x;
    };
    std::vector<Coro<std::string>> coros;
    coros.push_back(sleeper(10ms, "b"));
    coros.push_back(sleeper(150ms, "c"));
    coros.push_back(sleeper(10ms, "a"));
    std::vector<std::string> res;
    ringloop::AsCompleted<std::string> each(std::move(coros));
    while (each.has_next()) {
      Task<std::string> f = co_await each.next();
      res.push_back(f.result());
    }
    CHECK(now() - t0 == Approx(0.15).margin(1e-6));
    REQUIRE(res.size() == 3);
    CHECK(std::set<std::string>{res[0], res[1]} == std::set<std::string>{"a", "b"});
    CHECK(res[2] == "c");
  });
}

TEST_CASE("test_as_completed_with_timeout: past the timeout, next() raises TimeoutError",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    double t0 = now();
    auto a = ringloop::create_task(sleep_then(100ms, std::string("a")));
    auto b = ringloop::create_task(sleep_then(150ms, std::string("b")));
    std::vector<std::pair<int, std::string>> values;
    ringloop::AsCompleted<std::string> each(list(a, b), 120ms);
    while (each.has_next()) {
      if (!values.empty()) ringloop::Loop::current()->advance(20ms);
      bool timed_out = false;
      try {
        Task<std::string> f = co_await each.next();
        values.emplace_back(1, f.result());
      } catch (const TimeoutError&) {
        timed_out = true;
      }
      if (timed_out) {
        values.emplace_back(2, "TimeoutError");
        break;  // asyncio's iterator has handed out its last placeholder
      }
    }
    REQUIRE(values.size() == 2);
    CHECK(values[0] == std::make_pair(1, std::string("a")));
    CHECK(values[1].first == 2);
    CHECK(now() - t0 == Approx(0.12).margin(1e-6));
    co_await b;
  });
}

TEST_CASE("test_as_completed_with_unused_timeout: a timeout that does not pass changes nothing",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    std::vector<Coro<std::string>> coros;
    coros.push_back(sleep_then(10ms, std::string("a")));
    ringloop::AsCompleted<std::string> each(std::move(coros), 1s);
    while (each.has_next()) {
      Task<std::string> f = co_await each.next();
      CHECK(f.result() == "a");
    }
  });
}

TEST_CASE("test_as_completed_duplicate_coroutines: an awaitable given twice comes back once",
          "[cpython][cpython_tasks]") {
  // A Coro runs once and cannot be listed twice; the same Task twice is the C++ form (asyncio
  // de-duplicates, and so does AsCompleted).
  run_virtual([]() -> Coro<> {
    auto coro = [](std::string s) -> Coro<std::string> { co_return s; };
    auto c = ringloop::create_task(coro("ham"));
    std::vector<std::string> result;
    ringloop::AsCompleted<std::string> each(list(c, c, ringloop::create_task(coro("spam"))));
    while (each.has_next()) {
      Task<std::string> f = co_await each.next();
      result.push_back(f.result());
    }
    CHECK(std::set<std::string>(result.begin(), result.end()) ==
          std::set<std::string>{"ham", "spam"});
    CHECK(result.size() == 2);
  });
}

// ---- sleep, shield

TEST_CASE("test_sleep: two half sleeps take the whole time; the task returns its value",
          "[cpython][cpython_tasks]") {
  // asyncio.sleep(d, result) returns result; ringloop's sleep returns nothing, so the sleeper
  // returns it.
  run_virtual([]() -> Coro<> {
    double t0 = now();
    auto sleeper = [](std::chrono::milliseconds dt, std::string arg) -> Coro<std::string> {
      co_await ringloop::sleep(dt / 2);
      co_await ringloop::sleep(dt / 2);
      co_return arg;
    };
    auto t = ringloop::create_task(sleeper(100ms, "yeah"));
    co_await t;
    CHECK(t.done());
    CHECK(t.result() == "yeah");
    CHECK(now() - t0 == Approx(0.1).margin(1e-6));
  });
}

TEST_CASE(
    "test_task_cancel_sleeping_task: a task cancelled from call_later in a long sleep ends "
    "cancelled at that time",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    double t0 = now();
    auto doit = []() -> Coro<std::string> {
      auto sleeper = ringloop::create_task(sleep_for(5000s));
      ringloop::call_later(100ms, [sleeper]() mutable { sleeper.cancel(); });
      try {
        co_await sleeper;
      } catch (const CancelledError&) {
        co_return "cancelled";
      }
      co_return "slept in";
    };
    std::string res = co_await doit();
    CHECK(res == "cancelled");
    CHECK(now() - t0 == Approx(0.1).margin(1e-6));
  });
}

TEST_CASE(
    "test_baseexception_during_cancel: an exception raised in the CancelledError handler "
    "ends the task with it, not cancelled",
    "[cpython][cpython_tasks]") {
  // Python raises SystemExit, a BaseException that also escapes the loop; C++ has one kind.
  struct SystemExit : std::runtime_error {
    SystemExit() : std::runtime_error("SystemExit") {}
  };
  run_virtual([]() -> Coro<> {
    auto notmutch = []() -> Coro<> {
      try {
        co_await sleep_for(10s);
      } catch (const CancelledError&) {
        throw SystemExit();
      }
    };
    auto task = ringloop::create_task(notmutch());
    co_await run_briefly();
    task.cancel();
    CHECK_FALSE(task.done());
    co_await run_briefly();
    CHECK(task.done());
    CHECK_FALSE(task.cancelled());
    CHECK_THROWS_AS(std::rethrow_exception(task.exception()), SystemExit);
  });
}

TEST_CASE(
    "test_yield_future_passes_cancel: cancelling outer() cancels the inner() it awaits, "
    "and inner()'s wait",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    int proof = 0;
    Event waiter;
    auto inner = [&]() -> Coro<> {
      try {
        co_await waiter.wait();
      } catch (const CancelledError&) {
        proof += 1;
        throw;
      }
      FAIL("got past the wait in inner()");
    };
    auto outer = [&]() -> Coro<> {
      try {
        co_await inner();
      } catch (const CancelledError&) {
        proof += 100;  // expect this path
        co_return;
      }
      proof += 10;
    };
    auto f = ringloop::create_task(outer());
    co_await run_briefly();
    f.cancel();
    co_await f;
    CHECK(proof == 101);
  });
}

TEST_CASE(
    "test_yield_wait_does_not_shield_cancel: cancelling outer() ends its wait() early and "
    "leaves inner() running",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    int proof = 0;
    Event waiter;
    Task<> inner_task;
    auto inner = [&]() -> Coro<> {
      co_await waiter.wait();
      proof += 1;
    };
    auto outer = [&]() -> Coro<> {
      inner_task = ringloop::create_task(inner());
      co_await ringloop::wait(list(inner_task));
      proof += 100;
    };
    auto f = ringloop::create_task(outer());
    co_await run_briefly();
    f.cancel();
    CHECK_THROWS_AS(co_await f, CancelledError);
    waiter.set();
    co_await run_briefly();
    CHECK(proof == 1);
    co_await inner_task;
  });
}

namespace {

// A hand-made future: a task that waits for `set` and then returns `value` (or throws, or is
// cancelled like any task).
Coro<int> future_of(Event& set, const int& value) {
  co_await set.wait();
  co_return value;
}

// `outer = asyncio.shield(inner)` as a task of its own.
template <class T>
Coro<T> shielded(Task<T> inner) {
  co_return co_await ringloop::shield(inner);
}

}  // namespace

TEST_CASE("test_shield_result: shield passes the inner result on", "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Event set;
    int value = 0;
    auto inner = ringloop::create_task(future_of(set, value));
    auto outer = ringloop::create_task(shielded(inner));
    value = 42;
    set.set();
    int res = co_await outer;
    CHECK(res == 42);
  });
}

TEST_CASE("test_shield_exception: shield passes the inner exception on",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Event set;
    auto fails = [&]() -> Coro<int> {
      co_await set.wait();
      throw std::runtime_error("expected");
    };
    auto inner = ringloop::create_task(fails());
    auto outer = ringloop::create_task(shielded(inner));
    co_await run_briefly();
    set.set();
    co_await run_briefly();
    co_await run_briefly();
    REQUIRE(outer.done());
    CHECK_THROWS_WITH(std::rethrow_exception(outer.exception()), "expected");
  });
}

TEST_CASE("test_shield_cancel_inner: the inner being cancelled cancels the shield's awaiter",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Event never;
    int value = 0;
    auto inner = ringloop::create_task(future_of(never, value));
    auto outer = ringloop::create_task(shielded(inner));
    co_await run_briefly();
    inner.cancel();
    co_await run_briefly();
    co_await run_briefly();
    CHECK(outer.cancelled());
  });
}

TEST_CASE("test_shield_cancel_outer: cancelling the shield's awaiter leaves the inner running",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Event set;
    int value = 0;
    auto inner = ringloop::create_task(future_of(set, value));
    auto outer = ringloop::create_task(shielded(inner));
    co_await run_briefly();
    outer.cancel();
    co_await run_briefly();
    CHECK(outer.cancelled());
    CHECK_FALSE(inner.done());
    set.set();
    co_await inner;
  });
}

TEST_CASE("test_shield_shortcut: shield of a finished task returns its result",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Event set;
    set.set();
    int value = 42;
    auto fut = ringloop::create_task(future_of(set, value));
    co_await fut;
    int res = co_await ringloop::shield(fut);
    CHECK(res == 42);
  });
}

TEST_CASE("test_shield_effect: cancelling outer() does not affect the shielded inner()",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    int proof = 0;
    Event waiter;
    auto inner = [&]() -> Coro<> {
      co_await waiter.wait();
      proof += 1;
    };
    Task<> inner_task;
    auto outer = [&]() -> Coro<> {
      inner_task = ringloop::create_task(inner());
      co_await ringloop::shield(inner_task);
      proof += 100;
    };
    auto f = ringloop::create_task(outer());
    co_await run_briefly();
    f.cancel();
    CHECK_THROWS_AS(co_await f, CancelledError);
    waiter.set();
    co_await run_briefly();
    CHECK(proof == 1);
    co_await inner_task;
  });
}

TEST_CASE(
    "test_shield_gather: a shielded gather keeps running when the shield's awaiter is "
    "cancelled",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Event set1, set2;
    int one = 0, two = 0;
    auto gather_children = [&]() -> Coro<std::tuple<int, int>> {
      co_return co_await ringloop::gather(future_of(set1, one), future_of(set2, two));
    };
    auto parent = ringloop::create_task(gather_children());
    auto outer = ringloop::create_task(shielded(parent));
    co_await run_briefly();
    outer.cancel();
    co_await run_briefly();
    CHECK(outer.cancelled());
    one = 1;
    two = 2;
    set1.set();
    set2.set();
    co_await run_briefly();
    auto result = co_await parent;
    CHECK(result == std::make_tuple(1, 2));
  });
}

TEST_CASE(
    "test_gather_shield: cancelling a gather of shields cancels the shields, not the "
    "tasks behind them",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Event set1, set2;
    int one = 1, two = 2;
    auto child1 = ringloop::create_task(future_of(set1, one));
    auto child2 = ringloop::create_task(future_of(set2, two));
    auto gather_shields = [&]() -> Coro<std::tuple<int, int>> {
      co_return co_await ringloop::gather(shielded(child1), shielded(child2));
    };
    auto parent = ringloop::create_task(gather_shields());
    co_await run_briefly();
    parent.cancel();
    co_await run_briefly();
    co_await run_briefly();
    REQUIRE(parent.done());
    CHECK(parent.cancelled());  // parent.exception() is a CancelledError
    CHECK_FALSE(child1.done());
    CHECK_FALSE(child2.done());
    set1.set();
    set2.set();
    int r1 = co_await child1;
    int r2 = co_await child2;
    CHECK(r1 == 1);
    CHECK(r2 == 2);
  });
}

// ---- basics

TEST_CASE("test_task_awaits_on_itself: a task awaiting itself is an error",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Task<> task;
    auto test = [&]() -> Coro<> { co_await task; };
    task = ringloop::create_task(test());
    CHECK_THROWS_WITH(co_await task, Catch::Contains("cannot await itself"));  // RuntimeError
  });
}

TEST_CASE("test_task_basics: a coroutine awaiting two others returns their sum",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    auto inner1 = []() -> Coro<int> { co_return 42; };
    auto inner2 = []() -> Coro<int> { co_return 1000; };
    auto outer = [&]() -> Coro<int> {
      int a = co_await inner1();
      int b = co_await inner2();
      co_return a + b;
    };
    int res = co_await outer();
    CHECK(res == 1042);
  });
}

TEST_CASE("test_bare_create_task: create_task inside a coroutine runs the coroutine",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    auto inner = []() -> Coro<int> { co_return 1; };
    auto task = ringloop::create_task(inner());
    int ret = co_await task;
    CHECK(ret == 1);
  });
}

TEST_CASE("test_sleep_zero: a callback scheduled with call_soon runs before sleep(0) returns",
          "[cpython][cpython_tasks]") {
  // asyncio.sleep(0, result=10) returns 10; ringloop's sleep returns nothing: the 10 is added by
  // hand.
  run_virtual([]() -> Coro<> {
    int result = 0;
    ringloop::call_soon([&result] { result += 1; });
    CHECK(result == 0);
    co_await ringloop::sleep(0s);
    CHECK(result == 1);  // inc'ed by call_soon
    result += 10;
    CHECK(result == 11);
  });
}

// ---- gather (GatherTestsBase, FutureGatherTests, CoroutineGatherTests)

namespace {

// One of the hand-made futures a, b, c... of the gather tests: a task that waits for its
// Event, then returns its value, throws its error, or (cancelled by hand) ends cancelled.
struct Child {
  Event set;
  int value = 0;
  std::exception_ptr error;
  Task<int> task;

  void start() { task = ringloop::create_task(run(*this)); }
  void set_result(int v) {
    value = v;
    set.set();
  }
  void set_exception(std::exception_ptr e) {
    error = std::move(e);
    set.set();
  }
  static Coro<int> run(Child& self) {
    co_await self.set.wait();
    if (self.error) std::rethrow_exception(self.error);
    co_return self.value;
  }
};

// Runs the loop until nothing is ready (GatherTestsBase._run_loop): a few passes here.
Coro<> run_loop() {
  for (int i = 0; i < 4; ++i) co_await ringloop::sleep(0s);
}

std::vector<Task<int>> tasks_of(std::vector<Child>& children) {
  std::vector<Task<int>> out;
  for (auto& c : children) out.push_back(c.task);
  return out;
}

Coro<std::vector<int>> gather_values(std::vector<Task<int>> tasks) {
  co_return co_await ringloop::gather(tasks);
}

Coro<std::vector<ringloop::Outcome<int>>> gather_outcomes(std::vector<Task<int>> tasks) {
  co_return co_await ringloop::gather(ringloop::return_exceptions, tasks);
}

bool is_cancelled_error(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

TEST_CASE("test_success: gather finishes when the last child does, with the results in order",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    std::vector<Child> c(3);
    for (auto& child : c) child.start();
    auto fut = ringloop::create_task(gather_values(tasks_of(c)));
    c[1].set_result(1);
    c[0].set_result(2);
    co_await run_loop();
    CHECK_FALSE(fut.done());
    c[2].set_result(3);
    co_await run_loop();
    REQUIRE(fut.done());
    CHECK(fut.result() == (std::vector<int>{2, 1, 3}));
  });
}

TEST_CASE(
    "test_result_exception_success: with return_exceptions, the values come back as "
    "outcomes",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    std::vector<Child> c(3);
    for (auto& child : c) child.start();
    auto fut = ringloop::create_task(gather_outcomes(tasks_of(c)));
    c[1].set_result(1);
    c[0].set_result(2);
    co_await run_loop();
    CHECK_FALSE(fut.done());
    c[2].set_result(3);
    co_await run_loop();
    REQUIRE(fut.done());
    auto res = fut.result();
    REQUIRE(res.size() == 3);
    CHECK(res[0].value() == 2);
    CHECK(res[1].value() == 1);
    CHECK(res[2].value() == 3);
  });
}

TEST_CASE("test_one_exception: the first child's error ends the gather with that error",
          "[cpython][cpython_tasks]") {
  // asyncio leaves the other children running; ringloop cancels them (README names table,
  // gather row): c, d and e end cancelled instead of "does nothing".
  run_virtual([]() -> Coro<> {
    std::vector<Child> c(5);
    for (auto& child : c) child.start();
    auto fut = ringloop::create_task(gather_values(tasks_of(c)));
    c[0].set_result(1);
    c[1].set_exception(std::make_exception_ptr(std::domain_error("ZeroDivisionError")));
    co_await run_loop();
    REQUIRE(fut.done());
    CHECK_THROWS_AS(std::rethrow_exception(fut.exception()), std::domain_error);
    for (int i : {2, 3, 4}) CHECK(c[i].task.cancelled());
  });
}

TEST_CASE("test_return_exceptions: with return_exceptions, errors come back in their places",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    std::vector<Child> c(4);
    for (auto& child : c) child.start();
    auto fut = ringloop::create_task(gather_outcomes(tasks_of(c)));
    auto exc = std::make_exception_ptr(std::domain_error("ZeroDivisionError"));
    auto exc2 = std::make_exception_ptr(std::runtime_error("RuntimeError"));
    c[1].set_result(1);
    c[2].set_exception(exc);
    c[0].set_result(3);
    co_await run_loop();
    CHECK_FALSE(fut.done());
    c[3].set_exception(exc2);
    co_await run_loop();
    REQUIRE(fut.done());
    auto res = fut.result();
    REQUIRE(res.size() == 4);
    CHECK(res[0].value() == 3);
    CHECK(res[1].value() == 1);
    CHECK(res[2].exception() == exc);
    CHECK(res[3].exception() == exc2);
  });
}

TEST_CASE(
    "test_one_cancellation: a child cancelled by hand makes the gather raise "
    "CancelledError",
    "[cpython][cpython_tasks]") {
  // asyncio: the gathering future ends (not cancelled) with a CancelledError as its exception;
  // here the awaiting task sees the CancelledError and catches it. The other children are
  // cancelled (README names table, gather row).
  run_virtual([]() -> Coro<> {
    std::vector<Child> c(5);
    for (auto& child : c) child.start();
    bool raised = false;
    auto gatherer = [&]() -> Coro<> {
      try {
        co_await ringloop::gather(tasks_of(c));
      } catch (const CancelledError&) {
        raised = true;
      }
    };
    auto fut = ringloop::create_task(gatherer());
    c[0].set_result(1);
    c[1].task.cancel();
    co_await run_loop();
    REQUIRE(fut.done());
    CHECK_FALSE(fut.cancelled());
    CHECK(raised);
  });
}

TEST_CASE(
    "test_result_exception_one_cancellation: with return_exceptions, a cancelled child "
    "is a CancelledError in its place",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    std::vector<Child> c(6);
    for (auto& child : c) child.start();
    auto fut = ringloop::create_task(gather_outcomes(tasks_of(c)));
    c[0].set_result(1);
    auto zde = std::make_exception_ptr(std::domain_error("ZeroDivisionError"));
    c[1].set_exception(zde);
    c[2].task.cancel();
    co_await run_loop();
    CHECK_FALSE(fut.done());
    c[3].set_result(3);
    c[4].task.cancel();
    auto rte = std::make_exception_ptr(std::runtime_error("RuntimeError"));
    c[5].set_exception(rte);
    auto res = co_await fut;
    REQUIRE(res.size() == 6);
    CHECK(res[0].value() == 1);
    CHECK(res[1].exception() == zde);
    CHECK(is_cancelled_error(res[2].exception()));
    CHECK(res[3].value() == 3);
    CHECK(is_cancelled_error(res[4].exception()));
    CHECK(res[5].exception() == rte);
  });
}

TEST_CASE(
    "test_duplicate_coroutines: the same awaitable gathered three times gives its result "
    "three times",
    "[cpython][cpython_tasks]") {
  // A Coro runs once and cannot be listed twice; the same Task is the C++ form.
  run_virtual([]() -> Coro<> {
    auto coro = [](std::string s) -> Coro<std::string> { co_return s; };
    auto c = ringloop::create_task(coro("abc"));
    auto d = ringloop::create_task(coro("def"));
    auto [r1, r2, r3, r4] = co_await ringloop::gather(c, c, d, c);
    CHECK(std::vector<std::string>{r1, r2, r3, r4} ==
          std::vector<std::string>{"abc", "abc", "def", "abc"});
  });
}

TEST_CASE(
    "test_cancellation_broadcast: cancelling the task awaiting a gather cancels every "
    "child",
    "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    int proof = 0;
    Event waiter;
    int waits_cancelled = 0;
    auto inner = [&]() -> Coro<> {
      try {
        co_await waiter.wait();
      } catch (const CancelledError&) {
        ++waits_cancelled;
        throw;
      }
      proof += 1;
    };
    auto child1 = ringloop::create_task(inner());
    auto child2 = ringloop::create_task(inner());
    auto outer = [&]() -> Coro<> {
      co_await ringloop::gather(child1, child2);
      proof += 100;
    };
    auto f = ringloop::create_task(outer());
    co_await run_briefly();
    CHECK(f.cancel());
    CHECK_THROWS_AS(co_await f, CancelledError);
    CHECK(waits_cancelled == 2);  // waiter.cancelled()
    CHECK(child1.cancelled());
    CHECK(child2.cancelled());
    co_await run_briefly();
    CHECK(proof == 0);
  });
}

TEST_CASE("test_exception_marking: a gather whose children both fail ends with the error",
          "[cpython][cpython_tasks]") {
  run_virtual([]() -> Coro<> {
    Event a, b;
    auto inner = [](Event& f) -> Coro<> {
      co_await f.wait();
      throw std::runtime_error("should not be ignored");
    };
    auto outer = [&]() -> Coro<> { co_await ringloop::gather(inner(a), inner(b)); };
    auto f = ringloop::create_task(outer());
    co_await run_briefly();
    a.set();
    co_await run_briefly();
    b.set();
    co_await run_briefly();
    co_await run_loop();
    REQUIRE(f.done());
    CHECK_THROWS_AS(std::rethrow_exception(f.exception()), std::runtime_error);
  });
}

// ---- run_coroutine_threadsafe (real time: a worker thread holds the virtual clock)

TEST_CASE(
    "test_run_coroutine_threadsafe: a coroutine submitted from another thread runs on the "
    "loop and its result comes back",
    "[cpython][cpython_tasks][thread]") {
  int result = ringloop::run([]() -> Coro<int> {
    ringloop::LoopHandle handle(*ringloop::Loop::current());
    auto add = [](int a, int b) -> Coro<int> {
      co_await ringloop::sleep(50ms);
      co_return a + b;
    };
    // target(): run_in_executor(None, target) submits add(1, 2) and waits for its future.
    auto target = [handle, add]() mutable {
      return handle.run_coroutine_threadsafe(add(1, 2)).get();
    };
    co_return co_await ringloop::to_thread(target);
  }());
  CHECK(result == 3);
}
