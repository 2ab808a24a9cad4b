// gather: concurrent children, results in order, first failure cancels the rest, cancelling
// the gather cancels the children, and the children's first SQEs share one io_uring_enter.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <tuple>
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
using Clock = std::chrono::steady_clock;

namespace {

Coro<std::string> text_after(std::chrono::milliseconds delay, std::string text) {
  co_await ringloop::sleep(delay);
  co_return text;
}

Coro<> nothing_after(std::chrono::milliseconds delay) { co_await ringloop::sleep(delay); }

Coro<int> record_cancel(bool& cancelled) {
  try {
    co_await ringloop::sleep(std::chrono::hours(1));
  } catch (const CancelledError&) {
    cancelled = true;
    throw;
  }
  co_return 0;
}

}  // namespace

TEST_CASE("gather runs children concurrently and returns their results in order", "[gather]") {
  auto start = std::chrono::steady_clock::now();
  ringloop::run([]() -> Coro<> {
    auto [a, b, c] = co_await ringloop::gather(value_after(30ms, 1), text_after(10ms, "two"),
                                               nothing_after(20ms));
    CHECK(a == 1);
    CHECK(b == "two");
    CHECK(c == std::monostate{});
  }());
  double elapsed = test_support::seconds_since(start);
  CHECK(elapsed >= 0.030);
  CHECK(elapsed < 0.055 + 0.5);  // concurrent: about the longest, not the sum
}

TEST_CASE("gather accepts tasks and coroutines together", "[gather]") {
  ringloop::run([]() -> Coro<> {
    auto task = ringloop::create_task(value_after(5ms, 10));
    auto [x, y] = co_await ringloop::gather(task, value_after(1ms, 20));
    CHECK(x + y == 30);
    CHECK(task.result() == 10);
  }());
}

TEST_CASE("gather of a range returns a vector in the range's order", "[gather]") {
  ringloop::run([]() -> Coro<> {
    std::vector<Coro<int>> coros;
    for (int i = 0; i < 10; ++i) coros.push_back(value_after(std::chrono::milliseconds(10 - i), i));
    auto results = co_await ringloop::gather(coros);
    REQUIRE(results.size() == 10);
    for (int i = 0; i < 10; ++i) CHECK(results[i] == i);

    std::vector<Task<int>> tasks;
    for (int i = 0; i < 3; ++i) tasks.push_back(ringloop::create_task(value_after(1ms, i * 2)));
    auto task_results = co_await ringloop::gather(tasks);
    CHECK(task_results == std::vector<int>{0, 2, 4});

    std::vector<Task<int>> none;
    auto no_results = co_await ringloop::gather(none);
    CHECK(no_results.empty());
  }());
}

TEST_CASE("gather cancels the other children when one throws, then rethrows", "[gather]") {
  bool cancelled = false;
  auto start = std::chrono::steady_clock::now();
  ringloop::run([](bool& flag) -> Coro<> {
    CHECK_THROWS_WITH(
        co_await ringloop::gather(record_cancel(flag), fail_after(5ms, "child failed")),
        "child failed");
    // No child outlives its gather: the other was cancelled and has finished.
    CHECK(flag);
  }(cancelled));
  CHECK(cancelled);
  CHECK(test_support::seconds_since(start) < 1.0);
}

TEST_CASE("gather with return_exceptions hands back every outcome", "[gather]") {
  ringloop::run([]() -> Coro<> {
    auto [good, bad] = co_await ringloop::gather(ringloop::return_exceptions, value_after(2ms, 4),
                                                 fail_after(1ms, "child failed"));
    CHECK(good.has_value());
    CHECK(good.value() == 4);
    CHECK_FALSE(bad.has_value());
    CHECK_THROWS_WITH(bad.value(), "child failed");

    std::vector<Coro<int>> coros;
    coros.push_back(fail_after(1ms, "child failed"));
    coros.push_back(value_after(1ms, 8));
    auto outcomes = co_await ringloop::gather(ringloop::return_exceptions, coros);
    CHECK(outcomes[0].exception() != nullptr);
    CHECK(outcomes[1].value() == 8);
  }());
}

namespace {
Coro<int> start_then_record_cancel(int& started, bool& cancelled) {
  ++started;
  co_return co_await record_cancel(cancelled);
}
}  // namespace

TEST_CASE("cancelling the task that awaits a gather cancels every child", "[gather][cancel]") {
  bool first = false;
  bool second = false;
  ringloop::run([](bool& a, bool& b) -> Coro<> {
    int started = 0;
    auto gathering = ringloop::create_task([](int& s, bool& x, bool& y) -> Coro<> {
      co_await ringloop::gather(start_then_record_cancel(s, x), start_then_record_cancel(s, y));
    }(started, a, b));
    // Cancel once both children run (one cancelled before its first step would never run its
    // body, as in asyncio, and could not record anything).
    for (int i = 0; i < 1000 && started < 2; ++i) co_await ringloop::sleep(1ms);
    REQUIRE(started == 2);
    gathering.cancel();
    CHECK_THROWS_AS(co_await gathering, CancelledError);
    CHECK(a);
    CHECK(b);
  }(first, second));
}

// Found by the model test on Linux 6.1 (seed 1796051620117): a gather cancelled, then a child
// ending cancelled, cancelled the other children a second time; one that had caught the first
// cancel and gone on to sleep lost that sleep too.
TEST_CASE("a cancelled gather cancels each child once, also when a child then ends cancelled",
          "[gather][cancel]") {
  std::string caught_then = "not run";
  ringloop::run([](std::string& outcome) -> Coro<> {
    int started = 0;
    auto gathering = ringloop::create_task([](int& s, std::string& out) -> Coro<> {
      co_await ringloop::gather(
          // Catches the cancel, then sleeps: nothing cancels it again.
          [](int& st, std::string& o) -> Coro<> {
            ++st;
            try {
              co_await ringloop::sleep(10s);
            } catch (const CancelledError&) {
            }
            try {
              co_await ringloop::sleep(30ms);
              o = "slept";
            } catch (const CancelledError&) {
              o = "cancelled a second time";
            }
          }(s, out),
          // Ends cancelled 5 ms after the cancel, once the other has gone on to its sleep.
          [](int& st) -> Coro<> {
            ++st;
            try {
              co_await ringloop::sleep(10s);
            } catch (const CancelledError&) {
            }
            co_await ringloop::sleep(5ms);
            throw CancelledError();
          }(s));
    }(started, outcome));
    for (int i = 0; i < 1000 && started < 2; ++i) co_await ringloop::sleep(1ms);
    REQUIRE(started == 2);
    gathering.cancel();
    CHECK_THROWS_AS(co_await gathering, CancelledError);
  }(caught_then));
  CHECK(caught_then == "slept");
}

namespace {
Coro<> sleep_until_deadline(Clock::time_point deadline) {
  co_await ringloop::sleep_until(deadline);
}
}  // namespace

TEST_CASE("the first SQEs of gathered children reach the kernel in one io_uring_enter",
          "[gather]") {
  ringloop::run([]() -> Coro<> {
    ringloop::Loop& loop = *ringloop::Loop::current();
    // Far enough that no timer is due at the submit point even under valgrind (a due one ends
    // there without an SQE).
    auto deadline = Clock::now() + 200ms;
    std::vector<Coro<>> children;
    for (int i = 0; i < 50; ++i) children.push_back(sleep_until_deadline(deadline));
    auto submitted = loop.stats().operations_submitted;
    auto enters = loop.ring().submitting_enter_calls();
    co_await ringloop::gather(children);
    // The 50 timers (made at the loop's submit point) went to the kernel in one enter.
    CHECK(loop.stats().operations_submitted - submitted == 50);
    CHECK(loop.ring().submitting_enter_calls() - enters == 1);
  }());
}

namespace {

Coro<> gather_one_of_range(Task<int> task, std::vector<std::string>& seen, std::string name) {
  std::vector<Task<int>> tasks;  // (a braced list in a coroutine trips g++ 12)
  tasks.push_back(std::move(task));
  std::vector<int> got = co_await ringloop::gather(std::move(tasks));
  seen.push_back(name + " " + std::to_string(got[0]));
}

Coro<> gather_one(Task<int> task, std::vector<std::string>& seen, std::string name) {
  std::tuple<int> got = co_await ringloop::gather(task);
  seen.push_back(name + " " + std::to_string(std::get<0>(got)));
}

}  // namespace

// A child nobody else waits for holds the gather in its own waiters' word; one that has waiters
// already, or is given twice, gets a node. Each path wakes every waiter once, in the order they
// came.
TEST_CASE("gather wakes every waiter of a child it shares, in the order they came",
          "[gather][waiters]") {
  // (Braced lists and structured bindings in a coroutine body trip g++ 12: built out here.)
  const std::vector<int> sevens{7, 7};
  const std::vector<std::string> expected{"first gather 9", "callback", "second gather 9"};
  ringloop::run([&]() -> Coro<> {
    std::vector<std::string> order;
    // A task given twice (range and tuple): one result per place.
    Task<int> twice = ringloop::create_task(value_after(1ms, 7));
    std::vector<Task<int>> twice_over(2, twice);
    std::vector<int> both = co_await ringloop::gather(std::move(twice_over));
    CHECK(both == sevens);
    Task<int> again = ringloop::create_task(value_after(1ms, 8));
    std::tuple<int, int> pair = co_await ringloop::gather(again, again);
    CHECK(std::get<0>(pair) == 8);
    CHECK(std::get<1>(pair) == 8);

    // The gather came first, a done callback after it: the gather's watcher moves aside for the
    // callback's node and is still woken first; a second gather of the same task gets a node.
    Task<int> shared = ringloop::create_task(value_after(2ms, 9));
    Task<> first = ringloop::create_task(gather_one_of_range(shared, order, "first gather"));
    co_await ringloop::sleep(0ms);  // first is now waiting in its gather
    shared.add_done_callback([&](Task<int>&) { order.push_back("callback"); });
    Task<> second = ringloop::create_task(gather_one(shared, order, "second gather"));
    co_await ringloop::gather(first, second);
    co_await ringloop::sleep(0ms);  // the callback's call, if it has not run yet
    CHECK(order == expected);
  }());
}

TEST_CASE("a failed child given twice is the gather's failure once", "[gather][waiters]") {
  ringloop::run([]() -> Coro<> {
    Task<int> failing = ringloop::create_task(fail_after(1ms, "boom"));
    Task<int> slow = ringloop::create_task(value_after(1h, 1));
    std::vector<Task<int>> children(1, slow);
    children.insert(children.end(), 2, failing);
    CHECK_THROWS_WITH(co_await ringloop::gather(std::move(children)), "boom");
    CHECK(slow.cancelled());
  }());
}

namespace {
Coro<int> await_task(Task<int> task) { co_return co_await task; }
}  // namespace

// A gather registers with its children one by one; when one registration throws (the waiter
// nodes cannot be allocated), those made before it are taken back, so no child keeps a pointer
// to the gather that is gone.
TEST_CASE("a gather whose waiter nodes cannot be allocated takes back what it registered",
          "[gather][waiters][fault]") {
  ringloop::run([]() -> Coro<> {
    Task<int> first = ringloop::create_task(value_after(2ms, 1));
    Task<int> shared = ringloop::create_task(value_after(2ms, 2));
    Task<int> last = ringloop::create_task(value_after(2ms, 3));
    Task<int> other = ringloop::create_task(await_task(shared));  // shared has a waiter node
    co_await ringloop::sleep(0ms);
    std::vector<Task<int>> children;
    children.push_back(first);
    children.push_back(shared);
    children.push_back(last);
    ringloop::detail::fail_allocations_after(0);  // the gather's nodes, needed for shared
    bool threw = false;
    try {
      (void)co_await ringloop::gather(std::move(children));
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    ringloop::detail::fail_allocations_after(-1);
    CHECK(threw);
    CHECK(first.core().waiters.empty());  // its watcher (the gather) was taken back
    // Every child ends as it would have, and can be gathered again.
    std::tuple<int, int, int, int> results = co_await ringloop::gather(first, shared, last, other);
    CHECK(std::get<0>(results) == 1);
    CHECK(std::get<1>(results) == 2);
    CHECK(std::get<2>(results) == 3);
    CHECK(std::get<3>(results) == 2);
  }());
}

// A waiter that comes after a gather moves the gather's watcher to the task's extras, an
// allocation: when it fails, that waiter is refused and the gather is still woken.
TEST_CASE("a waiter that cannot move a gather's watcher aside is refused; the gather still wakes",
          "[gather][waiters][fault]") {
  const std::vector<std::string> expected{"gather 9"};
  ringloop::run([&]() -> Coro<> {
    std::vector<std::string> order;
    Task<int> shared = ringloop::create_task(value_after(2ms, 9));
    Task<> gathering = ringloop::create_task(gather_one_of_range(shared, order, "gather"));
    co_await ringloop::sleep(0ms);  // the gather holds shared's watcher
    ringloop::detail::fail_allocations_after(0);
    bool callback_refused = false;
    try {
      shared.add_done_callback([&](Task<int>&) { order.push_back("callback"); });
    } catch (const std::bad_alloc&) {
      callback_refused = true;
    }
    ringloop::detail::fail_allocations_after(0);
    bool await_refused = false;
    try {
      (void)co_await shared;
    } catch (const std::bad_alloc&) {
      await_refused = true;
    }
    ringloop::detail::fail_allocations_after(-1);
    CHECK(callback_refused);
    CHECK(await_refused);
    co_await gathering;
    CHECK(order == expected);
  }());
}

namespace {
// Swallows the first cancel and waits again: the closing loop can only abandon it.
Coro<int> stubborn(ringloop::Event& never) {
  try {
    co_await never.wait();
  } catch (const CancelledError&) {
  }
  co_await never.wait();
  co_return 0;
}

// Gathers stubborn children, and is stubborn itself: its gather's cancel cannot end them.
Coro<> stubborn_gather(ringloop::Event& never) {
  std::vector<Task<int>> children;
  for (int i = 0; i < 3; ++i) children.push_back(ringloop::create_task(stubborn(never)));
  try {
    (void)co_await ringloop::gather(children);
  } catch (const CancelledError&) {
  }
  (void)co_await ringloop::gather(std::move(children));
}
}  // namespace

// The closing loop abandons the tasks it cannot end in the order they were made: the gathering
// task (its frame, and the gather in it, go first), then its children, which still hold a
// pointer to that gather in their waiters' word. Abandoning them must not follow it.
TEST_CASE("a gathering task abandoned before its children leaves them nothing to follow",
          "[gather][waiters]") {
  ringloop::Event never;  // outlives the loop
  std::string report = test_support::capture_stderr([&] {
    ringloop::Loop loop;
    loop.run_until_complete([](ringloop::Event& e) -> Coro<> {
      ringloop::create_task(stubborn_gather(e));
      co_await ringloop::sleep(0ms);
      co_await ringloop::sleep(0ms);  // the gather waits on its children
    }(never));
    loop.close();
  });
  CHECK_THAT(report, Catch::Contains("4 task(s) never finished"));
}
