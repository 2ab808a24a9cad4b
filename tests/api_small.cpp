// Small API fixes a user meets in the first hour: Semaphore(-1) is an error, Stream::close() is
// idempotent, reports name types and tasks as a reader knows them.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <system_error>
#include <string>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;

TEST_CASE("Semaphore(-1) and BoundedSemaphore(-1) throw std::invalid_argument", "[api][sync]") {
  CHECK_THROWS_AS(ringloop::Semaphore(-1), std::invalid_argument);
  CHECK_THROWS_AS(ringloop::BoundedSemaphore(-1), std::invalid_argument);
  CHECK_THROWS_WITH(ringloop::Semaphore(-3), Catch::Contains(">= 0") && Catch::Contains("-3"));
  ringloop::Semaphore three(3);
  CHECK(three.value() == 3);
  ringloop::BoundedSemaphore zero(0);
  CHECK(zero.value() == 0);
  ringloop::Semaphore unsigned_two(std::size_t{2});
  CHECK(unsigned_two.value() == 2);
}

TEST_CASE("closing a Stream twice is a no-op the second time", "[api][stream]") {
  ringloop::run([]() -> Coro<> {
    ringloop::Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    ringloop::Stream stream =
        co_await ringloop::open_connection("127.0.0.1", ringloop::local_port(listener));
    co_await stream.close();
    CHECK_FALSE(stream.socket().valid());
    co_await stream.close();  // asyncio's close() is idempotent: no EBADF
    CHECK_FALSE(stream.socket().valid());
  }());
}

TEST_CASE("a refused connect names the address it tried", "[api][stream]") {
  std::uint16_t port = 0;
  {
    ringloop::Socket closed = ringloop::listen_tcp("127.0.0.1", 0);
    port = ringloop::local_port(closed);
  }  // nothing listens there any more
  std::string message;
  int code = 0;
  ringloop::run([&]() -> Coro<> {
    try {
      co_await ringloop::open_connection("127.0.0.1", port);
    } catch (const std::system_error& error) {
      message = error.what();
      code = error.code().value();
    }
  }());
  CHECK(code == ECONNREFUSED);
  CHECK_THAT(message, Catch::Contains("127.0.0.1 port " + std::to_string(port)) &&
                          Catch::Contains("refused"));
}

TEST_CASE("an unretrieved exception is reported with its demangled type name", "[api][task]") {
  std::string report = test_support::capture_stderr([] {
    ringloop::run([]() -> Coro<> {
      ringloop::create_task(test_support::fail_after(0ms, "nobody looked"));
      co_await ringloop::sleep(1ms);
    }());
  });
  CHECK_THAT(report, Catch::Contains("std::runtime_error: nobody looked"));
  CHECK_THAT(report, !Catch::Contains("St13runtime_error"));
}

// A task keeps its creation file in the word its extras take once it has some (a name, a
// cancel message, a done callback): the file must move there, not be lost.
TEST_CASE("an unretrieved exception names the creation site of a task given a name after it",
          "[api][task]") {
  int line = 0;
  std::string report = test_support::capture_stderr([&] {
    ringloop::run([&]() -> Coro<> {
      line = __LINE__ + 1;
      auto task = ringloop::create_task(test_support::fail_after(0ms, "named late"));
      task.set_name("late");
      co_await ringloop::sleep(1ms);
    }());
  });
  CHECK_THAT(report, Catch::Contains("named late"));
  CHECK_THAT(report, Catch::Contains("tests/api_small.cpp:" + std::to_string(line)));
}

TEST_CASE("the debug mode's slow-step report names the task's creation site", "[api][debug]") {
  std::string report = test_support::capture_stderr([] {
    ringloop::LoopOptions options;
    options.debug = true;
    options.slow_step = 20ms;
    ringloop::run(
        []() -> Coro<> {
          auto slow = ringloop::create_task([]() -> Coro<> {
            co_await ringloop::sleep(1ms);
            auto until = std::chrono::steady_clock::now() + 40ms;
            while (std::chrono::steady_clock::now() < until) {
            }
          }());
          co_await slow;
        }(),
        options);
  });
  CHECK_THAT(report, Catch::Contains("a step of the loop took"));
  CHECK_THAT(report, Catch::Contains("task created at") && Catch::Contains("tests/api_small.cpp:"));
  CHECK_THAT(report, !Catch::Contains("coroutine frame 0x"));
}
