// CancelledError and KeyboardInterrupt are BaseExceptions, not std::exceptions: a "log and go on"
// handler for std::exception cannot swallow a cancel (Python 3.8's rule); they keep a what().
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <type_traits>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::BaseException;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::KeyboardInterrupt;
using ringloop::TimeoutError;

static_assert(!std::is_base_of_v<std::exception, CancelledError>);
static_assert(!std::is_base_of_v<std::exception, KeyboardInterrupt>);
static_assert(std::is_base_of_v<BaseException, CancelledError>);
static_assert(std::is_base_of_v<BaseException, KeyboardInterrupt>);
static_assert(std::is_base_of_v<std::exception, TimeoutError>);
static_assert(std::is_nothrow_copy_constructible_v<CancelledError>);

namespace {

// A worker that logs every error and goes on, as servers are written.
Coro<> log_and_go_on(int& rounds, int& logged) {
  for (;;) {
    try {
      ++rounds;
      co_await ringloop::sleep(10ms);
    } catch (const std::exception&) {
      ++logged;
    }
  }
}

}  // namespace

TEST_CASE("a catch of std::exception in a task does not swallow its cancel", "[api][cancel]") {
  int rounds = 0;
  int logged = 0;
  bool cancelled = false;
  ringloop::run([&]() -> Coro<> {
    auto worker = ringloop::create_task(log_and_go_on(rounds, logged));
    co_await ringloop::sleep(25ms);
    worker.cancel();
    try {
      co_await worker;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    CHECK(worker.cancelled());
  }());
  CHECK(cancelled);
  CHECK(logged == 0);
  CHECK(rounds >= 1);
}

TEST_CASE("CancelledError and KeyboardInterrupt keep their message, TimeoutError is an exception",
          "[api][cancel]") {
  CHECK(std::string(CancelledError().what()) == "the task was cancelled");
  CHECK(std::string(CancelledError("stop").what()) == "stop");
  CHECK_THAT(KeyboardInterrupt().what(), Catch::Contains("SIGINT"));
  const BaseException& base = CancelledError("by base");
  CHECK(std::string(base.what()) == "by base");
  bool as_exception = false;
  try {
    throw TimeoutError();
  } catch (const std::exception&) {
    as_exception = true;
  }
  CHECK(as_exception);
}

TEST_CASE("a BaseException nobody retrieved is reported with its message", "[api][cancel]") {
  std::string err = test_support::capture_stderr([] {
    ringloop::run([]() -> Coro<> {
      auto task = ringloop::create_task([]() -> Coro<> {
        throw KeyboardInterrupt();
        co_return;
      }());
      co_await ringloop::sleep(1ms);
    }());
  });
  CHECK_THAT(err, Catch::Contains("never retrieved") && Catch::Contains("SIGINT"));
}
