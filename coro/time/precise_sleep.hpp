// sleep_precise / sleep_until_precise: the opt-in precision mode, per sleep. The kernel timer
// (one IORING_OP_TIMEOUT, IORING_TIMEOUT_ABS) is armed a margin before the deadline; from that
// wake-up the sleeper yields to the loop, turn after turn, reading CLOCK_MONOTONIC until the
// deadline has passed. It trades CPU (about the margin per sleep) for the kernel's wake-up
// lateness, which on a VM is 70-400 us. Never returns before its deadline; cancellable at the
// kernel wait and at every turn of the spin.
//
// The margin belongs to the thread (one loop per thread): it starts at kDefaultSpinMargin and
// calibrates itself from the wake-ups of the precise sleeps themselves (or at once, with
// calibrate_spin_margin), unless set_spin_margin fixes it.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include <ringloop/coro/detail/deadline.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/coro/time/sleep.hpp>

namespace ringloop {

// Before any calibration: about twice this VM's p95 wake-up lateness of a kernel timer.
inline constexpr std::chrono::nanoseconds kDefaultSpinMargin = std::chrono::microseconds(250);
// The calibrated margin stays in this range. Below, a VM's idle vCPU takes about as long to
// wake (~65 us here): a margin learnt while the machine was busy (wake-ups of ~20 us) would
// leave most sleeps late once it goes idle, until it has learnt again. Above, the spin
// costs more than it buys: measured on this shared 2-core VM, a 1 ms sleep with a 1 ms margin
// had a p99 lateness of 4 ms (the spinning thread loses its sleeper's priority and is
// preempted for a whole scheduler slice), with 200 us it was 120 us (the kernel timer's: 230).
inline constexpr std::chrono::nanoseconds kMinSpinMargin = std::chrono::microseconds(100);
inline constexpr std::chrono::nanoseconds kMaxSpinMargin = std::chrono::microseconds(500);
static_assert(kMinSpinMargin <= kDefaultSpinMargin && kDefaultSpinMargin <= kMaxSpinMargin);

namespace detail {

// The wake-up lateness of the last kWindow kernel timers armed by precise sleeps on this
// thread, and the margin derived from them: kHeadroom times about their p95 (the k-th largest,
// k = 1 + samples / 20). Not their p99: the tail of the wake-ups is mostly a thread that was
// preempted, which no margin can hide and a longer spin makes likelier. A wake-up later than
// kIgnoredWakeNs is left out for the same reason.
class SpinMargin {
 public:
  static constexpr std::size_t kWindow = 256;
  static constexpr std::size_t kRecomputeEvery = 16;
  static constexpr double kHeadroom = 2.0;
  static constexpr std::int64_t kIgnoredWakeNs = 2 * kMaxSpinMargin.count();

  std::int64_t margin_ns() const noexcept { return margin_ns_; }
  bool fixed() const noexcept { return fixed_; }
  std::size_t samples() const noexcept { return std::min(seen_, kWindow); }

  // The margin for one sleep of duration_ns. A calibrated margin leaves at least a quarter of
  // the sleep to the kernel timer, so that every precise sleep feeds the window (a margin
  // longer than the sleeps would otherwise never see a sample again) and spins for at most
  // three quarters of its time; a fixed margin is taken as it is.
  std::int64_t margin_for(std::int64_t duration_ns) const noexcept {
    return fixed_ ? margin_ns_ : std::min(margin_ns_, duration_ns / 4 * 3);
  }

  void fix(std::int64_t margin_ns) noexcept {
    margin_ns_ = std::max<std::int64_t>(margin_ns, 0);
    fixed_ = true;
  }
  void unfix() noexcept {
    fixed_ = false;
    seen_ = 0;
    margin_ns_ = kDefaultSpinMargin.count();
  }

  // lateness_ns: how long after the armed time the sleeper ran again.
  void add_sample(std::int64_t lateness_ns) noexcept {
    if (lateness_ns > kIgnoredWakeNs) return;
    window_[seen_ % kWindow] = std::max<std::int64_t>(lateness_ns, 0);
    ++seen_;
    if (seen_ % kRecomputeEvery == 0) recompute();
  }

  // Derives the margin from the window now (no-op when fixed or with fewer than two samples).
  void recompute() noexcept {
    std::size_t n = samples();
    if (fixed_ || n < 2) return;
    std::array<std::int64_t, kWindow> sorted = window_;
    std::size_t kth_largest = 1 + n / 20;
    std::nth_element(sorted.begin(), sorted.begin() + (n - kth_largest), sorted.begin() + n);
    auto wanted =
        static_cast<std::int64_t>(static_cast<double>(sorted[n - kth_largest]) * kHeadroom);
    margin_ns_ = std::clamp(wanted, kMinSpinMargin.count(), kMaxSpinMargin.count());
  }

 private:
  std::array<std::int64_t, kWindow> window_{};
  std::size_t seen_ = 0;
  std::int64_t margin_ns_ = kDefaultSpinMargin.count();
  bool fixed_ = false;
};

inline SpinMargin& spin_margin_of_thread() noexcept {
  thread_local SpinMargin margin;
  return margin;
}

// The spin: one turn per loop iteration (sleep(0) re-schedules without an SQE), so the other
// ready coroutines run and the loop reaps completions between two readings of the clock.
inline Coro<> spin_until(std::int64_t deadline_ns) {
  while (now_ns() < deadline_ns) co_await SleepAwaiter(SleepAwaiter::YieldOnly{});
}

inline Coro<> sleep_until_precise_ns(std::int64_t deadline_ns) {
  SpinMargin& margin = spin_margin_of_thread();
  std::int64_t start_ns = now_ns();
  std::int64_t wake_ns = deadline_ns - margin.margin_for(deadline_ns - start_ns);
  if (wake_ns > start_ns) {
    co_await SleepAwaiter(wake_ns);
    margin.add_sample(now_ns() - wake_ns);
  }
  co_await spin_until(deadline_ns);
}

}  // namespace detail

// The margin the next precise sleep on this thread will use.
inline std::chrono::nanoseconds spin_margin() noexcept {
  return std::chrono::nanoseconds(detail::spin_margin_of_thread().margin_ns());
}

// Fixes the margin on this thread (0: spin for the whole sleep); it no longer calibrates.
template <class Rep, class Period>
void set_spin_margin(std::chrono::duration<Rep, Period> margin) {
  detail::spin_margin_of_thread().fix(detail::saturating_ns(margin, "set_spin_margin"));
}

// Forgets a fixed margin and the samples: back to kDefaultSpinMargin, calibrating again.
inline void reset_spin_margin() noexcept { detail::spin_margin_of_thread().unfix(); }

// Suspends until the monotonic clock reaches deadline, spinning for the last spin_margin()
// (at most three quarters of the sleep while the margin is calibrated).
template <class Duration>
Coro<> sleep_until_precise(std::chrono::time_point<std::chrono::steady_clock, Duration> deadline) {
  return detail::sleep_until_precise_ns(detail::deadline_at(deadline, "sleep_until_precise"));
}

// Suspends for at least duration (taken from the call), spinning for the last spin_margin()
// (at most three quarters of the sleep while the margin is calibrated).
template <class Rep, class Period>
Coro<> sleep_precise(std::chrono::duration<Rep, Period> duration) {
  return detail::sleep_until_precise_ns(detail::deadline_after(duration, "sleep_precise"));
}

// Calibrates this thread's margin now, from `samples` kernel timers of 200 us awaited in turn
// (the loop goes on meanwhile); returns the new margin. Precise sleeps keep calibrating it.
inline Coro<std::chrono::nanoseconds> calibrate_spin_margin(int samples = 64) {
  using namespace std::chrono_literals;
  detail::SpinMargin& margin = detail::spin_margin_of_thread();
  margin.unfix();
  for (int i = 0; i < std::max(samples, 2); ++i) {
    std::int64_t wake_ns = detail::deadline_after(200us, "calibrate_spin_margin");
    co_await detail::SleepAwaiter(wake_ns);
    margin.add_sample(detail::now_ns() - wake_ns);
  }
  margin.recompute();
  co_return spin_margin();
}

}  // namespace ringloop
