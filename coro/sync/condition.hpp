// Condition: asyncio.Condition, a condition variable built on a Lock (its own, or one given).
// wait() releases the lock, waits for notify(), and returns owning the lock again, on every
// path: cancelled while waiting, it still re-acquires the lock before it throws CancelledError,
// as asyncio's wait() does in its `finally`. notify(n) moves up to n waiters, first come first
// served, straight into the lock's queue (they resume when the lock reaches them; no wake-up
// that would only find the lock taken). A notified waiter cancelled before it resumes passes
// its notification on to the next waiter, so a notify is not lost (cpython gh-112202); one
// cancelled once it was handed the lock leaves the cancel pending, so uncancel() can still take
// it back (waiter.hpp), and passes the notification on only if it is still pending at resume.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cstddef>
#include <type_traits>

#include <ringloop/coro/sync/lock.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

class Condition {
 public:
  class [[nodiscard]] WaitAwaiter;

  Condition() noexcept : lock_(&own_lock_) {}
  // Shares `lock` (asyncio's Condition(lock)): it must outlive the condition.
  explicit Condition(Lock& lock) noexcept : lock_(&lock) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;
  ~Condition() {
    RINGLOOP_ASSERT(waiters_.empty(),
                    "a Condition was destroyed while coroutines wait on it; keep it alive until "
                    "they have finished (notify them, or cancel and await them)");
  }

  // The underlying lock's interface, as asyncio's Condition offers it.
  bool locked() const noexcept { return lock_->locked(); }
  Lock::AcquireAwaiter acquire() noexcept { return lock_->acquire(); }
  Lock::ScopedAwaiter scoped() noexcept { return lock_->scoped(); }
  void release() { lock_->release(); }

  // co_await condition.wait(): the lock must be held; returns holding it, after a notify.
  WaitAwaiter wait() noexcept;

  // Waits until predicate() is true (checked first, then after each wake-up, with the lock
  // held); returns its last result.
  template <class Predicate>
  Coro<std::decay_t<std::invoke_result_t<Predicate&>>> wait_for(Predicate predicate);

  // Wakes up to n waiters; the lock must be held (asyncio's RuntimeError otherwise).
  void notify(std::size_t n = 1) {
    binding_.check("Condition.notify");
    if (!locked()) throw std::logic_error("Condition.notify(): the lock is not acquired");
    move_to_lock(n);
  }
  void notify_all() { notify(waiters_.size()); }

 private:
  void move_to_lock(std::size_t n) noexcept;

  Lock own_lock_;
  Lock* lock_;
  detail::LoopBinding binding_;
  detail::WaitList waiters_;  // waiting for a notify; once notified they wait in the lock's list
};

class [[nodiscard]] Condition::WaitAwaiter : detail::Waiter {
 public:
  explicit WaitAwaiter(Condition& condition) noexcept : Waiter(&on_cancel), condition_(condition) {}

  using Waiter::await_ready;

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    Lock& lock = *condition_.lock_;
    if (!lock.locked())
      throw std::logic_error("Condition.wait(): the lock is not acquired; acquire it first");
    if (!start(awaiting, condition_.binding_, "Condition.wait")) return false;  // keeps the lock
    lock.binding_.bind(*loop_, "Condition.wait");  // this waiter will queue on the lock too
    lock.pass_on();
    enqueue(condition_.waiters_);
    return true;
  }

  // Owns the lock here, whatever happened.
  void await_resume() {
    if (!cancelled_ && refuse_grant_if_cancelled()) {
      cancelled_ = true;  // keeps the lock (the wait returns holding it) and throws
      if (notified_) condition_.move_to_lock(1);
    }
    finish();
    if (cancelled_) throw detail::cancelled_error(task_);
  }

 private:
  friend class Condition;

  // Notified: wait for the lock, which is held (by the notifier, or the next in its queue).
  void notified() noexcept {
    notified_ = true;
    enqueue(condition_.lock_->waiters_);
  }

  static bool on_cancel(detail::CancelPoint& point) noexcept {
    auto& self = static_cast<WaitAwaiter&>(static_cast<Waiter&>(point));
    if (self.cancelled_) return true;
    if (self.state_ == State::granted) return false;  // holds the lock: pending (waiter.hpp)
    self.cancelled_ = true;
    if (self.state_ == State::queued && self.list_ == &self.condition_.waiters_) {
      // Still waiting for a notify: stop, but take the lock back before throwing.
      self.condition_.waiters_.erase(self);
      Lock& lock = *self.condition_.lock_;
      if (lock.try_take())
        self.wake(State::granted);
      else
        self.enqueue(lock.waiters_);
    } else if (self.notified_) {
      // Will throw rather than act on its notification: another waiter gets it.
      self.condition_.move_to_lock(1);
    }
    return true;  // the wait goes on until the lock is held; await_resume then throws
  }

  Condition& condition_;
  bool notified_ = false;
  bool cancelled_ = false;
};

inline Condition::WaitAwaiter Condition::wait() noexcept { return WaitAwaiter(*this); }

// Defined once WaitAwaiter is complete (clang checks the non-dependent co_await wait() early).
template <class Predicate>
Coro<std::decay_t<std::invoke_result_t<Predicate&>>> Condition::wait_for(Predicate predicate) {
  auto result = predicate();
  while (!result) {
    co_await wait();
    result = predicate();
  }
  co_return result;
}

inline void Condition::move_to_lock(std::size_t n) noexcept {
  RINGLOOP_ASSERT(n == 0 || waiters_.empty() || lock_->locked(),
                  "notified waiters would queue on an unlocked lock");
  for (; n > 0 && !waiters_.empty(); --n)
    static_cast<WaitAwaiter&>(waiters_.pop_front()).notified();
}

}  // namespace ringloop
