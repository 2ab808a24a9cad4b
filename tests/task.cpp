// Task<T>: starts on its own, is owned by the loop, can be queried, awaited several times,
// cancelled in every state of what it waits on, and reports exceptions nobody retrieved.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

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
using test_support::fail_after;
using test_support::value_after;

namespace {

Coro<> mark(int& flag, int value) {
  flag = value;
  co_return;
}

Coro<> sleep_forever() { co_await ringloop::sleep(std::chrono::hours(1)); }

Coro<int> catch_cancel_and_return(int value) {
  try {
    co_await ringloop::sleep(std::chrono::hours(1));
  } catch (const CancelledError&) {
    co_return value;
  }
  co_return -1;
}

}  // namespace

TEST_CASE("create_task starts the coroutine without being awaited", "[task]") {
  int flag = 0;
  ringloop::run([&]() -> Coro<> {
    auto task = ringloop::create_task(mark(flag, 1));
    CHECK(flag == 0);  // starts on the loop's next step, not inside create_task
    CHECK_FALSE(task.done());
    co_await ringloop::sleep(0s);
    CHECK(flag == 1);
    CHECK(task.done());
  }());
}

TEST_CASE("a task whose handle is dropped keeps running", "[task]") {
  int flag = 0;
  ringloop::run([&]() -> Coro<> {
    { ringloop::create_task(mark(flag, 2)); }
    co_await ringloop::sleep(5ms);
    CHECK(flag == 2);
  }());
}

TEST_CASE("create_task outside a running loop is a clear error", "[task]") {
  CHECK_THROWS_WITH(ringloop::create_task(value_after(1ms, 1)),
                    Catch::Contains("no running event loop"));
}

TEST_CASE("a task reports done, result and exception", "[task]") {
  ringloop::run([]() -> Coro<> {
    auto good = ringloop::create_task(value_after(1ms, 5));
    auto bad = ringloop::create_task(fail_after(1ms, "task failed"));
    CHECK_THROWS_AS(good.result(), ringloop::InvalidStateError);
    CHECK_THROWS_AS(bad.exception(), ringloop::InvalidStateError);
    co_await ringloop::sleep(10ms);
    CHECK(good.done());
    CHECK_FALSE(good.cancelled());
    CHECK(good.result() == 5);
    CHECK(good.exception() == nullptr);
    CHECK(bad.done());
    CHECK(bad.exception() != nullptr);
    CHECK_THROWS_WITH(bad.result(), "task failed");
  }());
}

TEST_CASE("several coroutines can await one task", "[task]") {
  ringloop::run([]() -> Coro<> {
    auto shared = ringloop::create_task(value_after(5ms, 9));
    auto first =
        ringloop::create_task([](Task<int> t) -> Coro<int> { co_return co_await t; }(shared));
    auto second =
        ringloop::create_task([](Task<int> t) -> Coro<int> { co_return co_await t + 1; }(shared));
    int a = co_await first;
    int b = co_await second;
    int c = co_await shared;
    CHECK(a == 9);
    CHECK(b == 10);
    CHECK(c == 9);
  }());
}

TEST_CASE("cancelling a task suspended in a sleep ends the sleep at once", "[task][cancel]") {
  ringloop::run([]() -> Coro<> {
    auto start = std::chrono::steady_clock::now();
    auto task = ringloop::create_task(sleep_forever());
    co_await ringloop::sleep(2ms);
    CHECK(task.cancel());
    CHECK_THROWS_AS(co_await task, CancelledError);
    CHECK(task.cancelled());
    CHECK_THROWS_AS(task.result(), CancelledError);
    CHECK(test_support::seconds_since(start) < 1.0);
  }());
}

TEST_CASE("a task cancelled before it started never runs its body", "[task][cancel]") {
  int flag = 0;
  ringloop::run([&]() -> Coro<> {
    auto task = ringloop::create_task(mark(flag, 3));
    CHECK(task.cancel());
    CHECK_THROWS_AS(co_await task, CancelledError);
    CHECK(flag == 0);
    CHECK(task.cancelled());
  }());
}

TEST_CASE("cancelling a finished task is a no-op that says false", "[task][cancel]") {
  ringloop::run([]() -> Coro<> {
    auto task = ringloop::create_task(value_after(1ms, 1));
    co_await task;
    CHECK_FALSE(task.cancel());
    CHECK(task.result() == 1);
    CHECK_FALSE(task.cancelled());
  }());
}

TEST_CASE("a cancel that lands after the sleep fired still surfaces as CancelledError",
          "[task][cancel]") {
  // The timer's CQE has been reaped and the task sits in the ready queue when cancel() comes
  // (asyncio's "completed but not yet resumed"): the task sees CancelledError on resume.
  ringloop::run([]() -> Coro<> {
    auto sleeper = ringloop::create_task(value_after(1ms, 1));
    auto canceller = ringloop::create_task([](Task<int> target) -> Coro<> {
      co_await ringloop::sleep(1ms);
      target.cancel();
    }(sleeper));
    co_await ringloop::sleep(20ms);
    co_await canceller;
    CHECK(sleeper.done());
    // Either it finished before the cancel (value) or the cancel won: never both, never neither.
    CHECK((sleeper.cancelled() || sleeper.result() == 1));
  }());
}

TEST_CASE("a cancel before the sleep reaches the kernel is not lost", "[task][cancel]") {
  // asio #1574: a cancel before the timer is armed was ignored and the timer waited forever.
  ringloop::LoopOptions options;
  options.max_in_flight = 1;  // the second sleep waits in the FIFO, not yet in the SQ
  ringloop::run(
      []() -> Coro<> {
        auto start = std::chrono::steady_clock::now();
        auto first = ringloop::create_task(sleep_forever());
        auto second = ringloop::create_task(sleep_forever());
        co_await ringloop::sleep(0s);
        co_await ringloop::sleep(0s);
        CHECK(second.cancel());
        CHECK(first.cancel());
        CHECK_THROWS_AS(co_await second, CancelledError);
        CHECK_THROWS_AS(co_await first, CancelledError);
        CHECK(test_support::seconds_since(start) < 1.0);
      }(),
      options);
}

TEST_CASE("a cancel while the operation's SQE is still in the SQ is not lost", "[task][cancel]") {
  // The reader queues its READ SQE; in the same loop step, before any io_uring_enter, the
  // canceller cancels it: ASYNC_CANCEL follows the READ in the same batch. (A sleep would not
  // do: its TIMEOUT is prepared lazily, at the submit point, and a cancel before then never
  // reaches the kernel: lazy_timers.cpp.)
  ringloop::run([]() -> Coro<> {
    auto start = std::chrono::steady_clock::now();
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    auto sleeper = ringloop::create_task([](int fd) -> Coro<> {
      char byte = 0;
      co_await ringloop::io::read(fd, &byte, 1);  // nothing is ever written
    }(fds[0]));
    unsigned queued_at_cancel = 0;
    auto canceller = ringloop::create_task([](Task<> target, unsigned& queued) -> Coro<> {
      queued = ringloop::Loop::current()->ring().queued_sqes();
      target.cancel();
      co_return;
    }(sleeper, queued_at_cancel));
    CHECK_THROWS_AS(co_await sleeper, CancelledError);
    co_await canceller;
    CHECK(queued_at_cancel >= 1);
    CHECK(test_support::seconds_since(start) < 1.0);
    ::close(fds[0]);
    ::close(fds[1]);
  }());
}

TEST_CASE("a task may catch CancelledError and go on", "[task][cancel]") {
  ringloop::run([]() -> Coro<> {
    auto task = ringloop::create_task(catch_cancel_and_return(17));
    co_await ringloop::sleep(1ms);
    task.cancel();
    int value = co_await task;
    CHECK(value == 17);
    CHECK_FALSE(task.cancelled());
  }());
}

TEST_CASE("cancelling a task that awaits another task cancels that one too", "[task][cancel]") {
  ringloop::run([]() -> Coro<> {
    auto inner = ringloop::create_task(sleep_forever());
    auto outer = ringloop::create_task([](Task<> t) -> Coro<> { co_await t; }(inner));
    co_await ringloop::sleep(1ms);
    outer.cancel();
    CHECK_THROWS_AS(co_await outer, CancelledError);
    CHECK(inner.cancelled());
  }());
}

TEST_CASE("a task cannot await itself", "[task]") {
  ringloop::run([]() -> Coro<> {
    struct Box {
      Task<> self;
    } box;
    box.self = ringloop::create_task([](Box& b) -> Coro<> {
      co_await ringloop::sleep(0s);
      CHECK_THROWS_WITH(co_await b.self, Catch::Contains("cannot await itself"));
    }(box));
    co_await box.self;
  }());
}

TEST_CASE("an exception nobody retrieved is reported when the task is freed", "[task]") {
  std::string report = test_support::capture_stderr([] {
    ringloop::run([]() -> Coro<> {
      ringloop::create_task(fail_after(1ms, "task failed"));
      co_await ringloop::sleep(10ms);
    }());
  });
  CHECK_THAT(report, Catch::Contains("Task exception was never retrieved"));
  CHECK_THAT(report, Catch::Contains("task failed"));
}

TEST_CASE("an exception that was retrieved is not reported", "[task]") {
  std::string report = test_support::capture_stderr([] {
    ringloop::run([]() -> Coro<> {
      auto task = ringloop::create_task(fail_after(1ms, "task failed"));
      CHECK_THROWS(co_await task);
    }());
  });
  CHECK(report.empty());
}

TEST_CASE("tasks run in the order they were created", "[task]") {
  std::vector<int> order;
  ringloop::run([](std::vector<int>& out) -> Coro<> {
    std::vector<Task<>> tasks;
    for (int i = 0; i < 5; ++i)
      tasks.push_back(ringloop::create_task([](std::vector<int>& o, int n) -> Coro<> {
        o.push_back(n);
        co_return;
      }(out, i)));
    for (auto& task : tasks) co_await task;
  }(order));
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("awaiting a task of another loop is a clear error", "[task]") {
  ringloop::Loop other;
  auto foreign = ringloop::create_task(other, value_after(1ms, 1));
  ringloop::run([](Task<int> t) -> Coro<> {
    CHECK_THROWS_WITH(co_await t, Catch::Contains("another event loop"));
  }(foreign));
  other.run_until_complete(value_after(2ms, 0));
  CHECK(foreign.result() == 1);
}

namespace {
struct OuterTask {
  Task<int> task;
};
// Cancels, while it runs, the task that awaits it (which forwards the cancel here), then
// returns without awaiting again.
Coro<int> cancel_awaiter_then_return(OuterTask& box) {
  co_await ringloop::sleep(1ms);
  box.task.cancel();
  co_return 5;
}
Coro<int> await_task(Task<int> task) { co_return co_await task; }
}  // namespace

// asyncio's Task.__step: "Task is cancelled right before coro stops". Without it the cancel
// forwarded by the awaiting task was lost, and that task carried on with the value.
TEST_CASE("a task cancelled while it runs that then returns ends cancelled", "[task][cancel]") {
  OuterTask box;
  ringloop::run([](OuterTask& b) -> Coro<> {
    auto inner = ringloop::create_task(cancel_awaiter_then_return(b));
    b.task = ringloop::create_task(await_task(inner));
    CHECK_THROWS_AS(co_await b.task, CancelledError);
    CHECK(inner.cancelled());
    CHECK(b.task.cancelled());
  }(box));
}
