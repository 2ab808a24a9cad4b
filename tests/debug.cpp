// Debug mode: each report is triggered here by a test that commits the mistake on purpose.
#include <catch2/catch.hpp>

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <stdexcept>
#include <string>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::LoopOptions;

namespace {

const LoopOptions kDebug{.debug = true};

Coro<> block_the_loop(std::chrono::milliseconds how_long) {
  auto until = std::chrono::steady_clock::now() + how_long;
  while (std::chrono::steady_clock::now() < until) {
  }
  co_return;
}

}  // namespace

TEST_CASE("debug mode reports a step that blocks the loop longer than slow_step", "[debug]") {
  std::string on = test_support::capture_stderr([] {
    LoopOptions options = kDebug;
    options.slow_step = 20ms;
    ringloop::run(block_the_loop(40ms), options);
  });
  CHECK_THAT(on, Catch::Contains("a step of the loop took 0.0"));
  CHECK_THAT(on, Catch::Contains("blocked the loop's thread"));
  std::string off = test_support::capture_stderr([] { ringloop::run(block_the_loop(40ms)); });
  CHECK(off.empty());
}

TEST_CASE("RINGLOOP_DEBUG=1 in the environment turns debug mode on", "[debug]") {
  ::setenv("RINGLOOP_DEBUG", "1", 1);
  bool on = ringloop::Loop().debug();
  ::setenv("RINGLOOP_DEBUG", "0", 1);
  bool zero = ringloop::Loop().debug();
  ::unsetenv("RINGLOOP_DEBUG");
  bool unset = ringloop::Loop().debug();
  CHECK(on);
  CHECK_FALSE(zero);
  CHECK_FALSE(unset);
}

TEST_CASE("debug mode reports operations and tasks still pending at close", "[debug]") {
  std::string report = test_support::capture_stderr([] {
    ringloop::run(
        []() -> Coro<> {
          ringloop::create_task(test_support::value_after(1h, 1));  // forgotten
          co_await ringloop::sleep(0ms);
        }(),
        kDebug);
  });
  CHECK_THAT(report,
             Catch::Contains("closing the loop with 1 operation(s) in flight and 1 task(s)"));
}

TEST_CASE("a task exception never retrieved is reported with where the task was created",
          "[debug]") {
  std::string report = test_support::capture_stderr([] {
    ringloop::run([]() -> Coro<> {
      ringloop::create_task(test_support::fail_after(0ms, "nobody looked"));  // the mistake
      co_await ringloop::sleep(1ms);
    }());
  });
  CHECK_THAT(report, Catch::Contains("Task exception was never retrieved (task created at"));
  CHECK_THAT(report, Catch::Contains("tests/debug.cpp:"));
  CHECK_THAT(report, Catch::Contains("nobody looked"));
  // The creating function's name is kept in debug mode only (a task is 8 bytes smaller).
  CHECK_THAT(report, !Catch::Contains(" in "));
}

TEST_CASE("in debug mode the report of an unretrieved exception names the creating function",
          "[debug]") {
  std::string report = test_support::capture_stderr([] {
    ringloop::run(
        []() -> Coro<> {
          ringloop::create_task(test_support::fail_after(0ms, "nobody looked"));
          co_await ringloop::sleep(1ms);
        }(),
        kDebug);
  });
  CHECK_THAT(report, Catch::Contains("(task created at"));
  CHECK_THAT(report, Catch::Contains("tests/debug.cpp:"));
  CHECK_THAT(report, Catch::Contains(" in ") && Catch::Contains("operator()"));
}

TEST_CASE("a coroutine frame destroyed while its SQE is in flight aborts with a message",
          "[debug]") {
  int status = test_support::run_in_child([] {
    ringloop::Loop loop;
    auto task = ringloop::create_task(loop, test_support::value_after(1h, 1));
    loop.stop();              // one iteration that does not wait in the kernel
    loop.run_once();          // the sleep's TIMEOUT SQE is in the kernel now
    task.handle().destroy();  // the mistake: its frame holds the timespec and the record
  });
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
}
