// Marks of the present that cost less than a clock read, for a deadline that is only needed if
// the work it times suspends: wait_for takes its deadline as the await begins (asyncio's
// timeout() reads loop.time() on entry), yet most awaits it wraps finish at once and never use
// it. A mark is a TSC read where the kernel keeps CLOCK_MONOTONIC with the TSC (its clocksource
// is "tsc": constant rate, the same on every CPU; ~10 ns on this project's VM against ~25 for
// clock_gettime), else the clock itself.
//
// ns_at() puts a mark on CLOCK_MONOTONIC's scale. Near the latest (clock, TSC) pair read, at the
// TSC's rate measured from the loop's first pair to the latest (once that spans 1 ms; "near" is
// as far as it spans, up to 10 ms): off by the pair's own error (its two clock reads straddle at
// most 2 us, or it is read again; ~25 ns here) plus the rate's over that reach (at most twice a
// pair's error, and CLOCK_MONOTONIC's slewing, at most 500 ppm of 10 ms), a few microseconds at
// worst. Farther, and in the loop's first millisecond, a fresh pair is read (two clock reads)
// and the mark placed between it and the pair before it, within the pairs' own error. Loop
// thread only, as the loop's clock is. RINGLOOP_NO_TSC=1 makes marks clock reads.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <time.h>

#include <cstdint>

namespace ringloop::detail {

// A moment, as only the TimeMarks that made it can read it (TSC ticks or ns).
struct TimeMark {
  std::int64_t value = 0;
};

class TimeMarks {
 public:
  TimeMarks() noexcept;  // decides between the TSC and the clock, and reads the first pair

  TimeMark mark() const noexcept {
#if defined(__x86_64__)
    if (tsc_) return {static_cast<std::int64_t>(__builtin_ia32_rdtsc())};
#endif
    return {clock_ns()};
  }

  // The CLOCK_MONOTONIC time (ns) at which mark was taken.
  std::int64_t ns_at(TimeMark mark) noexcept {
    if (!tsc_) return mark.value;
    std::int64_t ticks = mark.value - latest_.tsc;
    if (ticks > -refresh_ticks_ && ticks < refresh_ticks_)  // never while refresh_ticks_ is 0
      return latest_.ns + static_cast<std::int64_t>(static_cast<double>(ticks) * ns_per_tick_);
    return ns_at_from_fresh_pair(mark);
  }

  bool uses_tsc() const noexcept { return tsc_; }

  static std::int64_t clock_ns() noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
  }

 private:
  struct Pair {
    std::int64_t ns = 0;
    std::int64_t tsc = 0;
  };
  static Pair read_pair() noexcept;
  std::int64_t ns_at_from_fresh_pair(TimeMark mark) noexcept;

  Pair first_;
  Pair latest_;
  double ns_per_tick_ = 0;
  // How far from latest_ a mark is placed at the rate, without a new pair: 0 until the rate is
  // known.
  std::int64_t refresh_ticks_ = 0;
  bool tsc_ = false;
};

}  // namespace ringloop::detail
