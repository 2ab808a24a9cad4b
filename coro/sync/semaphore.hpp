// Semaphore and BoundedSemaphore: asyncio's (3.11.1+, gh-90155), fair (first come, first
// served). release() hands its permit straight to the first waiter (asyncio's _wake_up_next
// takes the permit for the waiter it wakes). A waiter handed a permit counts as waiting until it
// resumes, as asyncio keeps its future in _waiters until then: locked() reads true and a later
// acquire queues behind it, even when further release() calls raised the value meanwhile; the
// woken waiter hands such a permit on as it resumes. If its task was cancelled before it ran
// (and uncancel() did not take that back), its permit goes on to the next waiter, or back to
// the count. A BoundedSemaphore refuses a release that would raise its value above the initial
// one. Invariant: a free permit and a queued waiter coexist only while a handed permit's waiter
// has not resumed (it passes the free permit on then).
//
//   auto guard = co_await semaphore.scoped();   // asyncio's `async with semaphore:`
#pragma once
#include <ringloop/loop/detail/config.hpp>

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

  // True when an acquire would wait: no permit, or someone waits (asyncio 3.11.1+'s locked(),
  // which counts a woken waiter that has not resumed yet).
  bool locked() const noexcept { return value_ == 0 || !waiters_.empty() || handed_ > 0; }
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
    if (locked()) return false;
    --value_;
    return true;
  }
  // A permit is back: to the first waiter, or to the count.
  void pass_on() noexcept {
    ++value_;
    wake_next();
  }
  // asyncio's _wake_up_next: a free permit goes to the first waiter, who holds it from now on.
  void wake_next() noexcept {
    if (value_ > 0 && detail::Waiter::grant_first(waiters_)) {
      --value_;
      ++handed_;
    }
  }
  // The waiter handed a permit resumes with it; a permit released meanwhile goes on (asyncio's
  // `if self._value > 0: self._wake_up_next()` at the end of acquire).
  void handed_kept() noexcept {
    RINGLOOP_ASSERT(handed_ > 0, "a Semaphore waiter resumed with a permit nobody handed it");
    --handed_;
    wake_next();
  }
  // Its task was cancelled before it resumed: the permit goes on, or back.
  void handed_refused() noexcept {
    RINGLOOP_ASSERT(handed_ > 0, "a Semaphore waiter gave back a permit nobody handed it");
    --handed_;
    pass_on();
  }

  detail::LoopBinding binding_;
  detail::WaitList waiters_;
  std::size_t handed_ = 0;  // permits handed to waiters that have not resumed yet
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
