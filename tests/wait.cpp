// wait, AsCompleted and shield: asyncio.wait's three conditions and its timeout (which returns,
// never throws, and cancels nothing), as_completed's order and timeout, and shield's rule that
// cancelling the awaiter leaves the task running.
#include <catch2/catch.hpp>

#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"

using namespace std::chrono_literals;
using ringloop::AsCompleted;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::ReturnWhen;
using ringloop::Task;
using ringloop::TimeoutError;
using test_support::fail_after;
using test_support::value_after;

namespace {

std::vector<Task<int>> start(std::vector<Coro<int>> coros) {
  std::vector<Task<int>> tasks;
  for (auto& coro : coros) tasks.push_back(ringloop::create_task(std::move(coro)));
  return tasks;
}

void cancel_all(std::vector<Task<int>>& tasks) {
  for (auto& task : tasks) task.cancel();
}

}  // namespace

TEST_CASE("wait ALL_COMPLETED returns every task done, failures included", "[wait]") {
  ringloop::run([]() -> Coro<> {
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(10ms, 1));
    coros.push_back(fail_after(5ms, "boom"));
    auto tasks = start(std::move(coros));
    auto [done, pending] = co_await ringloop::wait(tasks);
    CHECK(done.size() == 2);
    CHECK(pending.empty());
    CHECK(tasks[0].result() == 1);
    CHECK(tasks[1].exception() != nullptr);
    CHECK(ringloop::Loop::current()->in_flight() == 0);
  }());
}

TEST_CASE("wait FIRST_COMPLETED and FIRST_EXCEPTION return early and cancel nothing", "[wait]") {
  ringloop::run([]() -> Coro<> {
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(5ms, 1));
    coros.push_back(value_after(1s, 2));
    auto tasks = start(std::move(coros));
    auto first = co_await ringloop::wait(tasks, ReturnWhen::first_completed);
    CHECK(first.done.size() == 1);
    CHECK(first.done[0].result() == 1);
    REQUIRE(first.pending.size() == 1);
    CHECK_FALSE(first.pending[0].done());  // still running: wait cancels nothing
    cancel_all(first.pending);

    std::vector<Coro<int>> more;
    more.push_back(value_after(5ms, 1));    // finishes first, but is no exception
    more.push_back(fail_after(15ms, "x"));  // the first exception
    more.push_back(value_after(1s, 3));
    auto others = start(std::move(more));
    auto [done, pending] = co_await ringloop::wait(others, ReturnWhen::first_exception);
    CHECK(done.size() == 2);
    CHECK(pending.size() == 1);
    CHECK(others[1].exception() != nullptr);
    cancel_all(pending);
  }());
}

TEST_CASE("wait with a timeout returns the unfinished tasks in pending", "[wait]") {
  ringloop::run([]() -> Coro<> {
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(5ms, 1));
    coros.push_back(value_after(1s, 2));
    auto tasks = start(std::move(coros));
    auto start_time = std::chrono::steady_clock::now();
    auto [done, pending] = co_await ringloop::wait(tasks, 30ms);
    auto elapsed = std::chrono::steady_clock::now() - start_time;
    CHECK(done.size() == 1);
    CHECK(pending.size() == 1);
    CHECK(elapsed >= 30ms);
    CHECK(elapsed < 900ms);
    cancel_all(pending);
  }());
}

TEST_CASE("wait: misuse and cancellation", "[wait]") {
  ringloop::run([]() -> Coro<> {
    CHECK_THROWS_AS(co_await ringloop::wait(std::vector<Task<int>>{}), std::invalid_argument);
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(1s, 1));
    auto tasks = start(std::move(coros));
    auto waiter = ringloop::create_task([](std::vector<Task<int>> watched) -> Coro<int> {
      auto result = co_await ringloop::wait(std::move(watched), 10s);
      co_return static_cast<int>(result.done.size());
    }(tasks));
    co_await ringloop::sleep(5ms);
    waiter.cancel();
    CHECK_THROWS_AS(co_await waiter, CancelledError);
    CHECK_FALSE(tasks[0].done());  // the watched task runs on
    tasks[0].cancel();
  }());
}

TEST_CASE("AsCompleted hands tasks back in the order they finish", "[as_completed]") {
  ringloop::run([]() -> Coro<> {
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(30ms, 3));
    coros.push_back(value_after(10ms, 1));
    coros.push_back(value_after(20ms, 2));
    AsCompleted<int> each(std::move(coros));
    std::vector<int> order;
    while (each.has_next()) {
      Task<int> task = co_await each.next();
      order.push_back(task.result());
    }
    CHECK(order == std::vector<int>{1, 2, 3});
    CHECK_THROWS_AS(each.next(), std::logic_error);
  }());
}

TEST_CASE("AsCompleted with a timeout throws TimeoutError for what is left", "[as_completed]") {
  ringloop::run([]() -> Coro<> {
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(5ms, 1));
    coros.push_back(value_after(1s, 2));
    auto tasks = start(std::move(coros));
    AsCompleted<int> each(tasks, 30ms);
    Task<int> first = co_await each.next();
    CHECK(first.result() == 1);
    CHECK_THROWS_AS(co_await each.next(), TimeoutError);
    CHECK_FALSE(tasks[1].done());  // not cancelled by as_completed
    tasks[1].cancel();
  }());
}

TEST_CASE(
    "AsCompleted::next awaited by two tasks at once gives the first result to the first awaiter",
    "[as_completed][conformance]") {
  // asyncio.as_completed: every waiter awaits one queue of finished tasks, so the first task to
  // finish goes to the waiter that awaited first. It aborted on an assertion here.
  ringloop::run([]() -> Coro<> {
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(20ms, 2));
    coros.push_back(value_after(10ms, 1));
    AsCompleted<int> each(std::move(coros));
    auto take = [](AsCompleted<int>& from) -> Coro<int> {
      Task<int> task = co_await from.next();
      co_return task.result();
    };
    auto first = ringloop::create_task(take(each));
    auto second = ringloop::create_task(take(each));
    co_await ringloop::sleep(0ms);  // both are waiting in next() now
    CHECK_FALSE(each.has_next());   // two next() for two tasks
    int first_value = co_await first;
    int second_value = co_await second;
    CHECK(first_value == 1);
    CHECK(second_value == 2);
  }());
}

TEST_CASE("AsCompleted over the same task twice hands it back once",
          "[as_completed][conformance]") {
  // asyncio.as_completed iterates over set(fs): a task given twice is one task.
  ringloop::run([]() -> Coro<> {
    auto task = ringloop::create_task(value_after(1ms, 7));
    AsCompleted<int> each(std::vector<Task<int>>{task, task});
    Task<int> only = co_await each.next();
    CHECK(only.result() == 7);
    CHECK_FALSE(each.has_next());
  }());
}

// With no memory for the deadline's timer, the awaiter throws bad_alloc before it suspends and
// takes back what it registered: the tasks finish later with nobody's node on them (ASan would
// see a node of a gone awaiter), and AsCompleted still hands out the task next() did not.
TEST_CASE("wait and AsCompleted::next with no memory for their timer throw and unregister",
          "[wait][as_completed]") {
  ringloop::run([]() -> Coro<> {
    int refused = 0;
    for (long allowed = 0; allowed < 6; ++allowed) {
      auto tasks = start([] {
        std::vector<Coro<int>> coros;
        coros.push_back(value_after(2ms, 1));
        coros.push_back(value_after(3ms, 2));
        return coros;
      }());
      bool threw = false;
      ringloop::detail::fail_allocations_after(allowed);
      try {
        auto result = co_await ringloop::wait(tasks, 1h);
        CHECK(result.done.size() == 2);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      ringloop::detail::fail_allocations_after(-1);
      refused += threw;
      for (Task<int>& task : tasks) CHECK((co_await task) > 0);

      std::vector<Coro<int>> coros;
      coros.push_back(value_after(2ms, 3));
      AsCompleted<int> each(std::move(coros), 1h);
      ringloop::detail::fail_allocations_after(allowed);
      threw = false;
      try {
        Task<int> task = co_await each.next();
        CHECK(task.result() == 3);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      ringloop::detail::fail_allocations_after(-1);
      refused += threw;
      if (threw) {
        CHECK(each.has_next());
        Task<int> task = co_await each.next();
        CHECK(task.result() == 3);
      }
      CHECK_FALSE(each.has_next());
    }
    CHECK(refused >= 2);  // the timer's record was refused in wait and in next
    CHECK(ringloop::Loop::current()->in_flight() <= 2);
  }());
}

TEST_CASE("shield: cancelling the awaiter leaves the task running", "[shield]") {
  ringloop::run([]() -> Coro<> {
    auto inner = ringloop::create_task(value_after(30ms, 4));
    auto outer = ringloop::create_task([](Task<int> shielded) -> Coro<int> {
      co_return co_await ringloop::shield(std::move(shielded));
    }(inner));
    co_await ringloop::sleep(5ms);
    outer.cancel();
    CHECK_THROWS_AS(co_await outer, CancelledError);
    CHECK_FALSE(inner.done());
    int value = co_await inner;
    CHECK(value == 4);

    int through = co_await ringloop::shield(value_after(1ms, 5));  // not cancelled: the result
    CHECK(through == 5);
  }());
}

TEST_CASE("wait FIRST_COMPLETED returns on the same loop pass as asyncio.wait",
          "[wait][conformance]") {
  // asyncio.wait resumes its caller through a future: the finished task's done callback
  // (_on_completion) runs one pass after it finished and sets the waiter, whose own callback
  // wakes the caller one pass later; done and pending are read then. The same program, run by
  // python3 (3.11), prints the log below:
  //
  //   async def main():
  //       log = []
  //       async def yields_twice():
  //           await asyncio.sleep(0); log.append("a1")
  //           await asyncio.sleep(0); log.append("a2")
  //           return 1
  //       async def yields_thrice():
  //           await asyncio.sleep(0); log.append("b1")
  //           await asyncio.sleep(0); log.append("b2")
  //           await asyncio.sleep(0); log.append("b3")
  //           return 2
  //       async def ticker():
  //           for i in range(8):
  //               log.append(f"t{i}")
  //               await asyncio.sleep(0)
  //       t = asyncio.create_task(ticker())
  //       a = asyncio.create_task(yields_twice())
  //       b = asyncio.create_task(yields_thrice())
  //       done, pending = await asyncio.wait([a, b], return_when=asyncio.FIRST_COMPLETED)
  //       log.append(f"wait returned done={len(done)}")
  //       print(log)
  //       await t; await b
  //   asyncio.run(main())
  std::vector<std::string> log;
  ringloop::run([](std::vector<std::string>& log) -> Coro<> {
    auto yields = [](std::vector<std::string>& out, std::string name, int times) -> Coro<int> {
      for (int i = 1; i <= times; ++i) {
        co_await ringloop::sleep(0ms);
        out.push_back(name + std::to_string(i));
      }
      co_return times;
    };
    auto ticker = ringloop::create_task([](std::vector<std::string>& out) -> Coro<int> {
      for (int i = 0; i < 8; ++i) {
        out.push_back("t" + std::to_string(i));
        co_await ringloop::sleep(0ms);
      }
      co_return 0;
    }(log));
    std::vector<Task<int>> tasks;
    tasks.push_back(ringloop::create_task(yields(log, "a", 2)));
    tasks.push_back(ringloop::create_task(yields(log, "b", 3)));
    auto result = co_await ringloop::wait(tasks, ReturnWhen::first_completed);
    log.push_back("wait returned done=" + std::to_string(result.done.size()));
    co_await ticker;
    co_await tasks[1];
  }(log));
  REQUIRE(log.size() >= 11);
  std::vector<std::string> expected{
      "t0", "t1", "a1", "b1", "t2", "a2", "b2", "t3", "b3", "t4", "wait returned done=2"};
  CHECK(std::vector<std::string>(log.begin(), log.begin() + 11) == expected);
}
