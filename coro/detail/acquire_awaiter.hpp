// The acquire awaiter of a resource handed from waiter to waiter: Lock (the lock) and
// Semaphore (a permit). The owner provides try_take() (take it now if it is free and nobody
// waits), handed_kept() and handed_refused() (a waiter handed the resource by a wake-up resumes
// and keeps it, or gives it back because its task was cancelled in between), binding_, waiters_
// and kAcquireName. A refused resource goes on to the next waiter: nothing is lost.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>

#include <ringloop/coro/detail/waiter.hpp>

namespace ringloop::detail {

template <class Owner>
class [[nodiscard]] AcquireAwaiter : Waiter {
 public:
  explicit AcquireAwaiter(Owner& owner) noexcept : Waiter(&cancel_unless_granted), owner_(owner) {}

  using Waiter::await_ready;

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    if (!start(awaiting, owner_.binding_, Owner::kAcquireName)) return false;
    if (owner_.try_take()) {
      state_ = State::granted;
      return false;
    }
    enqueue(owner_.waiters_);
    return true;
  }

  void await_resume() {
    if (refuse_grant_if_cancelled())
      owner_.handed_refused();  // goes on as if this waiter had released it
    else if (state_ == State::granted && was_queued())
      owner_.handed_kept();
    finish();
  }

 protected:
  Owner& owner_;
};

// co_await owner.scoped(): the same, returning a guard that releases when it goes.
template <class Owner>
class [[nodiscard]] ScopedAcquireAwaiter : public AcquireAwaiter<Owner> {
 public:
  using AcquireAwaiter<Owner>::AcquireAwaiter;
  typename Owner::Guard await_resume() {
    AcquireAwaiter<Owner>::await_resume();
    return typename Owner::Guard(this->owner_);
  }
};

}  // namespace ringloop::detail
