// run()'s own machinery (its SIGINT watch) is not the program's work: a deadlock is reported as
// one with the default options, the debug mode does not report it as pending at close, and it
// stays away from a program that handles SIGINT itself (blocked, or a handler of its own). Each
// case runs in a child process, with SIGINT's default action (Catch2 handles it in the runner).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <string>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;
using test_support::run_in_child;

namespace {

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status); }

// A child with SIGINT as a program starts with it; SIGALRM ends one that hangs.
int run_in_plain_child(const std::function<int()>& fn) {
  return exit_code(run_in_child([&fn] {
    ::signal(SIGINT, SIG_DFL);
    sigset_t all;
    sigemptyset(&all);
    sigaddset(&all, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
    ::alarm(10);
    ::_exit(fn());
  }));
}

bool sigint_blocked() {
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  return sigismember(&mask, SIGINT) == 1;
}

volatile sig_atomic_t handled = 0;
void on_sigint(int) { handled = 1; }

}  // namespace

TEST_CASE("run with its default SIGINT watch throws the deadlock error, not hangs",
          "[api][run][signals]") {
  int code = run_in_plain_child([] {
    bool watched = false;
    try {
      ringloop::run([&watched]() -> Coro<> {
        watched = sigint_blocked();  // the watch reads SIGINT from a signalfd
        ringloop::Event never;
        co_await never.wait();
      }());
    } catch (const std::logic_error& error) {
      if (!watched) return 2;
      return std::string(error.what()).find("deadlock") != std::string::npos ? 0 : 3;
    }
    return 1;
  });
  CHECK(code == 0);
}

TEST_CASE("the debug mode reports nothing pending at the close of a correct program",
          "[api][run][debug]") {
  int code = run_in_plain_child([] {
    bool watched = false;
    std::string err = test_support::capture_stderr([&watched] {
      ringloop::LoopOptions options;
      options.debug = true;
      ringloop::run(
          [&watched]() -> Coro<> {
            watched = sigint_blocked();
            co_await ringloop::sleep(1ms);
          }(),
          options);
    });
    if (!watched) return 2;
    return err.empty() ? 0 : 1;
  });
  CHECK(code == 0);
}

TEST_CASE("run installs no SIGINT watch when the program blocked SIGINT", "[api][run][signals]") {
  int code = run_in_plain_child([] {
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, SIGINT);
    pthread_sigmask(SIG_BLOCK, &only, nullptr);
    int result = ringloop::run([]() -> Coro<int> {
      ::kill(::getpid(), SIGINT);
      co_await ringloop::sleep(20ms);
      co_return 5;
    }());
    // The signal waits for the program, which reads it itself.
    timespec zero{};
    if (::sigtimedwait(&only, nullptr, &zero) != SIGINT) return 1;
    return result;
  });
  CHECK(code == 5);
}

TEST_CASE("run installs no SIGINT watch when the program has its own SIGINT handler",
          "[api][run][signals]") {
  int code = run_in_plain_child([] {
    struct sigaction action {};
    action.sa_handler = &on_sigint;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, nullptr);
    int result = ringloop::run([]() -> Coro<int> {
      if (sigint_blocked()) co_return 1;
      ::kill(::getpid(), SIGINT);
      co_await ringloop::sleep(20ms);
      co_return handled == 1 ? 6 : 2;
    }());
    return result;
  });
  CHECK(code == 6);
}
