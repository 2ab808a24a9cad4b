// Signals through the ring: add_signal_handler's handler runs on the loop's thread; removing it
// gives the signal back its default action; run() turns SIGINT into cancellation of the main
// task and then KeyboardInterrupt (asyncio.run's rule). Each case runs in a child process: they
// change signal dispositions and masks, and Catch2 handles SIGINT in the test process.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using test_support::run_in_child;

namespace {

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status); }

Coro<int> count_usr1() {
  int seen = 0;
  ringloop::add_signal_handler(SIGUSR1, [&seen] { ++seen; });
  for (int i = 0; i < 3; ++i) {
    ::kill(::getpid(), SIGUSR1);
    co_await ringloop::sleep(10ms);
  }
  CHECK(ringloop::remove_signal_handler(SIGUSR1));
  CHECK_FALSE(ringloop::remove_signal_handler(SIGUSR1));
  co_return seen;
}

Coro<int> sleep_until_interrupted(bool swallow) {
  ringloop::call_later(20ms, [] { ::kill(::getpid(), SIGINT); });
  try {
    co_await ringloop::sleep(10s);
  } catch (const CancelledError&) {
    if (swallow) co_return 7;
    throw;
  }
  co_return 0;
}

}  // namespace

TEST_CASE("add_signal_handler runs the handler on the loop for each signal", "[signals]") {
  int status = run_in_child([] {
    int seen = ringloop::run(count_usr1());
    ::_exit(seen);
  });
  CHECK(exit_code(status) == 3);
}

TEST_CASE("removing a signal handler restores the default action", "[signals]") {
  int status = run_in_child([] {
    ringloop::run([]() -> Coro<> {
      ringloop::add_signal_handler(SIGUSR1, [] {});
      ringloop::remove_signal_handler(SIGUSR1);
      co_return;
    }());
    ::kill(::getpid(), SIGUSR1);  // default action: terminates
    ::_exit(0);
  });
  CHECK(exit_code(status) == -SIGUSR1);
}

TEST_CASE("signals are given back when the loop closes with handlers installed", "[signals]") {
  int status = run_in_child([] {
    ringloop::run([]() -> Coro<> {
      ringloop::add_signal_handler(SIGUSR2, [] {});
      co_return;
    }());
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    ::_exit(sigismember(&mask, SIGUSR2) ? 1 : 0);
  });
  CHECK(exit_code(status) == 0);
}

TEST_CASE("run() turns SIGINT into cancelling the main task, then KeyboardInterrupt", "[signals]") {
  int status = run_in_child([] {
    ::signal(SIGINT, SIG_DFL);  // Catch2's own handler is inherited by the child
    try {
      ringloop::run(sleep_until_interrupted(false));
    } catch (const ringloop::KeyboardInterrupt&) {
      ::_exit(42);
    }
    ::_exit(1);
  });
  CHECK(exit_code(status) == 42);
}

TEST_CASE("a main task that swallows the SIGINT cancel returns its value", "[signals]") {
  int status = run_in_child([] {
    ::signal(SIGINT, SIG_DFL);
    ::_exit(ringloop::run(sleep_until_interrupted(true)));
  });
  CHECK(exit_code(status) == 7);
}

TEST_CASE("run() leaves SIGINT alone when the program handles it itself", "[signals]") {
  int status = run_in_child([] {
    ::signal(SIGINT, SIG_IGN);
    // Ignored: the main task is not cancelled and finishes its sleep.
    int value = ringloop::run([]() -> Coro<int> {
      ::kill(::getpid(), SIGINT);
      co_await ringloop::sleep(20ms);
      co_return 3;
    }());
    ::_exit(value);
  });
  CHECK(exit_code(status) == 3);
}

TEST_CASE("add_signal_handler refuses signals that cannot be caught", "[signals]") {
  ringloop::Loop loop;
  CHECK_THROWS_AS(ringloop::add_signal_handler(loop, SIGKILL, [] {}), std::invalid_argument);
  CHECK_THROWS_AS(ringloop::add_signal_handler(loop, 0, [] {}), std::invalid_argument);
  CHECK_THROWS_AS(ringloop::add_signal_handler(loop, 1000, [] {}), std::invalid_argument);
  loop.close();
  CHECK_THROWS_WITH(ringloop::add_signal_handler(loop, SIGUSR1, [] {}), Catch::Contains("closed"));
}
