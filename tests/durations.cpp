// Durations as every entry point takes them: NaN is refused with std::invalid_argument (asyncio
// 3.13's sleep raises ValueError; a float-to-int cast of NaN was undefined behaviour here, then
// EINVAL from the kernel), +inf and durations past what int64 nanoseconds hold mean "never"
// (asyncio takes float('inf') as a delay that never ends), -inf is a timeout already expired.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/coroutines.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Task;
using ringloop::TimeoutError;
using test_support::value_after;

namespace {

using Seconds = std::chrono::duration<double>;
const Seconds kNaN{std::numeric_limits<double>::quiet_NaN()};
const Seconds kInf{std::numeric_limits<double>::infinity()};

Coro<int> sleep_then_return(Seconds duration) {
  co_await ringloop::sleep(duration);
  co_return 0;
}

}  // namespace

TEST_CASE("a NaN duration is refused with invalid_argument wherever a duration is taken",
          "[durations][conformance]") {
  ringloop::run([]() -> Coro<> {
    CHECK_THROWS_AS(co_await ringloop::sleep(kNaN), std::invalid_argument);
    CHECK_THROWS_WITH(co_await ringloop::sleep(kNaN),
                      Catch::Contains("sleep: the duration is NaN"));
    CHECK_THROWS_AS(co_await ringloop::wait_for(value_after(1ms, 1), kNaN), std::invalid_argument);
    CHECK_THROWS_AS(co_await ringloop::timeout(kNaN, value_after(1ms, 1)), std::invalid_argument);
    CHECK_THROWS_AS(ringloop::Timeout(kNaN), std::invalid_argument);
    CHECK_THROWS_AS(ringloop::call_later(kNaN, [] {}), std::invalid_argument);
    CHECK_THROWS_AS(ringloop::Pacer(kNaN), std::invalid_argument);
    CHECK_THROWS_AS(co_await ringloop::sleep_precise(kNaN), std::invalid_argument);
    auto task = ringloop::create_task(value_after(1ms, 2));
    std::vector<Task<int>> tasks{task};
    CHECK_THROWS_AS(co_await ringloop::wait(tasks, kNaN), std::invalid_argument);
    CHECK_THROWS_AS(ringloop::AsCompleted<int>(tasks, kNaN), std::invalid_argument);
    co_await task;
  }());
}

TEST_CASE("+inf and durations past int64 nanoseconds mean no deadline; -inf one already passed",
          "[durations][conformance]") {
  ringloop::run([]() -> Coro<> {
    int with_inf = co_await ringloop::wait_for(value_after(2ms, 1), kInf);
    CHECK(with_inf == 1);
    int with_max = co_await ringloop::wait_for(value_after(2ms, 2), std::chrono::hours::max());
    CHECK(with_max == 2);
    int in_scope = co_await ringloop::timeout(kInf, value_after(2ms, 3));
    CHECK(in_scope == 3);
    // A sleep of +inf or of Seconds::max() does not end (and is not an overflow into the past).
    CHECK_THROWS_AS(co_await ringloop::wait_for(sleep_then_return(kInf), 5ms), TimeoutError);
    CHECK_THROWS_AS(co_await ringloop::wait_for(sleep_then_return(Seconds::max()), 5ms),
                    TimeoutError);
    co_await ringloop::sleep(-kInf);  // yields, as sleep(0)
    CHECK_THROWS_AS(co_await ringloop::wait_for(value_after(1ms, 4), -kInf), TimeoutError);
  }());
}

TEST_CASE("integer durations convert to nanoseconds exactly and saturate by sign", "[durations]") {
  using ringloop::detail::checked_ns;
  using ringloop::detail::kMaxDeadlineNs;
  using ringloop::detail::kMinDeadlineNs;
  CHECK(checked_ns(std::chrono::microseconds(5), "t") == 5'000);
  CHECK(checked_ns(std::chrono::seconds(-3), "t") == -3'000'000'000);
  CHECK(checked_ns(std::chrono::nanoseconds::max(), "t") == kMaxDeadlineNs);
  CHECK(checked_ns(std::chrono::nanoseconds::min(), "t") == kMinDeadlineNs);
  CHECK(checked_ns(std::chrono::hours::max(), "t") == kMaxDeadlineNs);
  CHECK(checked_ns(std::chrono::hours::min(), "t") == kMinDeadlineNs);
  // 9,223,372,036 s is the last whole second int64 nanoseconds hold; one more saturates.
  CHECK(checked_ns(std::chrono::seconds(9'223'372'036), "t") == 9'223'372'036'000'000'000);
  CHECK(checked_ns(std::chrono::seconds(9'223'372'037), "t") == kMaxDeadlineNs);
  CHECK(checked_ns(std::chrono::duration<std::uint64_t>(~std::uint64_t{0}), "t") == kMaxDeadlineNs);
  // A unit that is not a whole number of nanoseconds takes the long double path.
  CHECK(checked_ns(std::chrono::duration<long, std::ratio<1, 3>>(3), "t") == 1'000'000'000);
  CHECK(checked_ns(std::chrono::duration<double>(1.5e-6), "t") == 1'500);
}
