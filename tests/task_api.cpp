// asyncio's task pieces: cancel(msg), names, done callbacks, current_task() and all_tasks(),
// any awaitable where a Coro is taken, and eager tasks. Orders are the ones Python 3.11's
// asyncio prints for the same program (the script is in each test's comment).
#include <catch2/catch.hpp>

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

namespace {

Coro<> sleep_and_log(std::vector<std::string>& log) {
  try {
    co_await ringloop::sleep(std::chrono::hours(1));
  } catch (const CancelledError& e) {
    log.push_back(std::string("child sees: ") + e.what());
    throw;
  }
}

Coro<> sleep_forever() { co_await ringloop::sleep(std::chrono::hours(1)); }

}  // namespace

// asyncio: t.cancel("bye") -> the child's CancelledError and the awaiter's have args ('bye',).
TEST_CASE("cancel(msg) reaches the task's CancelledError and its awaiter's", "[api][cancel_msg]") {
  std::vector<std::string> log;
  ringloop::run([&]() -> Coro<> {
    auto task = ringloop::create_task(sleep_and_log(log));
    co_await ringloop::sleep(0s);
    CHECK(task.cancel("bye"));
    try {
      co_await task;
    } catch (const CancelledError& e) {
      log.push_back(std::string("awaiter gets: ") + e.what());
    }
    CHECK_THROWS_WITH(task.result(), "bye");
    CHECK_THROWS_WITH(task.exception(), "bye");
    CHECK_FALSE(task.cancel("too late"));
  }());
  CHECK(log == std::vector<std::string>{"child sees: bye", "awaiter gets: bye"});
}

TEST_CASE("cancel(msg) before the task starts ends it with the message", "[api][cancel_msg]") {
  ringloop::run([]() -> Coro<> {
    int ran = 0;
    auto task = ringloop::create_task([](int& r) -> Coro<> {
      ++r;
      co_return;
    }(ran));
    task.cancel("early");
    std::string what;
    try {
      co_await task;
    } catch (const CancelledError& e) {
      what = e.what();
    }
    CHECK(what == "early");
    CHECK(ran == 0);
  }());
}

TEST_CASE("a cancel that lands on a running task carries its message to the task's end",
          "[api][cancel_msg]") {
  ringloop::run([]() -> Coro<> {
    Task<> self;
    auto task = ringloop::create_task([](Task<>& me) -> Coro<> {
      me.cancel("from inside");
      co_return;  // no await follows: the task still ends cancelled (asyncio)
    }(self));
    self = task;
    co_await ringloop::sleep(0s);
    CHECK(task.cancelled());
    CHECK_THROWS_WITH(task.result(), "from inside");
  }());
}

TEST_CASE("the latest cancel's message wins, and cancel() without one drops it",
          "[api][cancel_msg]") {
  ringloop::run([]() -> Coro<> {
    auto first = ringloop::create_task(sleep_forever());
    first.cancel("one");
    first.cancel("two");
    auto second = ringloop::create_task(sleep_forever());
    second.cancel("one");
    second.cancel();
    co_await ringloop::sleep(0s);
    CHECK_THROWS_WITH(first.result(), "two");
    CHECK_THROWS_WITH(second.result(), CancelledError().what());
  }());
}

// ------------------------------------------------------------------------------------- names

// asyncio: main is Task-1; t2 = create_task(child()) is Task-2, t3 named "fetcher".
TEST_CASE("tasks are named Task-N by a process-wide counter until a name is given",
          "[api][task_name]") {
  ringloop::run([]() -> Coro<> {
    auto self = co_await ringloop::current_task();
    auto first = ringloop::create_task(sleep_forever());
    auto named = ringloop::create_task(sleep_forever(), "fetcher");
    auto second = ringloop::create_task(sleep_forever());
    std::string main_name = self.get_name();
    REQUIRE(main_name.rfind("Task-", 0) == 0);
    auto n = std::stoull(main_name.substr(5));
    CHECK(first.get_name() == "Task-" + std::to_string(n + 1));
    CHECK(named.get_name() == "fetcher");
    CHECK(second.get_name() == "Task-" + std::to_string(n + 3));
    second.set_name("renamed");
    CHECK(second.get_name() == "renamed");
    auto options = ringloop::create_task(sleep_forever(), ringloop::TaskOptions{.name = "opt"});
    CHECK(options.get_name() == "opt");
    co_return;
  }());
}

// --------------------------------------------------------------- current_task and all_tasks

TEST_CASE("current_task is the awaiting coroutine's task, also inside awaited Coros",
          "[api][current_task]") {
  ringloop::run([]() -> Coro<> {
    auto inner = []() -> Coro<ringloop::AnyTask> { co_return co_await ringloop::current_task(); };
    auto task = ringloop::create_task([](decltype(inner) make) -> Coro<bool> {
      auto mine = co_await ringloop::current_task();
      auto seen_inside = co_await make();
      co_return mine == seen_inside&& mine.valid();
    }(inner));
    bool same = co_await task;
    CHECK(same);
    auto self = co_await ringloop::current_task();
    auto from_inner = co_await inner();
    CHECK(self == from_inner);
    CHECK_FALSE(self == task);
    CHECK(self.get_name() != task.get_name());
  }());
}

TEST_CASE("all_tasks lists the loop's unfinished tasks in creation order", "[api][current_task]") {
  ringloop::run([]() -> Coro<> {
    auto self = co_await ringloop::current_task();
    auto a = ringloop::create_task(sleep_forever(), "a");
    auto b = ringloop::create_task(sleep_forever(), "b");
    auto quick = ringloop::create_task(ringloop::sleep(0s), "quick");
    co_await ringloop::sleep(1ms);
    std::vector<std::string> names;
    for (const ringloop::AnyTask& task : ringloop::all_tasks()) names.push_back(task.get_name());
    CHECK(names == std::vector<std::string>{self.get_name(), "a", "b"});
    auto listed = ringloop::all_tasks();
    listed[1].cancel("through AnyTask");
    co_await ringloop::gather(ringloop::return_exceptions, a);
    CHECK(a.cancelled());
    CHECK_THROWS_WITH(a.result(), "through AnyTask");
    b.cancel();
  }());
}

TEST_CASE("all_tasks and current_task outside a running loop", "[api][current_task]") {
  CHECK_THROWS_WITH(ringloop::all_tasks(), Catch::Contains("no running event loop"));
  ringloop::Loop loop;
  CHECK(ringloop::all_tasks(loop).empty());
}

// ---------------------------------------------------------------------------- done callbacks

// asyncio (3.11): t.add_done_callback(cb1); w awaits t; then cb2 twice and cb3 are added,
// remove_done_callback(cb2) -> 2; main awaits t; a callback added after t finished is called
// soon.  -> removed 2; ['cb1 7', 'awaiter', 'cb3', 'main after await', 'added late', 'late']
namespace {
std::vector<std::string>* callback_log = nullptr;
void cb2(Task<int>&) { callback_log->push_back("cb2"); }
void cb3(Task<int>&) { callback_log->push_back("cb3"); }
}  // namespace

TEST_CASE("done callbacks run through the loop in the order they and awaiters came",
          "[api][done_callback]") {
  std::vector<std::string> log;
  callback_log = &log;
  std::size_t removed = 0;
  ringloop::run([](std::vector<std::string>& out, std::size_t& removed_count) -> Coro<> {
    auto task = ringloop::create_task([]() -> Coro<int> {
      co_await ringloop::sleep(0s);
      co_return 7;
    }());
    task.add_done_callback(
        [&out](Task<int>& done) { out.push_back("cb1 " + std::to_string(done.result())); });
    auto waiter = ringloop::create_task([](Task<int> t, std::vector<std::string>& o) -> Coro<> {
      co_await t;
      o.push_back("awaiter");
    }(task, out));
    co_await ringloop::sleep(0s);
    task.add_done_callback(&cb2);
    task.add_done_callback(&cb2);
    task.add_done_callback(&cb3);
    removed_count = task.remove_done_callback(&cb2);
    co_await task;
    out.push_back("main after await");
    co_await ringloop::sleep(0s);
    task.add_done_callback([&out](const Task<int>&) { out.push_back("late"); });
    out.push_back("added late");
    CHECK(task.remove_done_callback(&cb3) == 0);  // scheduled already
    co_await ringloop::sleep(0s);
  }(log, removed));
  CHECK(removed == 2);
  CHECK(log == std::vector<std::string>{"cb1 7", "awaiter", "cb3", "main after await", "added late",
                                        "late"});
  callback_log = nullptr;
}

TEST_CASE("a done callback that throws is reported and the loop goes on", "[api][done_callback]") {
  std::string err = test_support::capture_stderr([] {
    ringloop::run([]() -> Coro<> {
      auto task = ringloop::create_task(ringloop::sleep(0s));
      task.add_done_callback([](Task<>&) { throw std::runtime_error("callback broke"); });
      co_await task;
      co_await ringloop::sleep(1ms);
    }());
  });
  CHECK_THAT(err, Catch::Contains("exception in callback: callback broke"));
}

// ----------------------------------------------------------------- any awaitable as a task

TEST_CASE("create_task, shield, wait, as_completed and TaskGroup take any awaitable",
          "[api][any_awaitable]") {
  ringloop::run([]() -> Coro<> {
    auto slept = ringloop::create_task(ringloop::sleep(1ms));
    auto precise = ringloop::create_task(ringloop::sleep_precise(1ms));
    co_await slept;
    co_await precise;
    co_await ringloop::shield(ringloop::sleep(1ms));
    std::vector<decltype(ringloop::sleep(1ms))> sleeps;
    sleeps.push_back(ringloop::sleep(1ms));
    sleeps.push_back(ringloop::sleep(2ms));
    auto result = co_await ringloop::wait(std::move(sleeps));
    CHECK(result.done.size() == 2);
    CHECK(result.pending.empty());
    std::vector<decltype(ringloop::sleep(1ms))> more;
    more.push_back(ringloop::sleep(2ms));
    more.push_back(ringloop::sleep(1ms));
    ringloop::AsCompleted each(std::move(more));
    int finished = 0;
    while (each.has_next()) {
      auto done = co_await each.next();
      CHECK(done.done());
      ++finished;
    }
    CHECK(finished == 2);
    co_await ringloop::task_group([](ringloop::TaskGroup& group) -> Coro<> {
      group.create_task(ringloop::sleep(1ms));
      co_return;
    });
  }());
}

// ------------------------------------------------------------------------------ eager tasks

// asyncio 3.12 with loop.set_task_factory(asyncio.eager_task_factory) (3.11 has no eager tasks;
// this is 3.12's documented order): a = create_task(quick("a")); b = create_task(slow("b"));
// await b  -> ['a runs', 'after a: done=True', 'b starts', 'after b: done=False', 'b resumes',
// 'main done']. Without eager: ['after a: done=False', 'after b: done=False', 'a runs',
// 'b starts', 'b resumes', 'main done'] (Python 3.11's output).
namespace {
Coro<std::string> quick(std::string name, std::vector<std::string>& log) {
  log.push_back(name + " runs");
  co_return name;
}
Coro<std::string> slow(std::string name, std::vector<std::string>& log) {
  log.push_back(name + " starts");
  co_await ringloop::sleep(0s);
  log.push_back(name + " resumes");
  co_return name;
}
std::vector<std::string> eager_program(bool eager) {
  std::vector<std::string> log;
  ringloop::run([](std::vector<std::string>& out, bool is_eager) -> Coro<> {
    ringloop::TaskOptions options{.eager = is_eager};
    std::size_t ready_before = ringloop::Loop::current()->ready_count();
    auto a = ringloop::create_task(quick("a", out), options);
    out.push_back(std::string("after a: done=") + (a.done() ? "True" : "False"));
    if (is_eager) CHECK(ringloop::Loop::current()->ready_count() == ready_before);
    auto b = ringloop::create_task(slow("b", out), options);
    out.push_back(std::string("after b: done=") + (b.done() ? "True" : "False"));
    co_await b;
    CHECK(a.result() == "a");
    out.push_back("main done");
  }(log, eager));
  return log;
}
}  // namespace

TEST_CASE("an eager task runs inside create_task up to its first suspension", "[api][eager]") {
  CHECK(eager_program(true) == std::vector<std::string>{"a runs", "after a: done=True", "b starts",
                                                        "after b: done=False", "b resumes",
                                                        "main done"});
  CHECK(eager_program(false) == std::vector<std::string>{"after a: done=False",
                                                         "after b: done=False", "a runs",
                                                         "b starts", "b resumes", "main done"});
}

TEST_CASE("an eager task sees its own current_task and a cancel before it ends", "[api][eager]") {
  ringloop::run([]() -> Coro<> {
    std::string seen;
    auto task = ringloop::create_task(
        [](std::string& name) -> Coro<> {
          auto self = co_await ringloop::current_task();
          name = self.get_name();
          co_await ringloop::sleep(std::chrono::hours(1));
        }(seen),
        ringloop::TaskOptions{.name = "eager one", .eager = true});
    CHECK(seen == "eager one");
    task.cancel("stop");
    std::string what;
    try {
      co_await task;
    } catch (const CancelledError& e) {
      what = e.what();
    }
    CHECK(what == "stop");
  }());
}
