// Durations and deadlines on the monotonic clock, as the kernel wants them. Conversions
// saturate: sleep(hours::max()) means "practically never", not an overflow into the past.
#pragma once

#include <linux/time_types.h>

#include <chrono>
#include <cstdint>
#include <limits>

#include <ringloop/loop/loop.hpp>

namespace ringloop::detail {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, the clock io_uring timeouts use
static_assert(std::is_same_v<Clock::duration, std::chrono::nanoseconds>);

inline constexpr std::int64_t kMaxDeadlineNs = std::numeric_limits<std::int64_t>::max();

template <class Rep, class Period>
std::int64_t saturating_ns(std::chrono::duration<Rep, Period> d) noexcept {
  using std::chrono::duration;
  using LongNs = duration<long double, std::nano>;
  long double ns = std::chrono::duration_cast<LongNs>(d).count();
  if (ns >= static_cast<long double>(kMaxDeadlineNs)) return kMaxDeadlineNs;
  if (ns <= 0) return 0;
  return static_cast<std::int64_t>(ns);
}

// The running loop's clock (virtual time included), or the monotonic clock outside a loop.
inline std::int64_t now_ns() noexcept {
  if (Loop* loop = Loop::current()) return loop->now_ns();
  return Clock::now().time_since_epoch().count();
}

// now + d, saturating; d <= 0 gives now.
template <class Rep, class Period>
std::int64_t deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  std::int64_t now = now_ns();
  std::int64_t delta = saturating_ns(d);
  return delta > kMaxDeadlineNs - now ? kMaxDeadlineNs : now + delta;
}

template <class Duration>
std::int64_t deadline_at(std::chrono::time_point<Clock, Duration> when) noexcept {
  return saturating_ns(when.time_since_epoch());
}

inline __kernel_timespec to_timespec(std::int64_t ns) noexcept {
  return {.tv_sec = ns / 1'000'000'000, .tv_nsec = ns % 1'000'000'000};
}

}  // namespace ringloop::detail
