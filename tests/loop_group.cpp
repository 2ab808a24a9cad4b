// LoopGroup: one loop per thread, started and stopped together; cross-loop calls (call and
// submit_to) with values, exceptions, move-only results and cancellation from either side; a
// group stopped with calls in flight; both wake-up paths (MSG_RING doorbells and the eventfd).
//
// Catch2's assertions are not thread-safe: the loops record what they saw, and the test's own
// thread checks it after run() has returned (which orders every loop's writes before it).
#include <catch2/catch.hpp>

#include <sched.h>

#include <array>
#include <atomic>
#include <coroutine>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::LoopGroup;
using ringloop::LoopGroupOptions;
using ringloop::ServerOptions;

namespace {

LoopGroupOptions group_options(std::size_t loops, bool msg_ring) {
  LoopGroupOptions options;
  options.loops = loops;
  options.loop.msg_ring_doorbells = msg_ring;
  return options;
}

// Whether this kernel has IORING_OP_MSG_RING (Linux 5.18).
bool kernel_has_msg_ring() {
  ringloop::Loop loop;
  return loop.ring().probe().has(IORING_OP_MSG_RING);
}

Coro<int> double_later(int value) {
  co_await ringloop::sleep(2ms);
  co_return value * 2;
}

Coro<std::unique_ptr<int>> boxed_later(std::unique_ptr<int> value) {
  co_await ringloop::sleep(1ms);
  co_return std::move(value);
}

Coro<int> fail_later() {
  co_await ringloop::sleep(1ms);
  throw std::runtime_error("failed on the other loop");
}

// Sleeps until cancelled; counts its start and its end.
Coro<int> sleep_until_cancelled(std::atomic<int>& started, std::atomic<int>& ended) {
  ++started;
  try {
    co_await ringloop::sleep(30s);
  } catch (const CancelledError&) {
    ++ended;
    throw;
  }
  ++ended;
  co_return 0;
}

}  // namespace

TEST_CASE("a LoopGroup runs one main per loop, each on its own thread and loop",
          "[thread][group]") {
  LoopGroup group(group_options(3, true));
  std::array<std::thread::id, 3> threads{};
  std::array<std::string, 3> names{};
  group.run([&](std::size_t i) -> Coro<> {
    threads[i] = std::this_thread::get_id();
    names[i] = ringloop::Loop::current()->name();
    co_await ringloop::sleep(1ms);
  });
  CHECK(threads[0] != threads[1]);
  CHECK(threads[1] != threads[2]);
  CHECK(threads[0] != std::this_thread::get_id());
  CHECK(names[0] == "group-loop-0");
  CHECK(names[2] == "group-loop-2");
  CHECK(group.loop(1).name() == "group-loop-1");
}

TEST_CASE("cross-loop calls return values, exceptions and move-only results on both wake paths",
          "[thread][group]") {
  bool msg_ring = GENERATE(true, false);
  INFO("msg_ring_doorbells = " << msg_ring);
  LoopGroup group(group_options(2, msg_ring));
  std::thread::id ran_on, target_thread, resumed_on, caller_thread;
  int value = 0, doubled = 0, boxed = 0;
  std::string error;
  ringloop::LoopStats caller_stats{}, target_stats{};
  group.run([&](std::size_t i) -> Coro<> {
    if (i == 1) {
      target_thread = std::this_thread::get_id();
      co_return;  // loop 1 serves the calls until every main is done
    }
    caller_thread = std::this_thread::get_id();
    value = co_await group.loop(1).call([&ran_on] {
      ran_on = std::this_thread::get_id();
      return 42;
    });
    resumed_on = std::this_thread::get_id();
    doubled = co_await ringloop::submit_to(1, [] { return double_later(21); });
    try {
      co_await ringloop::submit_to(1, [] { return fail_later(); });
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    // A move-only argument travels in, a move-only result comes back.
    auto box = std::make_unique<int>(7);
    // Named, not a temporary in the co_await expression: g++ 12 destroys a closure temporary
    // whose init-capture owns a unique_ptr twice there (a double free; clang is right).
    auto factory = [box = std::move(box)]() mutable { return boxed_later(std::move(box)); };
    std::unique_ptr<int> back = co_await ringloop::submit_to(1, std::move(factory));
    boxed = back ? *back : -1;
    co_await group.loop(1).call([] {});  // void too
    caller_stats = ringloop::Loop::current()->stats();
    target_stats = co_await group.loop(1).call([] { return ringloop::Loop::current()->stats(); });
  });
  CHECK(value == 42);
  CHECK(ran_on == target_thread);
  CHECK(resumed_on == caller_thread);
  CHECK(doubled == 42);
  CHECK(error == "failed on the other loop");
  CHECK(boxed == 7);
  if (msg_ring && kernel_has_msg_ring()) {
    CHECK(caller_stats.doorbells_rung >= 5);  // each request rang a drained loop
    CHECK(target_stats.doorbells_answered >= 5);
    CHECK(target_stats.doorbells_rung >= 5);  // the replies rang the caller
  } else {
    CHECK(caller_stats.doorbells_rung == 0);
    CHECK(target_stats.doorbells_rung == 0);
    CHECK(caller_stats.eventfd_wakes_sent >= 5);
  }
}

TEST_CASE("cancelling the caller cancels the remote task and waits for its end",
          "[thread][group]") {
  bool msg_ring = GENERATE(true, false);
  LoopGroup group(group_options(2, msg_ring));
  std::atomic<int> started{0}, ended{0};
  int ended_when_caller_resumed = -1;
  bool timed_out = false;
  group.run([&](std::size_t i) -> Coro<> {
    if (i == 1) co_return;  // loop 1 serves calls until loop 0's main is done
    try {
      co_await ringloop::wait_for(
          ringloop::submit_to(1, [&] { return sleep_until_cancelled(started, ended); }), 20ms);
    } catch (const ringloop::TimeoutError&) {
      timed_out = true;
    }
    ended_when_caller_resumed = ended.load();
  });
  CHECK(timed_out);
  CHECK(started == 1);
  CHECK(ended_when_caller_resumed == 1);  // the caller resumed only after the remote ended
}

TEST_CASE("a remote task that cannot be made ends the call with its error, not a cancel",
          "[thread][group][fault]") {
  LoopGroup group(group_options(2, true));
  std::string error;
  bool cancelled = false;
  int after = 0;
  std::atomic<ringloop::Event*> loop1_may_end{nullptr};
  group.run([&](std::size_t i) -> Coro<> {
    if (i == 1) {
      // Loop 1's main stays suspended (making no frame) until loop 0 is done: a main that
      // returned would make the frame that waits for the group while the fault is armed.
      ringloop::Event may_end;
      loop1_may_end = &may_end;
      co_await may_end.wait();
      co_return;
    }
    while (loop1_may_end.load() == nullptr) co_await ringloop::sleep(1ms);
    // The next coroutine frame loop 1's thread makes (the remote task's own) fails.
    co_await group.loop(1).call([] { ringloop::detail::fail_allocations_after(0); });
    try {
      co_await ringloop::submit_to(1, [] { return double_later(1); });
    } catch (const std::bad_alloc& e) {
      error = e.what();
    } catch (const CancelledError&) {
      cancelled = true;
    }
    co_await group.loop(1).call([] { ringloop::detail::fail_allocations_after(-1); });
    after = co_await ringloop::submit_to(1, [] { return double_later(4); });  // loop 1 goes on
    co_await group.loop(1).call([&] { loop1_may_end.load()->set(); });
  });
  CHECK_FALSE(cancelled);
  CHECK(error == "std::bad_alloc");
  CHECK(after == 8);
}

TEST_CASE("a remote task cancelled on its own loop ends the call with CancelledError",
          "[thread][group]") {
  LoopGroup group(group_options(2, true));
  std::atomic<int> started{0}, ended{0};
  bool caller_saw_cancel = false;
  std::uint32_t caller_cancelling = 99;
  ringloop::AnyTask remote;  // loop 1's thread only
  group.run([&](std::size_t i) -> Coro<> {
    if (i == 1) {
      while (!remote.valid()) co_await ringloop::sleep(1ms);
      remote.cancel();
      remote = ringloop::AnyTask();  // a task's handles stay on its loop's thread
      co_return;
    }
    try {
      co_await ringloop::submit_to(1, [&]() -> Coro<int> {
        return [](ringloop::AnyTask& slot, std::atomic<int>& s, std::atomic<int>& e) -> Coro<int> {
          slot = co_await ringloop::current_task();
          co_return co_await sleep_until_cancelled(s, e);
        }(remote, started, ended);
      });
    } catch (const CancelledError&) {
      caller_saw_cancel = true;
    }
    auto self = co_await ringloop::current_task();
    caller_cancelling = self.cancelling();
  });
  CHECK(caller_saw_cancel);
  CHECK(caller_cancelling == 0);  // the caller itself was not cancelled
  CHECK(ended == 1);
}

TEST_CASE("a group stopped by a failure with calls in flight loses and leaks nothing",
          "[thread][group]") {
  bool msg_ring = GENERATE(true, false);
  int fds_before = test_support::open_fd_count();
  std::atomic<int> started{0}, ended{0}, callers_resumed{0}, callers_cancelled{0};
  bool loop1_main_cancelled = false;
  {
    LoopGroup group(group_options(2, msg_ring));
    auto run = [&] {
      group.run([&](std::size_t i) -> Coro<> {
        if (i == 1) {
          try {
            co_await ringloop::sleep(30s);
          } catch (const CancelledError&) {
            loop1_main_cancelled = true;
            throw;
          }
          co_return;
        }
        // 50 background tasks of loop 0, each in a call to loop 1 that only a cancel ends.
        for (int n = 0; n < 50; ++n)
          ringloop::create_task([](std::atomic<int>& s, std::atomic<int>& e,
                                   std::atomic<int>& resumed,
                                   std::atomic<int>& cancelled) -> Coro<> {
            try {
              co_await ringloop::submit_to(1, [&s, &e] { return sleep_until_cancelled(s, e); });
            } catch (const CancelledError&) {
              ++cancelled;
            }
            ++resumed;
          }(started, ended, callers_resumed, callers_cancelled));
        while (started < 50) co_await ringloop::sleep(1ms);
        throw std::runtime_error("loop 0 gave up");
      });
    };
    CHECK_THROWS_WITH(run(), "loop 0 gave up");
  }
  CHECK(loop1_main_cancelled);
  CHECK(started == 50);
  CHECK(ended == 50);            // every remote task ran to its end
  CHECK(callers_resumed == 50);  // every caller got its answer
  CHECK(callers_cancelled == 50);
  CHECK(test_support::open_fd_count() == fds_before);  // rings, eventfds, duplicates: all closed
}

TEST_CASE("let_others_finish lets the other mains end before the failure is rethrown",
          "[thread][group]") {
  LoopGroupOptions options = group_options(2, true);
  options.on_error = LoopGroupOptions::OnError::let_others_finish;
  LoopGroup group(options);
  bool other_finished = false;
  CHECK_THROWS_WITH(group.run([&](std::size_t i) -> Coro<> {
    if (i == 0) throw std::runtime_error("loop 0 failed");
    co_await ringloop::sleep(20ms);
    other_finished = true;
  }),
                    "loop 0 failed");
  CHECK(other_finished);
}

TEST_CASE("many loops calling each other at once all get their answers", "[thread][group]") {
  bool msg_ring = GENERATE(true, false);
  constexpr std::size_t kLoops = 3;
  constexpr int kCalls = 200;
  LoopGroup group(group_options(kLoops, msg_ring));
  std::array<long, kLoops> sums{};
  group.run([&](std::size_t i) -> Coro<> {
    std::vector<Coro<int>> calls;
    for (int n = 0; n < kCalls; ++n) {
      std::size_t target = (i + 1 + static_cast<std::size_t>(n) % (kLoops - 1)) % kLoops;
      calls.push_back([](LoopGroup& g, std::size_t t, int v) -> Coro<int> {
        co_return co_await g.loop(t).call([v] { return v; });
      }(group, target, n));
    }
    auto results = co_await ringloop::gather(calls);
    long sum = 0;
    for (int r : results) sum += r;
    sums[i] = sum;
  });
  for (long sum : sums) CHECK(sum == long{kCalls} * (kCalls - 1) / 2);
}

TEST_CASE("LoopGroup refuses a CPU the process may not use, naming it", "[group]") {
  LoopGroupOptions options;
  options.cpus = {4000};
  CHECK_THROWS_WITH(LoopGroup(options),
                    Catch::Contains("CPU 4000") && Catch::Contains("may run on"));
  CHECK_THROWS_WITH(ringloop::run_per_core(5000, [](std::size_t) -> Coro<> { co_return; }),
                    Catch::Contains("5000 loops"));
}

TEST_CASE("run_per_core pins loop i to the i-th CPU the process may use", "[thread][group]") {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(::sched_getaffinity(0, sizeof(set), &set) == 0);
  int first_cpu = 0;
  while (!CPU_ISSET(first_cpu, &set)) ++first_cpu;
  int ran_on = -1;
  ringloop::run_per_core(1, [&](std::size_t) -> Coro<> {
    co_await ringloop::sleep(1ms);
    ran_on = ::sched_getcpu();
  });
  CHECK(ran_on == first_cpu);
}

TEST_CASE("a call outside a running group is refused", "[group]") {
  LoopGroup group(group_options(2, true));
  ringloop::run([&]() -> Coro<> {
    CHECK_THROWS_WITH(co_await group.loop(1).call([] { return 1; }),
                      Catch::Contains("group-loop-1 is not running"));
    CHECK_THROWS_WITH(co_await ringloop::submit_to(0, [] { return double_later(1); }),
                      Catch::Contains("runs no loop of a LoopGroup"));
  }());
}

namespace {
// A foreign awaitable that parks the coroutine for whoever resumes it.
struct Parked {
  std::coroutine_handle<> handle;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> awaiting) noexcept { handle = awaiting; }
  void await_resume() const noexcept {}
};
}  // namespace

TEST_CASE("a task resumed while another loop runs is refused at its next await, naming both",
          "[group][misuse]") {
  ringloop::LoopOptions a_options, b_options;
  a_options.name = "loop-a";
  b_options.name = "loop-b";
  ringloop::Loop a(a_options);
  ringloop::Loop b(b_options);
  Parked parked;
  std::string error;
  auto task = ringloop::create_task(a, [](Parked& p, std::string& err) -> Coro<> {
    co_await p;
    try {
      co_await ringloop::sleep(1ms);
    } catch (const std::logic_error& e) {
      err = e.what();
    }
  }(parked, error));
  while (!parked.handle) a.run_once();
  b.run_until_complete([](Parked& p) -> Coro<> {
    p.handle.resume();  // loop-a's task, in a step of loop-b
    co_return;
  }(parked));
  CHECK_THAT(error, Catch::Contains("a task of loop-a") && Catch::Contains("thread of loop-b"));
  CHECK(task.done());
}

TEST_CASE("LoopHandle::schedule refuses to move a task to another loop, naming both",
          "[thread][group][misuse]") {
  LoopGroup group(group_options(2, true));
  std::string error;
  group.run([&](std::size_t i) -> Coro<> {
    if (i == 1) co_return;
    ringloop::LoopHandle handle = co_await group.loop(1).call(
        [] { return ringloop::LoopHandle(*ringloop::Loop::current()); });
    try {
      co_await handle.schedule();
    } catch (const std::logic_error& e) {
      error = e.what();
    }
  });
  CHECK_THAT(error, Catch::Contains("a task of group-loop-0 cannot move to group-loop-1"));
}

namespace {
// What loop 1 makes for the misuse test below; touched on loop 1's thread only, except for
// the awaits loop 0 attempts (refused before they change anything).
struct RemoteThings {
  std::optional<ringloop::Task<int>> task;
  ringloop::Event event;
  std::optional<ringloop::Task<void>> event_waiter;
};

Coro<int> sleep_long() {
  co_await ringloop::sleep(30s);
  co_return 0;
}

Coro<void> wait_event(ringloop::Event& event) { co_await event.wait(); }

Coro<RemoteThings*> make_remote_things(RemoteThings& things) {
  things.task.emplace(ringloop::create_task(sleep_long()));
  things.event_waiter.emplace(ringloop::create_task(wait_event(things.event)));
  co_await ringloop::sleep(5ms);  // both are suspended, and quiet, when loop 0 looks
  co_return &things;
}
}  // namespace

TEST_CASE("awaiting a Task or an Event of another loop is refused, naming both loops",
          "[thread][group][misuse]") {
  LoopGroup group(group_options(2, true));
  RemoteThings things;
  std::string task_error, event_error;
  group.run([&](std::size_t i) -> Coro<> {
    if (i == 1) co_return;
    RemoteThings* remote =
        co_await ringloop::submit_to(1, [&] { return make_remote_things(things); });
    try {
      (void)co_await *remote->task;
    } catch (const std::logic_error& e) {
      task_error = e.what();
    }
    try {
      co_await remote->event.wait();
    } catch (const std::logic_error& e) {
      event_error = e.what();
    }
    co_await group.loop(1).call([remote] {
      remote->task->cancel();
      remote->event.set();
      remote->task.reset();
      remote->event_waiter.reset();
    });
  });
  CHECK_THAT(task_error, Catch::Contains("task of another event loop (group-loop-1)") &&
                             Catch::Contains("from a task of group-loop-0"));
  CHECK_THAT(event_error, Catch::Contains("bound to another event loop, group-loop-1") &&
                              Catch::Contains("used from group-loop-0"));
}

namespace {

// Echoes lines until the client closes; counts its connection against the loop it runs on.
Coro<> echo_on_this_loop(std::array<std::atomic<int>, 3>& served, ringloop::Stream stream) {
  ++served.at(LoopGroup::current_index("echo_on_this_loop"));
  co_await test_support::echo_lines(std::move(stream));
}

// A client that echoes one line and holds its connection open until `release` is set.
Coro<> client_holding(std::uint16_t port, int id, ringloop::Event& release, int& echoed) {
  ringloop::Stream stream = co_await ringloop::open_connection("127.0.0.1", port);
  std::string line = "client " + std::to_string(id) + "\n";
  co_await stream.write(line);
  std::string reply = co_await stream.read_until("\n");
  if (reply == line) ++echoed;
  co_await release.wait();
}

}  // namespace

TEST_CASE("a hand_off_to_group server accepts on one loop and spreads handlers over every loop",
          "[thread][group][server]") {
  bool msg_ring = GENERATE(true, false);
  LoopGroup group(group_options(3, msg_ring));
  std::array<std::atomic<int>, 3> served{};
  int echoed = 0;
  std::size_t active_after_close = 99;
  group.run([&](std::size_t i) -> Coro<> {
    if (i != 0) co_return;  // loops 1 and 2 serve the handed-off connections
    ServerOptions options;
    options.hand_off_to_group = true;
    ringloop::Server server = co_await ringloop::start_server(
        [&served](ringloop::Stream stream) { return echo_on_this_loop(served, std::move(stream)); },
        "127.0.0.1", 0, options);
    std::uint16_t port = ringloop::local_port(server.sockets().at(0));
    // Nine clients, all connected at once: each new connection goes to the loop with the
    // fewest open, so three each.
    ringloop::Event release;
    std::vector<Coro<>> clients;
    for (int c = 0; c < 9; ++c) clients.push_back(client_holding(port, c, release, echoed));
    auto all = ringloop::create_task(ringloop::gather(std::move(clients)));
    while (echoed < 9) co_await ringloop::sleep(1ms);
    release.set();
    co_await all;
    server.close();
    co_await server.wait_closed();  // waits for the remote handlers to see EOF and end
    active_after_close = server.active_connections();
  });
  CHECK(echoed == 9);
  CHECK(served[0] == 3);
  CHECK(served[1] == 3);
  CHECK(served[2] == 3);
  CHECK(active_after_close == 0);
}

TEST_CASE("close_clients cancels handed-off handlers on the other loops, and wait_closed waits",
          "[thread][group][server]") {
  LoopGroup group(group_options(2, true));
  std::atomic<int> started{0}, ended{0};
  int ended_at_wait_closed = -1;
  group.run([&](std::size_t i) -> Coro<> {
    if (i != 0) co_return;
    ServerOptions options;
    options.hand_off_to_group = true;
    ringloop::Server server = co_await ringloop::start_server(
        [&](ringloop::Stream) -> Coro<> { co_await sleep_until_cancelled(started, ended); },
        "127.0.0.1", 0, options);
    std::uint16_t port = ringloop::local_port(server.sockets().at(0));
    std::vector<ringloop::Stream> streams;
    for (int c = 0; c < 4; ++c)
      streams.push_back(co_await ringloop::open_connection("127.0.0.1", port));
    while (started < 4) co_await ringloop::sleep(1ms);
    server.close();
    server.close_clients();
    co_await server.wait_closed();
    ended_at_wait_closed = ended.load();
  });
  CHECK(started == 4);
  CHECK(ended_at_wait_closed == 4);  // two of them on loop 1: cancelled there, awaited here
}

namespace {

Coro<> start_hand_off_server(std::string& error) {
  ServerOptions options;
  options.hand_off_to_group = true;
  try {
    ringloop::Server server = co_await ringloop::start_server(
        [](ringloop::Stream) -> Coro<> { co_return; }, "127.0.0.1", 0, options);
  } catch (const std::logic_error& e) {
    error = e.what();
  }
}

}  // namespace

TEST_CASE("hand_off_to_group outside a running LoopGroup is refused, naming the option",
          "[group][server]") {
  std::string error;
  ringloop::run(start_hand_off_server(error));
  CHECK_THAT(error, Catch::Contains("hand_off_to_group") && Catch::Contains("LoopGroup"));
}
