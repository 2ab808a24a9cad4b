// The loop and run(): direct use, nesting rules, shutdown with work pending, deadlock detection,
// and the ring's queue rules (SQ full is a flush, CQ overflow loses nothing, EINTR is retried).
#include <catch2/catch.hpp>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <thread>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Loop;
using test_support::value_after;

namespace {
Coro<> sleep_forever(int& cancelled) {
  try {
    co_await ringloop::sleep(std::chrono::hours(1));
  } catch (const ringloop::CancelledError&) {
    ++cancelled;
    throw;
  }
}
}  // namespace

TEST_CASE("run returns the coroutine's value or rethrows its exception", "[run]") {
  CHECK(ringloop::run(value_after(1ms, 11)) == 11);
  CHECK_THROWS_WITH(ringloop::run([]() -> Coro<> {
                      co_await ringloop::sleep(1ms);
                      throw std::runtime_error("main failed");
                    }()),
                    "main failed");
}

TEST_CASE("run inside a running loop is a clear error", "[run]") {
  ringloop::run([]() -> Coro<> {
    CHECK_THROWS_WITH(ringloop::run(value_after(1ms, 1)), Catch::Contains("running event loop"));
    co_return;
  }());
}

TEST_CASE("run cancels the tasks still pending when main returns, and waits for them", "[run]") {
  int cancelled = 0;
  auto start = std::chrono::steady_clock::now();
  ringloop::run([](int& count) -> Coro<> {
    for (int i = 0; i < 100; ++i) ringloop::create_task(sleep_forever(count));
    co_await ringloop::sleep(1ms);
  }(cancelled));
  CHECK(cancelled == 100);
  CHECK(test_support::seconds_since(start) < 1.0);
}

TEST_CASE("a Loop can be used directly: run_until_complete, current, close", "[loop]") {
  Loop loop;
  CHECK(Loop::current() == nullptr);
  int value = loop.run_until_complete([](Loop& expected) -> Coro<int> {
    CHECK(Loop::current() == &expected);
    co_return co_await value_after(1ms, 5);
  }(loop));
  CHECK(value == 5);
  CHECK(loop.run_until_complete(value_after(1ms, 6)) == 6);
  CHECK(Loop::current() == nullptr);
  loop.close();
  CHECK(loop.is_closed());
  loop.close();  // idempotent
  CHECK_THROWS_WITH(loop.run_until_complete(value_after(1ms, 7)), Catch::Contains("closed"));
}

TEST_CASE("run_forever runs until a task calls stop", "[loop]") {
  Loop loop;
  int ticks = 0;
  ringloop::create_task(loop, [](Loop& l, int& t) -> Coro<> {
    for (int i = 0; i < 3; ++i) {
      co_await ringloop::sleep(1ms);
      ++t;
    }
    l.stop();
  }(loop, ticks));
  loop.run_forever();
  CHECK(ticks == 3);
}

TEST_CASE("run_forever with nothing to wait for is a clear error, not a hang", "[loop]") {
  Loop loop;
  CHECK_THROWS_WITH(loop.run_forever(), Catch::Contains("nothing could ever wake"));
}

TEST_CASE("close cancels pending tasks and drains operations in flight", "[loop]") {
  int cancelled = 0;
  {
    Loop loop;
    for (int i = 0; i < 10; ++i) ringloop::create_task(loop, sleep_forever(cancelled));
    loop.run_until_complete(value_after(1ms, 0));
    CHECK(loop.in_flight() == 10);
    loop.close();
    CHECK(loop.in_flight() == 0);
  }
  CHECK(cancelled == 10);
}

namespace {
// A foreign awaitable that never completes: awaiting it leaves nothing in flight.
struct NeverResumes {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  void await_resume() const noexcept {}
};
}  // namespace

TEST_CASE("a coroutine waiting on nothing that can complete is reported as a deadlock", "[loop]") {
  std::string report = test_support::capture_stderr([] {
    CHECK_THROWS_WITH(ringloop::run([]() -> Coro<> { co_await NeverResumes{}; }()),
                      Catch::Contains("deadlock"));
  });
  CHECK_THAT(report, Catch::Contains("never finished"));
}

TEST_CASE("a Loop refuses to run on a thread other than its own", "[loop]") {
  Loop loop;
  std::string message;
  std::thread other([&] {
    try {
      loop.run_until_complete(value_after(1ms, 1));
    } catch (const std::logic_error& e) {
      message = e.what();
    }
  });
  other.join();
  CHECK_THAT(message, Catch::Contains("other than the one that created it"));
}

namespace {
// A foreign awaiter (not ringloop's) that resumes through the loop.
struct ResumeOnNextStep {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> handle) const { Loop::current()->schedule(handle); }
  int await_resume() const noexcept { return 3; }
};
}  // namespace

TEST_CASE("ringloop coroutines await any awaitable", "[loop]") {
  int value = ringloop::run([]() -> Coro<int> { co_return co_await ResumeOnNextStep{}; }());
  CHECK(value == 3);
}

TEST_CASE("a full SQ is flushed, never an error", "[ring]") {
  ringloop::LoopOptions options;
  options.ring.sq_entries = 8;
  options.ring.cq_entries = 4096;
  int woke = 0;
  ringloop::run(
      [](int& count) -> Coro<> {
        std::vector<Coro<>> sleepers;
        for (int i = 0; i < 1000; ++i)
          sleepers.push_back([](int& c) -> Coro<> {
            co_await ringloop::sleep(1ms);
            ++c;
          }(count));
        co_await ringloop::gather(sleepers);
      }(woke),
      options);
  CHECK(woke == 1000);
}

TEST_CASE("operations beyond the CQ budget wait their turn and all complete", "[ring]") {
  ringloop::LoopOptions options;
  options.ring.sq_entries = 16;
  options.ring.cq_entries = 64;  // budget: 256 owed (4x the CQ)
  int woke = 0;
  std::uint64_t deferred = 0;
  ringloop::run(
      [](int& count, std::uint64_t& def) -> Coro<> {
        std::vector<Coro<>> sleepers;
        for (int i = 0; i < 5000; ++i)
          sleepers.push_back([](int& c) -> Coro<> {
            co_await ringloop::sleep(1ms);
            ++c;
          }(count));
        co_await ringloop::gather(sleepers);
        def = Loop::current()->stats().operations_deferred;
      }(woke, deferred),
      options);
  CHECK(woke == 5000);
  CHECK(deferred > 0);
}

TEST_CASE("a CQ overflow loses no completion (IORING_FEAT_NODROP)", "[ring]") {
  // The budget is raised past the CQ on purpose so that the kernel overflows it.
  ringloop::LoopOptions options;
  options.ring.sq_entries = 256;
  options.ring.cq_entries = 256;
  options.max_in_flight = 100'000;
  int woke = 0;
  ringloop::run(
      [](int& count) -> Coro<> {
        auto deadline = std::chrono::steady_clock::now() + 20ms;
        std::vector<Coro<>> sleepers;
        for (int i = 0; i < 20'000; ++i)
          sleepers.push_back([](int& c, std::chrono::steady_clock::time_point d) -> Coro<> {
            co_await ringloop::sleep_until(d);
            ++c;
          }(count, deadline));
        co_await ringloop::gather(sleepers);
      }(woke),
      options);
  CHECK(woke == 20'000);
}

namespace {
void ignore_signal(int) {}
}  // namespace

// stdexec #1111: io_uring_enter returning -EINTR must be retried, not treated as an error.
TEST_CASE("signals interrupting io_uring_enter are retried", "[ring]") {
  struct sigaction action {};
  action.sa_handler = ignore_signal;  // no SA_RESTART: the wait really returns EINTR
  struct sigaction previous {};
  sigaction(SIGUSR1, &action, &previous);
  pthread_t loop_thread = pthread_self();
  std::atomic<bool> done{false};
  std::thread interrupter([&] {
    while (!done) {
      pthread_kill(loop_thread, SIGUSR1);
      std::this_thread::sleep_for(1ms);
    }
  });
  int value = ringloop::run(value_after(100ms, 9));
  done = true;
  interrupter.join();
  sigaction(SIGUSR1, &previous, nullptr);
  CHECK(value == 9);
}

// PITFALLS.md, "Lifetimes": a frame must not be destroyed while one of its SQEs is in flight.
TEST_CASE("destroying an operation the kernel still owes a CQE aborts", "[loop]") {
  int status = test_support::run_in_child([] {
    Loop loop;
    auto* sleeper =
        new ringloop::detail::SleepAwaiter(ringloop::detail::deadline_after(1h, "test"));
    ringloop::create_task(
        loop, [](ringloop::detail::SleepAwaiter& s) -> Coro<> { co_await s; }(*sleeper));
    loop.run_until_complete(value_after(1ms, 0));
    delete sleeper;  // the kernel still holds its timeout
  });
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
}

TEST_CASE("the ring says which setup flags the kernel took", "[ring]") {
  ringloop::Ring ring;
  CHECK(ring.sq_entries() >= 1024);
  CHECK(ring.cq_entries() >= ring.sq_entries());
  INFO("setup flags: " << ring.setup_flags());
  CHECK((ring.setup_flags() & IORING_SETUP_CQSIZE) != 0);
}

TEST_CASE("impossible ring sizes are a clear error", "[ring]") {
  ringloop::RingOptions options;
  options.sq_entries = 64;
  options.cq_entries = 8;
  CHECK_THROWS_WITH(ringloop::Ring(options), Catch::Contains("cq_entries"));
  options.sq_entries = 1u << 30;
  options.cq_entries = 1u << 31;
  CHECK_THROWS_WITH(ringloop::Ring(options), Catch::Contains("io_uring_setup failed"));
}

namespace {
Coro<int> sleeps_an_hour() {
  co_await ringloop::sleep(std::chrono::hours(1));
  co_return 0;
}
}  // namespace

// A completion can cancel an operation (wait_for's timer fires and cancels its child), and the
// cancel SQE may find the SQ full; if the kernel then answers EBUSY the loop reaps from inside
// its reaping loop. Each CQE must still be handled exactly once.
TEST_CASE("a cancel from inside the reaping loop, with the SQ full and EBUSY, loses nothing",
          "[ring][fault]") {
  ringloop::LoopOptions options;
  options.ring.sq_entries = 2;
  options.ring.cq_entries = 256;
  int timeouts = 0;
  ringloop::run(
      [](int& count) -> Coro<> {
        std::vector<ringloop::Task<>> waiters;
        for (int i = 0; i < 40; ++i)
          waiters.push_back(ringloop::create_task([](int& c) -> Coro<> {
            try {
              co_await ringloop::wait_for(sleeps_an_hour(), 2ms);
            } catch (const ringloop::TimeoutError&) {
              ++c;
            }
          }(count)));
        co_await ringloop::sleep(1ms);
        ringloop::Ring::inject_busy_submits_for_tests(30);
        co_await ringloop::gather(waiters);
        ringloop::Ring::inject_busy_submits_for_tests(0);
        CHECK(Loop::current()->in_flight() == 0);
      }(timeouts),
      options);
  CHECK(timeouts == 40);
}
