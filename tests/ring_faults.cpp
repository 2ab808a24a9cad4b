// The ring's fault paths through test seams: io_uring setup refused (each errno named, with
// what to change), the fallback to fewer setup flags when the kernel answers EINVAL, and an SQ
// exhausted within one step (flushed and retried; no SQE dropped, linked pairs kept whole).
#include <catch2/catch.hpp>

#include <cerrno>
#include <system_error>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"
#include "tests/io_support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Loop;
using ringloop::Task;
using ringloop::TimeoutError;

namespace {

// The setup error Loop's constructor throws after the given injected errnos.
std::system_error setup_error(std::initializer_list<int> errors) {
  ringloop::Ring::inject_setup_errors_for_tests(errors);
  try {
    Loop loop;
  } catch (const std::system_error& e) {
    ringloop::Ring::inject_setup_errors_for_tests({});
    return e;
  }
  ringloop::Ring::inject_setup_errors_for_tests({});
  FAIL("Loop construction did not throw");
  return std::system_error(0, std::system_category());
}

// What a loop must still do on a ring set up with fewer flags: timers, cancels, wait_for.
Coro<int> small_program() {
  auto [a, b] = co_await ringloop::gather(test_support::value_after(2ms, 1),
                                          test_support::value_after(1ms, 2));
  auto sleeper = ringloop::create_task(test_support::value_after(1h, 0));
  co_await ringloop::sleep(1ms);
  sleeper.cancel();
  int cancelled = 0;
  try {
    co_await sleeper;
  } catch (const CancelledError&) {
    cancelled = 1;
  }
  int timed_out = 0;
  try {
    co_await ringloop::wait_for(test_support::value_after(1h, 0), 2ms);
  } catch (const TimeoutError&) {
    timed_out = 1;
  }
  co_return a + b + cancelled + timed_out;
}

}  // namespace

TEST_CASE("a refused io_uring setup is an error that names the cause", "[ring][fault]") {
  std::system_error nomem = setup_error({ENOMEM});
  CHECK(nomem.code().value() == ENOMEM);
  CHECK_THAT(nomem.what(),
             Catch::Contains("io_uring_setup failed") && Catch::Contains("RLIMIT_MEMLOCK"));
  std::system_error perm = setup_error({EPERM});
  CHECK(perm.code().value() == EPERM);
  CHECK_THAT(perm.what(), Catch::Contains("kernel.io_uring_disabled"));
  std::system_error nosys = setup_error({ENOSYS});
  CHECK(nosys.code().value() == ENOSYS);
  CHECK_THAT(nosys.what(), Catch::Contains("no io_uring"));
  // Only EINVAL means "try fewer flags": another errno after it ends the fallback.
  std::system_error after_fallback = setup_error({EINVAL, ENOMEM});
  CHECK(after_fallback.code().value() == ENOMEM);
  // Every flag set refused.
  std::system_error inval = setup_error({EINVAL, EINVAL, EINVAL, EINVAL});
  CHECK(inval.code().value() == EINVAL);
  CHECK_THAT(inval.what(), Catch::Contains("rejected the ring parameters"));
  // The seam is spent: the next loop is set up and runs.
  CHECK(ringloop::run(small_program()) == 5);
}

TEST_CASE("run fails with the setup error before running anything", "[ring][fault]") {
  int ran = 0;
  ringloop::Ring::inject_setup_errors_for_tests({EPERM});
  CHECK_THROWS_AS(ringloop::run([](int& r) -> Coro<> {
                    ++r;
                    co_return;
                  }(ran)),
                  std::system_error);
  CHECK(ran == 0);
  CHECK(Loop::current() == nullptr);
}

TEST_CASE("when the kernel refuses the newest setup flags the ring falls back, and works",
          "[ring][fault]") {
  unsigned first_choice = ringloop::Ring().setup_flags();
  if ((first_choice & IORING_SETUP_TASKRUN_FLAG) == 0 ||
      (first_choice & IORING_SETUP_DEFER_TASKRUN) == 0) {
    WARN("this kernel refuses the newest flags: the fallbacks are what every test runs on");
    return;
  }

  SECTION("without TASKRUN_FLAG: DEFER_TASKRUN alone") {
    ringloop::Ring::inject_setup_errors_for_tests({EINVAL});
    ringloop::Ring ring;
    CHECK((ring.setup_flags() & IORING_SETUP_DEFER_TASKRUN) != 0);
    CHECK((ring.setup_flags() & IORING_SETUP_TASKRUN_FLAG) == 0);
    ringloop::Ring::inject_setup_errors_for_tests({EINVAL});
    CHECK(ringloop::run(small_program()) == 5);
  }
  SECTION("without DEFER_TASKRUN: COOP_TASKRUN") {
    ringloop::Ring::inject_setup_errors_for_tests({EINVAL, EINVAL});
    ringloop::Ring ring;
    CHECK((ring.setup_flags() & IORING_SETUP_DEFER_TASKRUN) == 0);
    CHECK((ring.setup_flags() & IORING_SETUP_COOP_TASKRUN) != 0);
    ringloop::Ring::inject_setup_errors_for_tests({EINVAL, EINVAL});
    CHECK(ringloop::run(small_program()) == 5);
  }
  SECTION("no flags at all") {
    ringloop::Ring::inject_setup_errors_for_tests({EINVAL, EINVAL, EINVAL});
    ringloop::Ring ring;
    CHECK((ring.setup_flags() & ~unsigned{IORING_SETUP_CQSIZE}) == 0);
    ringloop::Ring::inject_setup_errors_for_tests({EINVAL, EINVAL, EINVAL});
    CHECK(ringloop::run(small_program()) == 5);
  }
}

namespace {

// Ends exactly one way: 1 = slept out, 2 = cancelled, 3 = timed out (recv), 4 = other.
Coro<> sleep_once(int& outcome) {
  try {
    co_await ringloop::sleep(3ms);
    outcome = 1;
  } catch (const CancelledError&) {
    outcome = 2;
  }
}
Coro<> recv_once(int fd, int& outcome) {
  char byte = 0;
  try {
    co_await ringloop::wait_for(ringloop::io::recv(fd, &byte, 1), 3ms);  // a linked pair: 2 SQEs
    outcome = 4;
  } catch (const TimeoutError&) {
    outcome = 3;
  } catch (const CancelledError&) {
    outcome = 2;
  }
}

}  // namespace

TEST_CASE("an SQ exhausted within one step is flushed and retried: no SQE dropped",
          "[ring][fault]") {
  // 4 SQEs: in one step, 300 tasks queue 450 SQEs (sleeps, and recv + link timeout pairs that
  // must not be split across a flush), then 150 cancels queue more.
  constexpr int kTasks = 300;
  ringloop::LoopOptions options;
  options.ring.sq_entries = 4;
  options.ring.cq_entries = 4096;
  test_support::SocketPair pair;  // nobody writes: every recv waits for its timeout
  std::vector<int> outcomes(kTasks, 0);
  std::uint64_t enters = 0;
  ringloop::run(
      [](std::vector<int>& out, int fd, std::uint64_t& enter_calls) -> Coro<> {
        Loop& loop = *Loop::current();
        std::uint64_t enters_before = loop.ring().enter_calls();
        std::vector<Task<>> tasks;
        for (int i = 0; i < kTasks; ++i)
          tasks.push_back(
              ringloop::create_task(i % 2 == 0 ? sleep_once(out[i]) : recv_once(fd, out[i])));
        co_await ringloop::sleep(0ms);  // every task runs, and queues its SQEs, in this step
        for (int i = 0; i < kTasks; i += 4) tasks[i].cancel();  // TIMEOUT_REMOVEs
        for (int i = 1; i < kTasks; i += 4) tasks[i].cancel();  // ASYNC_CANCELs
        co_await ringloop::gather(ringloop::return_exceptions, tasks);
        enter_calls = loop.ring().enter_calls() - enters_before;
        CHECK(loop.in_flight() == 0);
      }(outcomes, pair.a.fd(), enters),
      options);
  std::vector<int> counts(5, 0);
  for (int outcome : outcomes) ++counts[static_cast<std::size_t>(outcome)];
  CHECK(counts[0] == 0);           // every task ended
  CHECK(counts[1] == kTasks / 4);  // the sleeps not cancelled slept out
  CHECK(counts[2] == kTasks / 2);  // every cancel took
  CHECK(counts[3] == kTasks / 4);  // the recvs not cancelled timed out
  CHECK(counts[4] == 0);
  // The SQ was flushed many times over: at least once per 4 of the SQEs that must reach the
  // kernel, the recv + LINK_TIMEOUT pairs and their ASYNC_CANCELs. (A sleep's TIMEOUT is
  // prepared lazily: on a slow run, under valgrind say, sleeps already due by the submit point
  // complete without one.)
  CHECK(enters >= (kTasks / 2 * 2 + kTasks / 4) / 4);
}
