// Pacer: ticks at origin + k * period (k = 1, 2, ...), each one absolute deadline on the
// monotonic clock (one IORING_OP_TIMEOUT with IORING_TIMEOUT_ABS, the SQE of sleep_until), so
// the lateness of one wake-up is never carried into the next: after 10,000 ticks the schedule
// has not moved. Each tick says when it was meant to come and when it came, the basis of a
// constant-rate load generator that is honest about coordinated omission (measure from
// Tick::intended, not from when the request could finally be sent).
//
// A caller that falls behind by a whole period or more has missed ticks; MissedTick says what
// happens to them. Lateness below one period is jitter and changes nothing.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>

#include <ringloop/coro/detail/deadline.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/coro/time/precise_sleep.hpp>
#include <ringloop/coro/time/sleep.hpp>

namespace ringloop {

enum class MissedTick : std::uint8_t {
  // Every missed tick is delivered, at once and one after another, each with its own intended
  // time: a load generator catches up and the latencies it measures include the stall.
  burst,
  // The late tick is delivered; the ticks due meanwhile are dropped (Tick::skipped counts
  // them) and the pacer goes on at the next point of the original grid.
  skip,
  // The late tick is delivered; the grid restarts from it: the next tick is one period after
  // the late one came (the schedule shifts by the stall, and only then).
  delay,
};

// kernel: wake-ups as the kernel timer gives them. spin: sleep_until_precise (CPU for accuracy).
enum class Precision : std::uint8_t { kernel, spin };

struct Tick {
  std::uint64_t index = 0;  // k: intended == origin + k * period (origin moves only on delay)
  std::chrono::steady_clock::time_point intended;
  std::chrono::steady_clock::time_point woke;  // when next() resumed its caller
  std::chrono::nanoseconds lateness{0};        // woke - intended, >= 0
  std::uint64_t skipped = 0;                   // ticks dropped just before this one (skip)
};

class Pacer {
 public:
  using Clock = std::chrono::steady_clock;

  // The first tick is due one period after origin (by default, now).
  template <class Rep, class Ratio>
  explicit Pacer(std::chrono::duration<Rep, Ratio> period, MissedTick policy = MissedTick::burst,
                 Precision precision = Precision::kernel, Clock::time_point origin = Clock::now())
      : period_(detail::checked_ns(period, "Pacer")),
        origin_(origin),
        policy_(policy),
        precision_(precision) {
    if (period_ <= std::chrono::nanoseconds::zero())
      throw std::invalid_argument("Pacer: the period must be positive");
    // A period that saturated (+inf, hours::max()) has no tick after the first to compute.
    if (period_.count() == detail::kMaxDeadlineNs)
      throw std::invalid_argument("Pacer: the period must be finite and below ~292 years");
  }
  Pacer(const Pacer&) = delete;
  Pacer& operator=(const Pacer&) = delete;
  Pacer(Pacer&&) noexcept = default;
  Pacer& operator=(Pacer&&) noexcept = default;

  // Waits for the next tick and returns it. A tick that is due already still yields once to
  // the loop, so a pacer that has fallen behind (burst) cannot starve the other tasks. The
  // pacer must outlive the returned Coro. Cancelling the wait consumes no tick.
  Coro<Tick> next() {
    Tick tick;
    tick.index = next_index_;
    tick.intended = intended_of(tick.index);
    if (Clock::now() < tick.intended) {
      if (precision_ == Precision::spin)
        co_await sleep_until_precise(tick.intended);
      else
        co_await sleep_until(tick.intended);
    } else {
      co_await sleep(std::chrono::nanoseconds::zero());
    }
    tick.woke = Clock::now();
    tick.lateness = tick.woke - tick.intended;
    tick.skipped = pending_skipped_;
    pending_skipped_ = 0;
    advance_past(tick);
    co_return tick;
  }

  std::chrono::nanoseconds period() const noexcept { return period_; }
  MissedTick policy() const noexcept { return policy_; }
  // When tick k is due, for k not yet delivered (delay moves it when a tick is missed).
  Clock::time_point intended_of(std::uint64_t index) const noexcept {
    return origin_ + period_ * static_cast<std::int64_t>(index);
  }
  std::uint64_t next_index() const noexcept { return next_index_; }

 private:
  void advance_past(const Tick& tick) noexcept {
    next_index_ = tick.index + 1;
    if (tick.woke < intended_of(next_index_)) return;  // on time, or only jitter
    switch (policy_) {
      case MissedTick::burst:
        return;
      case MissedTick::skip: {
        // The first point of the grid after now; the ones in between are dropped.
        auto behind = (tick.woke - origin_) / period_;  // whole periods since origin
        std::uint64_t first_future = static_cast<std::uint64_t>(behind) + 1;
        pending_skipped_ = first_future - next_index_;
        next_index_ = first_future;
        return;
      }
      case MissedTick::delay:
        origin_ = tick.woke + period_ - period_ * static_cast<std::int64_t>(next_index_);
        return;
    }
  }

  std::chrono::nanoseconds period_;
  Clock::time_point origin_;
  std::uint64_t next_index_ = 1;
  std::uint64_t pending_skipped_ = 0;
  MissedTick policy_;
  Precision precision_;
};

}  // namespace ringloop
