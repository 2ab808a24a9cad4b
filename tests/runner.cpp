// Runner (asyncio.Runner): one loop across several run() calls, tasks that outlive a run() go on
// in the next, close() cancels what is left, and SIGINT is handled as run() handles it.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Task;

namespace {

Coro<> count_forever(int& ticks, bool& cancelled) {
  try {
    for (;;) {
      co_await ringloop::sleep(1ms);
      ++ticks;
    }
  } catch (const CancelledError&) {
    cancelled = true;
    throw;
  }
}

}  // namespace

// asyncio: with asyncio.Runner() as r: r.run(start()) leaves a ticking task; r.run(wait()) sees
// it ticking on the same loop; leaving the block cancels it.
TEST_CASE("Runner runs several coroutines on one loop and close() cancels what is left",
          "[api][runner]") {
  int ticks = 0;
  bool cancelled = false;
  Task<> background;
  {
    ringloop::Runner runner;
    ringloop::Loop* loop = &runner.get_loop();
    int first = runner.run([](int& t, bool& c, Task<>& bg) -> Coro<int> {
      bg = ringloop::create_task(count_forever(t, c));
      co_return 1;
    }(ticks, cancelled, background));
    CHECK(first == 1);
    CHECK(&runner.get_loop() == loop);
    CHECK_FALSE(background.done());
    int seen = ticks;
    runner.run(ringloop::sleep(20ms));  // any awaitable
    CHECK(ticks > seen);                // the task of the first run() went on in the second
    CHECK_THROWS_WITH(runner.run([]() -> Coro<> { throw std::runtime_error("boom"); }()), "boom");
    CHECK_FALSE(background.done());
    runner.close();
    CHECK(background.cancelled());
    CHECK(cancelled);
    CHECK_THROWS_WITH(runner.run(ringloop::sleep(0s)), Catch::Contains("closed"));
    runner.close();  // idempotent
  }
}

TEST_CASE("a Runner's destructor cancels the tasks left, as close() does", "[api][runner]") {
  int ticks = 0;
  bool cancelled = false;
  {
    ringloop::Runner runner;
    runner.run([](int& t, bool& c) -> Coro<> {
      ringloop::create_task(count_forever(t, c));
      co_await ringloop::sleep(3ms);
    }(ticks, cancelled));
  }
  CHECK(cancelled);
}

TEST_CASE("Runner::run inside a running loop is refused", "[api][runner]") {
  ringloop::Runner runner;
  ringloop::run([](ringloop::Runner& r) -> Coro<> {
    CHECK_THROWS_WITH(r.run(ringloop::sleep(0s)), Catch::Contains("running event loop"));
    co_return;
  }(runner));
}

// As run(): Ctrl-C cancels the main task, run() throws KeyboardInterrupt, and the runner is
// still usable for the next run() (asyncio's Runner).
TEST_CASE("Runner::run turns SIGINT into KeyboardInterrupt and stays usable", "[api][runner]") {
  int status = test_support::run_in_child([] {
    ::signal(SIGINT, SIG_DFL);  // Catch2's own handler is inherited by the child
    ringloop::Runner runner;
    try {
      runner.run([]() -> Coro<> {
        ringloop::call_later(10ms, [] { ::kill(::getpid(), SIGINT); });
        co_await ringloop::sleep(10s);
      }());
    } catch (const ringloop::KeyboardInterrupt&) {
      int after = runner.run([]() -> Coro<int> {
        co_await ringloop::sleep(1ms);
        co_return 42;
      }());
      ::_exit(after);
    }
    ::_exit(1);
  });
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 42));
}
