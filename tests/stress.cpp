// Stress: many operations through a small ring, cancel storms, cancellation racing expiry.
// Each is bounded in time, deterministic in what it checks, and proves that every task ends
// exactly once.
#include <catch2/catch.hpp>

#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Task;
using Clock = std::chrono::steady_clock;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr int kManySleeps = 200'000;  // the sanitizer build is ~10x slower; same code paths
#else
constexpr int kManySleeps = 1'000'000;
#endif

Coro<> sleep_then_count(int& completions) {
  co_await ringloop::sleep(50ms);
  ++completions;
}

// Ends exactly one way; outcome 1 = finished, 2 = cancelled.
Coro<> sleep_and_record(Clock::time_point deadline, int& outcome) {
  try {
    co_await ringloop::sleep_until(deadline);
    outcome += 1;
  } catch (const CancelledError&) {
    outcome += 2;
    throw;
  }
}

}  // namespace

TEST_CASE("a million concurrent sleeps through a 256-entry SQ with an overflowing CQ", "[stress]") {
  ringloop::LoopOptions options;
  options.ring.sq_entries = 256;
  options.ring.cq_entries = 4096;
  options.max_in_flight = kManySleeps;  // past the CQ on purpose: the kernel's overflow list fills
  std::vector<int> completions(kManySleeps, 0);
  ringloop::run(
      [](std::vector<int>& counts) -> Coro<> {
        std::vector<Coro<>> sleepers;
        sleepers.reserve(counts.size());
        for (int& count : counts) sleepers.push_back(sleep_then_count(count));
        co_await ringloop::gather(sleepers);
      }(completions),
      options);
  int wrong = 0;
  for (int count : completions) wrong += count != 1;
  CHECK(wrong == 0);
  CHECK(ringloop::detail::live_frames() == 0);  // memory back to baseline
}

TEST_CASE("a storm of 100k cancels ends every task once, as cancelled", "[stress][cancel]") {
  constexpr int kTasks = 100'000;
  std::vector<int> outcomes(kTasks, 0);
  auto start = Clock::now();
  ringloop::run([](std::vector<int>& out) -> Coro<> {
    std::vector<Task<>> tasks;
    tasks.reserve(out.size());
    auto never = Clock::now() + 1h;
    for (int& outcome : out)
      tasks.push_back(ringloop::create_task(sleep_and_record(never, outcome)));
    co_await ringloop::sleep(1ms);
    for (auto& task : tasks) task.cancel();
    co_await ringloop::gather(ringloop::return_exceptions, tasks);
    int not_cancelled = 0;
    for (auto& task : tasks) not_cancelled += !task.cancelled();
    CHECK(not_cancelled == 0);
  }(outcomes));
  int wrong = 0;
  for (int outcome : outcomes) wrong += outcome != 2;
  CHECK(wrong == 0);
  CHECK(test_support::seconds_since(start) < 30.0);
}

TEST_CASE("cancellation racing expiry ends each task exactly once", "[stress][cancel]") {
  // Deadlines equal to the moment of the cancel: some timers fire first, some cancels win.
  constexpr int kRounds = 40;
  constexpr int kTasks = 500;
  int finished = 0;
  int cancelled = 0;
  int wrong = 0;
  ringloop::run([](int& done, int& cancels, int& bad) -> Coro<> {
    for (int round = 0; round < kRounds; ++round) {
      std::vector<int> outcomes(kTasks, 0);
      std::vector<Task<>> tasks;
      auto deadline = Clock::now() + 2ms;
      for (int& outcome : outcomes)
        tasks.push_back(ringloop::create_task(sleep_and_record(deadline, outcome)));
      co_await ringloop::sleep_until(deadline);
      for (auto& task : tasks) task.cancel();
      co_await ringloop::gather(ringloop::return_exceptions, tasks);
      for (std::size_t i = 0; i < tasks.size(); ++i) {
        bool says_cancelled = tasks[i].cancelled();
        if (outcomes[i] == 1 && !says_cancelled)
          ++done;
        else if (outcomes[i] == 2 && says_cancelled)
          ++cancels;
        else
          ++bad;
      }
    }
  }(finished, cancelled, wrong));
  CHECK(wrong == 0);
  CHECK(finished + cancelled == kRounds * kTasks);
}

namespace {
Coro<> count_once(int& runs) {
  ++runs;
  co_return;
}
}  // namespace

TEST_CASE("a frame allocation failure is a std::bad_alloc at the call, nothing leaks",
          "[stress][fault]") {
  int runs = 0;
  ringloop::run([](int& r) -> Coro<> {
    ringloop::detail::fail_allocations_after(2);
    std::vector<Coro<>> children;
    bool threw = false;
    try {
      for (int i = 0; i < 5; ++i) children.push_back(count_once(r));
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    ringloop::detail::fail_allocations_after(-1);
    CHECK(threw);
    CHECK(children.size() == 2);
    co_await ringloop::gather(children);  // the loop and the frames made before go on
    CHECK(r == 2);
  }(runs));
}
