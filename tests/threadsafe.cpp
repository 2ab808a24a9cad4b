// LoopHandle: other threads post callbacks and coroutines to a loop, which wakes through an
// eventfd read on its ring; the handle keeps the loop waiting for posts; posts after close are
// refused with a clear error; a handle may outlive its loop.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include <ringloop/coro/thread/loop_handle.hpp>
#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::LoopHandle;

namespace {

Coro<int> slow_double(int value) {
  co_await ringloop::sleep(5ms);
  co_return value * 2;
}

Coro<int> slow_failure() {
  co_await ringloop::sleep(1ms);
  throw std::runtime_error("failed on the loop");
}

}  // namespace

TEST_CASE("call_soon_threadsafe wakes a loop that waits on nothing else", "[thread][threadsafe]") {
  ringloop::Loop loop;
  std::thread::id ran_on;
  {
    LoopHandle handle(loop);
    std::thread poster([handle, &ran_on, &loop] {
      std::this_thread::sleep_for(20ms);
      handle.call_soon_threadsafe([&ran_on, &loop] {
        ran_on = std::this_thread::get_id();
        loop.stop();
      });
    });
    auto start = std::chrono::steady_clock::now();
    loop.run_forever();  // only the handle's read is in flight: it blocks in io_uring_enter
    poster.join();
    CHECK(test_support::seconds_since(start) >= 0.019);
    CHECK(ran_on == std::this_thread::get_id());
    CHECK(loop.stats().iterations < 20);  // it slept in the kernel, it did not spin
  }
  // With no handle left, the loop again says that nothing can wake it.
  CHECK_THROWS_WITH(loop.run_forever(), Catch::Contains("nothing could ever wake the loop"));
}

TEST_CASE("run_coroutine_threadsafe returns a future of the coroutine's result",
          "[thread][threadsafe]") {
  ringloop::Loop loop;
  LoopHandle handle(loop);
  std::atomic<int> got{0};
  std::atomic<bool> failure_seen{false};
  std::thread client([handle, &got, &failure_seen, &loop]() mutable {
    got = handle.run_coroutine_threadsafe(slow_double(21)).get();
    auto failing = handle.run_coroutine_threadsafe(slow_failure());
    failing.wait();
    // The loop sets the future, then frees the coroutine's frame and its reference to the
    // exception. libstdc++ counts the references to an exception (and to its message string)
    // with atomics inside the uninstrumented libstdc++.so, which ThreadSanitizer cannot see: had
    // the loop dropped the last reference while this thread read the message, TSan would report
    // a race that is not one (issue #20), with or without a symbolizer. A round trip through
    // the loop orders the loop's drop before this thread's read.
    handle.run_coroutine_threadsafe(slow_double(0)).get();
    try {
      failing.get();
    } catch (const std::runtime_error& e) {
      failure_seen = std::string(e.what()) == "failed on the loop";
    }
    handle.call_soon_threadsafe([&loop] { loop.stop(); });
  });
  loop.run_forever();
  client.join();
  CHECK(got == 42);
  CHECK(failure_seen);
}

TEST_CASE("posts after the loop closed are refused; a handle may outlive its loop",
          "[thread][threadsafe]") {
  std::optional<LoopHandle> kept;
  {
    ringloop::Loop loop;
    kept.emplace(loop);
    loop.close();
    CHECK_THROWS_WITH(kept->call_soon_threadsafe([] {}),
                      Catch::Contains("the event loop is closed"));
  }
  // The loop is gone; the handle still answers, from another thread too.
  std::string error;
  std::thread other([&] {
    try {
      kept->call_soon_threadsafe([] {});
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
  });
  other.join();
  CHECK_THAT(error, Catch::Contains("closed"));
  kept.reset();
}

TEST_CASE("a coroutine posted but not started when the loop closes breaks its future",
          "[thread][threadsafe]") {
  std::future<int> future;
  {
    ringloop::Loop loop;
    LoopHandle handle(loop);
    future = handle.run_coroutine_threadsafe(slow_double(1));  // from the loop thread, not run
  }
  CHECK_THROWS_AS(future.get(), std::future_error);
}

TEST_CASE("LoopHandle needs the loop's thread to be made, and an open loop",
          "[thread][threadsafe]") {
  ringloop::Loop loop;
  std::string error;
  std::thread other([&] {
    try {
      LoopHandle handle(loop);
    } catch (const std::logic_error& e) {
      error = e.what();
    }
  });
  other.join();
  CHECK_THAT(error, Catch::Contains("thread other than the one that created it"));
  loop.close();
  CHECK_THROWS_WITH(LoopHandle(loop), Catch::Contains("closed"));
}
