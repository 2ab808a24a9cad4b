// Lock: asyncio.Lock, a mutual-exclusion lock for coroutines, fair (first come, first served).
// release() hands the lock straight to the first waiter, which is scheduled to resume owning
// it; the lock stays locked in between, so nobody can take it out of turn. If that waiter's
// task is cancelled before it runs (and uncancel() did not take the cancel back), the lock goes
// on to the next waiter (or is unlocked) when it resumes, and the cancelled acquire throws
// CancelledError without owning it. Invariant: while anyone waits, the lock is locked.
//
//   auto guard = co_await lock.scoped();   // asyncio's `async with lock:`
//   co_await lock.acquire(); ... lock.release();
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <ringloop/coro/detail/acquire_awaiter.hpp>
#include <ringloop/coro/detail/release_guard.hpp>
#include <ringloop/coro/detail/waiter.hpp>

namespace ringloop {

class Condition;

class Lock {
 public:
  using AcquireAwaiter = detail::AcquireAwaiter<Lock>;
  using ScopedAwaiter = detail::ScopedAcquireAwaiter<Lock>;
  using Guard = detail::ReleaseGuard<Lock>;

  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  ~Lock() {
    RINGLOOP_ASSERT(waiters_.empty(),
                    "a Lock was destroyed while coroutines wait to acquire it; keep it alive "
                    "until they have finished (or cancel and await them)");
  }

  bool locked() const noexcept { return locked_; }

  // co_await lock.acquire(): returns owning the lock.
  AcquireAwaiter acquire() noexcept;
  // co_await lock.scoped(): returns a Guard that owns the lock and releases it when it goes.
  ScopedAwaiter scoped() noexcept;

  // Unlocks, or hands the lock to the first waiter. Releasing an unlocked lock is an error
  // (asyncio's RuntimeError); any coroutine may release, as in asyncio.
  void release() {
    binding_.check("Lock.release");
    if (!locked_) throw std::logic_error("Lock.release(): the lock is not acquired");
    pass_on();
  }

 private:
  friend class Condition;
  friend class detail::AcquireAwaiter<Lock>;
  static constexpr const char* kAcquireName = "Lock.acquire";

  bool try_take() noexcept {
    if (locked_) return false;
    RINGLOOP_ASSERT(waiters_.empty(), "a Lock is unlocked while coroutines wait for it");
    locked_ = true;
    return true;
  }
  // The owner lets go: the first waiter owns the lock from now on, or nobody does.
  void pass_on() noexcept {
    if (!detail::Waiter::grant_first(waiters_)) locked_ = false;
  }
  void handed_kept() noexcept {}
  void handed_refused() noexcept { pass_on(); }

  detail::LoopBinding binding_;
  detail::WaitList waiters_;
  bool locked_ = false;
};

inline Lock::AcquireAwaiter Lock::acquire() noexcept { return AcquireAwaiter(*this); }
inline Lock::ScopedAwaiter Lock::scoped() noexcept { return ScopedAwaiter(*this); }

}  // namespace ringloop
