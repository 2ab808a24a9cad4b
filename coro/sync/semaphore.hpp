// Semaphore and BoundedSemaphore: asyncio's, fair (first come, first served). release() hands
// its permit straight to the first waiter (asyncio 3.12 does too: _wake_up_next takes the permit
// for the waiter it wakes), so no acquire can take it out of turn; if that waiter's task is
// cancelled before it runs, the permit goes on to the next waiter or back to the count. A
// BoundedSemaphore refuses a release that would raise its value above the initial one.
// Invariant: while anyone waits, the value is 0.
//
//   auto guard = co_await semaphore.scoped();   // asyncio's `async with semaphore:`
#pragma once

#include <concepts>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

#include <ringloop/coro/detail/acquire_awaiter.hpp>
#include <ringloop/coro/detail/release_guard.hpp>
#include <ringloop/coro/detail/waiter.hpp>

namespace ringloop {
namespace detail {
// A negative initial value is refused (asyncio's ValueError) rather than turned into SIZE_MAX
// permits by the conversion to std::size_t.
template <std::signed_integral I>
std::size_t initial_permits(I value, const char* type) {
  if (value < 0)
    throw std::invalid_argument(std::string(type) + ": the initial value must be >= 0, not " +
                                std::to_string(value));
  return static_cast<std::size_t>(value);
}
}  // namespace detail

class Semaphore {
 public:
  using AcquireAwaiter = detail::AcquireAwaiter<Semaphore>;
  using ScopedAwaiter = detail::ScopedAcquireAwaiter<Semaphore>;
  using Guard = detail::ReleaseGuard<Semaphore>;

  explicit Semaphore(std::size_t value = 1) noexcept
      : Semaphore(value, std::numeric_limits<std::size_t>::max()) {}
  // Semaphore(-1) throws std::invalid_argument (asyncio's ValueError).
  template <std::signed_integral I>
  explicit Semaphore(I value) : Semaphore(detail::initial_permits(value, "Semaphore")) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  ~Semaphore() {
    RINGLOOP_ASSERT(waiters_.empty(),
                    "a Semaphore was destroyed while coroutines wait to acquire it; keep it "
                    "alive until they have finished (or cancel and await them)");
  }

  // True when an acquire would wait.
  bool locked() const noexcept { return value_ == 0; }
  // The permits left (asyncio keeps it private as _value; useful in tests and for metrics).
  std::size_t value() const noexcept { return value_; }

  AcquireAwaiter acquire() noexcept;
  ScopedAwaiter scoped() noexcept;

  // Gives a permit back: to the first waiter, or to the count.
  void release() {
    binding_.check("Semaphore.release");
    if (value_ >= bound_)
      throw std::logic_error(
          "BoundedSemaphore.release(): released more times than it was acquired (its value "
          "would exceed its initial value, " +
          std::to_string(bound_) + ")");
    pass_on();
  }

 protected:
  Semaphore(std::size_t value, std::size_t bound) noexcept : value_(value), bound_(bound) {}

 private:
  friend class detail::AcquireAwaiter<Semaphore>;
  static constexpr const char* kAcquireName = "Semaphore.acquire";

  bool try_take() noexcept {
    if (value_ == 0) return false;
    RINGLOOP_ASSERT(waiters_.empty(), "a Semaphore has permits while coroutines wait for one");
    --value_;
    return true;
  }
  void pass_on() noexcept {
    if (!detail::Waiter::grant_first(waiters_)) ++value_;
  }

  detail::LoopBinding binding_;
  detail::WaitList waiters_;
  std::size_t value_;
  std::size_t bound_;  // the most value_ may be: the initial value for a BoundedSemaphore
};

// A Semaphore whose release() throws std::logic_error rather than go above the initial value
// (asyncio's ValueError): a release without its acquire is a bug worth hearing about.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(std::size_t value = 1) noexcept : Semaphore(value, value) {}
  // BoundedSemaphore(-1) throws std::invalid_argument (asyncio's ValueError).
  template <std::signed_integral I>
  explicit BoundedSemaphore(I value)
      : BoundedSemaphore(detail::initial_permits(value, "BoundedSemaphore")) {}
};

inline Semaphore::AcquireAwaiter Semaphore::acquire() noexcept { return AcquireAwaiter(*this); }
inline Semaphore::ScopedAwaiter Semaphore::scoped() noexcept { return ScopedAwaiter(*this); }

}  // namespace ringloop
