// What cancelling a task costs in C++ unwinds, counted. Every throw (throw, `throw;`,
// std::rethrow_exception) starts an unwind through libgcc's _Unwind_RaiseException; this test
// binary defines it, counts the call and forwards it to libgcc (an executable's definition comes
// before a shared library's, so the calls from libstdc++ and from libgcc's own rethrow reach it).
// The rules checked: a cancelled task unwinds once (its own frame's CancelledError), the
// combinators hand its outcome on without rethrowing it, and a task cancelled before it started
// ends cancelled without any unwind (its body never runs, as in asyncio).
#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <unwind.h>

#include <atomic>
#include <vector>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Task;

namespace {
std::atomic<long> unwinds{0};

template <class Fn>
Fn next_definition(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}
}  // namespace

extern "C" {
__attribute__((visibility("default"))) _Unwind_Reason_Code _Unwind_RaiseException(
    _Unwind_Exception* exception) {
  using Fn = _Unwind_Reason_Code (*)(_Unwind_Exception*);
  static const Fn next = next_definition<Fn>("_Unwind_RaiseException");
  unwinds.fetch_add(1, std::memory_order_relaxed);
  return next(exception);
}
}

namespace {

long unwinds_now() { return unwinds.load(std::memory_order_relaxed); }

Coro<> sleep_an_hour() { co_await ringloop::sleep(1h); }

Coro<> sleep_an_hour_nested() { co_await sleep_an_hour(); }

Coro<> mark_ran(bool& ran) {
  ran = true;
  co_await ringloop::sleep(1h);
}

// Tasks sleeping an hour, each suspended in its sleep when this returns.
Coro<std::vector<Task<>>> start_sleepers(int count) {
  std::vector<Task<>> tasks;
  for (int i = 0; i < count; ++i) tasks.push_back(ringloop::create_task(sleep_an_hour()));
  co_await ringloop::sleep(0s);
  co_return tasks;
}

}  // namespace

TEST_CASE("the unwind counter sees throw, rethrow_exception and throw;", "[cancel_cost]") {
  long before = unwinds_now();
  std::exception_ptr error;
  try {
    throw CancelledError();
  } catch (...) {
    error = std::current_exception();
  }
  try {
    std::rethrow_exception(error);
  } catch (const CancelledError&) {
  }
  try {
    try {
      throw 1;
    } catch (...) {
      throw;
    }
  } catch (int) {
  }
  CHECK(unwinds_now() - before == 4);
  // Built in place by libstdc++: what a task cancelled before it started ends with.
  auto made = std::make_exception_ptr(CancelledError());
  CHECK(unwinds_now() - before == 4);
}

TEST_CASE("a task cancelled in its sleep costs one unwind, and gather passes it on without one",
          "[cancel_cost]") {
  ringloop::run([]() -> Coro<> {
    std::vector<Task<>> tasks = co_await start_sleepers(10);
    long before = unwinds_now();
    for (Task<>& task : tasks) task.cancel();
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions, tasks);
    long counted = unwinds_now() - before;
    CHECK(counted == 10);
    for (auto& outcome : outcomes) CHECK_FALSE(outcome.has_value());
    for (Task<>& task : tasks) CHECK(task.cancelled());
  }());
}

TEST_CASE("a task cancelled before it started ends cancelled without running and without an unwind",
          "[cancel_cost]") {
  ringloop::run([]() -> Coro<> {
    bool ran = false;
    long before = unwinds_now();
    Task<> task = ringloop::create_task(mark_ran(ran));
    CHECK(task.cancel());
    CHECK_FALSE(task.done());  // asyncio: it ends on its first step, not inside cancel()
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions, task);
    long counted = unwinds_now() - before;
    CHECK(counted == 0);
    CHECK_FALSE(ran);
    CHECK(task.cancelled());
    CHECK_FALSE(std::get<0>(outcomes).has_value());
    CHECK_THROWS_AS(std::rethrow_exception(std::get<0>(outcomes).exception()), CancelledError);
  }());
}

TEST_CASE("a cancel taken back with uncancel before the first step lets the task run",
          "[cancel_cost]") {
  ringloop::run([]() -> Coro<> {
    bool ran = false;
    Task<> task = ringloop::create_task(mark_ran(ran));
    task.cancel();
    CHECK(task.uncancel() == 0);
    co_await ringloop::sleep(0s);
    CHECK(ran);
    CHECK_FALSE(task.done());
    task.cancel();
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions, task);
    CHECK(task.cancelled());
    CHECK_FALSE(std::get<0>(outcomes).has_value());
  }());
}

TEST_CASE("a task run() cancels before it started, as run() ends, costs no unwind",
          "[cancel_cost]") {
  bool ran = false;
  long before = 0;
  ringloop::run([&]() -> Coro<> {
    // Left pending at the end of run(): the loop cancels it before it ever ran.
    ringloop::create_task(mark_ran(ran));
    before = unwinds_now();
    co_return;
  }());
  CHECK(unwinds_now() - before == 0);
  CHECK_FALSE(ran);
}

TEST_CASE("a cancelled gather costs one unwind per cancelled task, its own included",
          "[cancel_cost]") {
  ringloop::run([]() -> Coro<> {
    auto outer =
        ringloop::create_task(ringloop::gather(sleep_an_hour(), sleep_an_hour(), sleep_an_hour()));
    co_await ringloop::sleep(0s);
    co_await ringloop::sleep(0s);
    long before = unwinds_now();
    outer.cancel();
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions, outer);
    long counted = unwinds_now() - before;
    // Three children (one each) and the task that awaited the gather (gather's CancelledError).
    CHECK(counted == 4);
    CHECK(outer.cancelled());
    CHECK_FALSE(std::get<0>(outcomes).has_value());
  }());
}

TEST_CASE("a cancel unwinds once per coroutine frame between the sleep and the task",
          "[cancel_cost]") {
  // The known cost of nesting: each awaiting Coro rethrows its child's CancelledError (C++ has
  // no way to end a frame's body but an exception). One level here: two unwinds.
  ringloop::run([]() -> Coro<> {
    Task<> task = ringloop::create_task(sleep_an_hour_nested());
    co_await ringloop::sleep(0s);
    long before = unwinds_now();
    task.cancel();
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions, task);
    long counted = unwinds_now() - before;
    CHECK(counted == 2);
    CHECK(task.cancelled());
    (void)outcomes;
  }());
}

TEST_CASE("wait_for that times out costs the child's unwind and its TimeoutError",
          "[cancel_cost]") {
  ringloop::run([]() -> Coro<> {
    long before = unwinds_now();
    bool timed_out = false;
    try {
      co_await ringloop::wait_for(sleep_an_hour(), 1ms);
    } catch (const ringloop::TimeoutError&) {
      timed_out = true;
    }
    long counted = unwinds_now() - before;
    CHECK(timed_out);
    CHECK(counted == 2);
  }());
}
