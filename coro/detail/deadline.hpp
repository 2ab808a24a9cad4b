// Durations and deadlines on the monotonic clock, as the kernel wants them. Every duration and
// time point a user hands to ringloop goes through checked_ns(), the one conversion: NaN is
// refused with std::invalid_argument naming the caller (asyncio 3.13's sleep raises ValueError;
// the bare float-to-int cast was undefined behaviour), and values past what int64 nanoseconds
// hold saturate: +inf, hours::max() or 1e300 s mean "never" (asyncio takes float('inf') as a
// delay that never ends), -inf a deadline long past.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <linux/time_types.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <ratio>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <ringloop/loop/loop.hpp>

namespace ringloop::detail {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, the clock io_uring timeouts use
static_assert(std::is_same_v<Clock::duration, std::chrono::nanoseconds>);

inline constexpr std::int64_t kMaxDeadlineNs = std::numeric_limits<std::int64_t>::max();
inline constexpr std::int64_t kMinDeadlineNs = std::numeric_limits<std::int64_t>::min();

// d in nanoseconds, saturated to int64; NaN refused. `what` names the caller in the message.
template <class Rep, class Period>
std::int64_t checked_ns(std::chrono::duration<Rep, Period> d, const char* what) {
  // An integer count in a unit that is a whole number of nanoseconds (ns, us, ms, s, min, h):
  // one multiplication, saturated by its sign on overflow. The long double path below costs
  // ~40 ns on x86-64 (an x87 store that switches the rounding mode), half a wait_for.
  using ToNs = std::ratio_divide<Period, std::nano>;
  if constexpr (std::is_integral_v<Rep> && ToNs::den == 1) {
    std::int64_t ns = 0;
    if (__builtin_mul_overflow(d.count(), ToNs::num, &ns))
      return d.count() > 0 ? kMaxDeadlineNs : kMinDeadlineNs;
    return ns;
  }
  using LongNs = std::chrono::duration<long double, std::nano>;
  long double ns = std::chrono::duration_cast<LongNs>(d).count();
  if (ns != ns)
    throw std::invalid_argument(std::string(what) +
                                ": the duration is NaN; pass a number (+inf means no deadline)");
  // 2^63 is exact in long double; int64's max is not, so compare against the bound above it.
  if (ns >= static_cast<long double>(kMaxDeadlineNs)) return kMaxDeadlineNs;
  if (ns <= static_cast<long double>(kMinDeadlineNs)) return kMinDeadlineNs;
  return static_cast<std::int64_t>(ns);
}

// checked_ns, and at least 0.
template <class Rep, class Period>
std::int64_t saturating_ns(std::chrono::duration<Rep, Period> d, const char* what) {
  return std::max<std::int64_t>(checked_ns(d, what), 0);
}

// The running loop's clock (virtual time included), or the monotonic clock outside a loop.
inline std::int64_t now_ns() noexcept {
  if (Loop* loop = Loop::current()) return loop->now_ns();
  return Clock::now().time_since_epoch().count();
}

// now + d, saturating; d <= 0 gives now (a deadline the kernel can take).
template <class Rep, class Period>
std::int64_t deadline_after(std::chrono::duration<Rep, Period> d, const char* what) {
  std::int64_t delta = saturating_ns(d, what);
  std::int64_t now = now_ns();
  return delta > kMaxDeadlineNs - now ? kMaxDeadlineNs : now + delta;
}

// now + d, saturating both ways, and kept in the past when d < 0 (Timeout's when(), as
// asyncio's loop.time() + delay). Clamp with kernel_deadline() before arming a timer on it.
template <class Rep, class Period>
std::int64_t signed_deadline_after(std::chrono::duration<Rep, Period> d, const char* what) {
  std::int64_t delta = checked_ns(d, what);
  std::int64_t deadline = 0;
  if (__builtin_add_overflow(now_ns(), delta, &deadline))
    return delta > 0 ? kMaxDeadlineNs : kMinDeadlineNs;
  return deadline;
}

template <class Duration>
std::int64_t deadline_at(std::chrono::time_point<Clock, Duration> when, const char* what) {
  return saturating_ns(when.time_since_epoch(), what);
}
template <class Duration>
std::int64_t signed_deadline_at(std::chrono::time_point<Clock, Duration> when, const char* what) {
  return checked_ns(when.time_since_epoch(), what);
}

// A deadline the kernel accepts (a negative timespec is EINVAL): the past is all alike to it.
inline std::int64_t kernel_deadline(std::int64_t deadline_ns) noexcept {
  return std::max<std::int64_t>(deadline_ns, 1);  // 0 means "no deadline" to the loop
}

inline __kernel_timespec to_timespec(std::int64_t ns) noexcept {
  return {.tv_sec = ns / 1'000'000'000, .tv_nsec = ns % 1'000'000'000};
}

}  // namespace ringloop::detail
