// The acquire awaiter of a resource handed from waiter to waiter: Lock (the lock) and
// Semaphore (a permit). The owner provides try_take() (take it now if it is free and nobody
// waits), pass_on() (give it to the first waiter, or back), binding_, waiters_ and kAcquireName.
// A waiter handed the resource and cancelled before it runs passes it on: nothing is lost.
#pragma once

#include <coroutine>

#include <ringloop/coro/detail/waiter.hpp>

namespace ringloop::detail {

template <class Owner>
class [[nodiscard]] AcquireAwaiter : Waiter {
 public:
  explicit AcquireAwaiter(Owner& owner) noexcept : Waiter(&on_cancel), owner_(owner) {}

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

  void await_resume() { finish(); }

 protected:
  Owner& owner_;

 private:
  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<AcquireAwaiter&>(static_cast<Waiter&>(point));
    if (self.state_ == State::queued) {
      self.withdraw();
    } else if (self.state_ == State::granted) {
      // Handed the resource but not yet resumed: it goes on as if this waiter had released it.
      self.state_ = State::cancelled;
      self.owner_.pass_on();
    }
    return true;
  }
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
