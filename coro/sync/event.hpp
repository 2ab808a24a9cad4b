// Event: asyncio.Event. A flag that coroutines wait for: set() wakes every waiter (on the loop's
// next step, never inline) and lets later waits through until clear(). A waiter cancelled after
// set() chose it still throws CancelledError, as in asyncio, unless uncancel() took the cancel
// back before it resumed (then it returns normally, Python 3.13's rule); an event is not
// consumed, so nothing needs to go on to another waiter.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <ringloop/coro/detail/waiter.hpp>

namespace ringloop {

namespace detail {
template <class T, class Buffer>
class BasicQueue;
}

class Event {
 public:
  class [[nodiscard]] WaitAwaiter;

  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() {
    RINGLOOP_ASSERT(waiters_.empty(),
                    "an Event was destroyed while coroutines wait on it; keep it alive until "
                    "its waiters have finished (set it, or cancel and await them)");
  }

  bool is_set() const noexcept { return set_; }

  // Wakes every waiter; later waits return at once until clear().
  void set() {
    binding_.check("Event.set");
    if (set_) return;
    set_ = true;
    detail::Waiter::grant_all(waiters_);
  }

  void clear() noexcept { set_ = false; }

  // co_await event.wait(): returns once the event is set.
  WaitAwaiter wait() noexcept;

 private:
  template <class T, class Buffer>
  friend class detail::BasicQueue;  // asserts, when a Queue goes, that nobody awaits its join()

  detail::LoopBinding binding_;
  detail::WaitList waiters_;
  bool set_ = false;
};

class [[nodiscard]] Event::WaitAwaiter : detail::Waiter {
 public:
  explicit WaitAwaiter(Event& event) noexcept : Waiter(&cancel_unless_granted), event_(event) {}

  using Waiter::await_ready;

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    if (!start(awaiting, event_.binding_, "Event.wait")) return false;
    if (event_.set_) {
      state_ = State::granted;
      return false;
    }
    enqueue(event_.waiters_);
    return true;
  }

  void await_resume() {
    refuse_grant_if_cancelled();  // nothing to give back: finish() throws
    finish();
  }

 private:
  Event& event_;
};

inline Event::WaitAwaiter Event::wait() noexcept { return WaitAwaiter(*this); }

}  // namespace ringloop
