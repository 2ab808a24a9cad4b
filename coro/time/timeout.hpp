// timeout(delay, body) and timeout_at(when, body): asyncio.timeout() (Python 3.11), a deadline
// around a block of awaits rather than around one awaitable.
//
// The block runs in the awaiting task itself, not in a child task: when the deadline passes,
// that task is cancelled, and the CancelledError that ends the block becomes TimeoutError as
// it leaves the scope. A cancel that came from elsewhere stays a CancelledError: the scope
// counts the task's cancel requests (asyncio's cancelling()/uncancel()), so it only claims the
// one it made. The deadline is one IORING_OP_TIMEOUT with an absolute time; it can be moved
// while the block runs (Timeout::reschedule). When the block ends first, the timer is let go
// and the block's caller goes on at once: the timer's record (DetachableTimer) ends in user
// space if it has no SQE yet, else by TIMEOUT_REMOVE, and frees itself at that CQE. Moving the
// deadline later while its timer is in the kernel costs nothing then: the timer fires at the
// old time and arms the rest (an idle timeout pushed back at each message is one timer per idle
// period, not an SQE per message); moving it earlier lets the old timer go and arms a new one.
//
//   Timeout scope(2s);
//   auto value = co_await scope.run(fetch(scope));   // fetch may call scope.reschedule(...)
//   auto same  = co_await timeout(2s, fetch_plain());
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include <ringloop/coro/detail/current_task.hpp>
#include <ringloop/coro/detail/deadline.hpp>
#include <ringloop/coro/detail/detachable_timer.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

class Timeout {
 public:
  using Clock = std::chrono::steady_clock;

  // No deadline yet (asyncio.timeout(None)): reschedule() can set one from inside the block.
  Timeout() noexcept = default;
  // A negative delay is kept as a deadline in the past (when() says so, as asyncio's); +inf
  // means no deadline in practice; NaN is refused with std::invalid_argument.
  template <class Rep, class Period>
  explicit Timeout(std::chrono::duration<Rep, Period> delay) : Timeout() {
    deadline_ = detail::signed_deadline_after(delay, "Timeout");
  }
  template <class Duration>
  explicit Timeout(std::chrono::time_point<Clock, Duration> when) : Timeout() {
    deadline_ = detail::signed_deadline_at(when, "Timeout");
  }
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;
  ~Timeout() { release_timer(); }

  // The deadline, or nothing when there is none.
  std::optional<Clock::time_point> when() const noexcept {
    if (!deadline_) return std::nullopt;
    return Clock::time_point(std::chrono::nanoseconds(*deadline_));
  }

  // Moves the deadline (nullopt removes it), from inside the block. Refused (std::logic_error,
  // as asyncio's RuntimeError) before the block is entered and once the deadline has passed.
  void reschedule(std::optional<Clock::time_point> when) {
    if (state_ == State::created)
      throw std::logic_error(
          "Timeout::reschedule: the Timeout has not been entered; reschedule it from inside "
          "the block it runs, or give the deadline to its constructor");
    if (state_ == State::expiring || state_ == State::expired)
      throw std::logic_error("Timeout::reschedule: the deadline has passed already");
    if (state_ == State::exited)
      throw std::logic_error("Timeout::reschedule: the block has ended already");
    std::optional<std::int64_t> deadline;
    if (when) deadline = detail::signed_deadline_at(*when, "Timeout::reschedule");
    // A deadline that moves later (an idle timeout pushed back at every message) leaves the
    // timer in the kernel as it is: when it fires, on_expiry arms the rest. So moving it costs
    // no SQE and no CQE; a deadline that moves earlier, or goes, lets the timer go.
    if (timer_ != nullptr && deadline && *deadline >= armed_deadline_) {
      deadline_ = deadline;
      return;
    }
    // The new timer's record is made before the old timer goes: with no memory for it,
    // reschedule throws bad_alloc and the scope keeps its deadline and its timer as they were.
    bool due = deadline && *deadline <= detail::now_ns();
    detail::DetachableTimer* fresh = deadline && !due ? &detail::DetachableTimer::make() : nullptr;
    deadline_ = deadline;
    release_timer();
    if (fresh != nullptr)
      arm(*fresh, *deadline_);
    else if (due)
      expire_now();
  }
  template <class Rep, class Period>
  void reschedule_after(std::chrono::duration<Rep, Period> delay) {
    std::int64_t deadline = detail::signed_deadline_after(delay, "Timeout::reschedule_after");
    reschedule(Clock::time_point(std::chrono::nanoseconds(deadline)));
  }

  // True once the deadline passed while the block ran (whether or not the block then ended
  // with TimeoutError: a block that swallows the cancel ends normally).
  bool expired() const noexcept { return state_ == State::expiring || state_ == State::expired; }

  // Runs body in the awaiting task under this deadline. A Timeout runs one block.
  template <class T>
  Coro<T> run(Coro<T> body);

 private:
  enum class State : std::uint8_t { created, entered, expiring, expired, exited };

  void enter(detail::TaskCore& task) {
    if (state_ != State::created)
      throw std::logic_error("Timeout::run: a Timeout scope can only be used once");
    task_ = &task;
    cancelling_at_entry_ = task.cancel_requests;
    state_ = State::entered;
    if (deadline_) arm_or_expire();
  }

  // A deadline already due expires now, as asyncio's reschedule() does with
  // call_soon(_on_timeout): the cancel is pending before the block's next step, so its first
  // await (even sleep(0)) raises. A timer would come too late: the loop runs the due timers after
  // the steps already queued, and sleep(0) would return first.
  void arm_or_expire() {
    if (*deadline_ > detail::now_ns())
      arm(detail::DetachableTimer::make(), *deadline_);  // bad_alloc: nothing changed
    else
      expire_now();
  }
  void expire_now() noexcept {
    state_ = State::expiring;
    expired_at_once_ = true;
    task_->cancel();
  }

  // Arms timer (the scope's from now on, idle: fresh, or the one that just fired) for deadline.
  void arm(detail::DetachableTimer& timer, std::int64_t deadline) {
    armed_deadline_ = deadline;
    timer_ = &timer;
    timer.arm(*task_->loop, detail::kernel_deadline(deadline), &on_expiry, this);
  }

  void release_timer() noexcept {
    if (timer_ != nullptr) std::exchange(timer_, nullptr)->release();
  }

  // Ends the scope: true when the block's CancelledError is the scope's own and must leave it
  // as TimeoutError.
  bool exit(const std::exception_ptr& error) noexcept {
    bool timed_out = false;
    if (state_ == State::expiring) {
      // An expiry at once that no await delivered is asyncio's call_soon handle that __aexit__
      // cancels before it ran: the block did not time out.
      bool undelivered = expired_at_once_ && task_->must_cancel && error == nullptr;
      state_ = undelivered ? State::exited : State::expired;
      timed_out = task_->uncancel() <= cancelling_at_entry_ && error != nullptr &&
                  detail::is_cancelled_error(error);
    }
    if (state_ != State::expired) state_ = State::exited;
    return timed_out;
  }

  // The timer fired (result -ETIME), or the kernel refused it (a negative errno), while the
  // block runs: a timer let go (release_timer) calls nothing.
  static void on_expiry(void* owner, std::int32_t result) noexcept {
    auto& self = *static_cast<Timeout*>(owner);
    if (result == -ETIME && self.deadline_ && *self.deadline_ > detail::now_ns()) {
      // The deadline moved later while this timer was in the kernel (reschedule left it
      // there): not due yet. The same record, idle now, is armed for the rest. Only the
      // virtual clock allocates to arm a timer (its map node); with no memory for that, the
      // deadline cannot be kept, and the block ends as with a timer the kernel refused.
      try {
        self.arm(*self.timer_, *self.deadline_);
        return;
      } catch (const std::bad_alloc&) {
        result = -ENOMEM;
      }
    }
    if (result != -ETIME) self.timer_error_ = result;
    self.state_ = State::expiring;
    self.task_->cancel();
  }

  detail::DetachableTimer* timer_ = nullptr;  // held while armed for the block
  detail::TaskCore* task_ = nullptr;
  std::optional<std::int64_t> deadline_;  // may be in the past, or negative (virtual time)
  std::int64_t armed_deadline_ = 0;       // the deadline the timer held was armed for
  std::int32_t timer_error_ = 0;          // the kernel's refusal (or ENOMEM): the block ends
  std::uint32_t cancelling_at_entry_ = 0;
  State state_ = State::created;
  bool expired_at_once_ = false;  // the deadline was due when set: no timer, a cancel at once
};

template <class T>
Coro<T> Timeout::run(Coro<T> body) {
  detail::TaskCore& task = co_await detail::current_task("timeout");
  enter(task);
  std::exception_ptr error;
  std::optional<detail::ResultOf<T>> result;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(body);
      result.emplace();
    } else {
      result.emplace(co_await std::move(body));
    }
  } catch (...) {
    error = std::current_exception();
  }
  release_timer();  // the caller goes on now; the record waits for its CQE alone
  bool timed_out = exit(error);
  if (timer_error_ != 0)
    throw std::system_error(-timer_error_, std::system_category(),
                            timer_error_ == -ENOMEM ? "timeout: no memory for its timer"
                                                    : "timeout: IORING_OP_TIMEOUT failed");
  if (timed_out) throw TimeoutError("timeout: the deadline passed before the block finished");
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<T>) co_return std::move(*result);
}

// asyncio.timeout(delay): runs body with a deadline delay from now.
template <class T, class Rep, class Period>
Coro<T> timeout(std::chrono::duration<Rep, Period> delay, Coro<T> body) {
  Timeout scope(delay);
  co_return co_await scope.run(std::move(body));
}

// asyncio.timeout_at(when): runs body with an absolute deadline on the monotonic clock.
template <class T, class Duration>
Coro<T> timeout_at(std::chrono::time_point<std::chrono::steady_clock, Duration> when,
                   Coro<T> body) {
  Timeout scope(when);
  co_return co_await scope.run(std::move(body));
}

}  // namespace ringloop
