// timeout(delay, body) and timeout_at(when, body): asyncio.timeout() (Python 3.11), a deadline
// around a block of awaits rather than around one awaitable.
//
// The block runs in the awaiting task itself, not in a child task: when the deadline passes,
// that task is cancelled, and the CancelledError that ends the block becomes TimeoutError as
// it leaves the scope. A cancel that came from elsewhere stays a CancelledError: the scope
// counts the task's cancel requests (asyncio's cancelling()/uncancel()), so it only claims the
// one it made. The deadline is one IORING_OP_TIMEOUT with an absolute time; it can be moved
// while the block runs (Timeout::reschedule), and it is removed, and its CQE awaited, when
// the block ends first. Moving it later while its timer is in the kernel costs nothing then:
// the timer fires at the old time and arms the rest (an idle timeout pushed back at each
// message is one timer per idle period, not an SQE per message).
//
//   Timeout scope(2s);
//   auto value = co_await scope.run(fetch(scope));   // fetch may call scope.reschedule(...)
//   auto same  = co_await timeout(2s, fetch_plain());
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include <ringloop/coro/detail/current_task.hpp>
#include <ringloop/coro/detail/deadline_timer.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

class Timeout {
 public:
  using Clock = std::chrono::steady_clock;

  // No deadline yet (asyncio.timeout(None)): reschedule() can set one from inside the block.
  Timeout() noexcept : timer_(&on_timer_cqe, this) {}
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
    deadline_.reset();
    if (when) deadline_ = detail::signed_deadline_at(*when, "Timeout::reschedule");
    if (timer_.armed()) {
      // A deadline that moves later (an idle timeout pushed back at every message) leaves the
      // timer in the kernel as it is: when it fires, on_timer_cqe arms the rest. So moving it
      // costs no SQE and no CQE; a deadline that moves earlier, or goes, is removed now.
      if (!rearm_on_cqe_ && deadline_ && *deadline_ >= armed_deadline_) return;
      rearm_on_cqe_ = true;  // the old timer's CQE arms the new one
      timer_.disarm();
    } else if (deadline_) {
      arm_or_expire();
    }
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
    if (*deadline_ > detail::now_ns()) {
      arm(*deadline_);
      return;
    }
    state_ = State::expiring;
    expired_at_once_ = true;
    task_->cancel();
  }

  void arm(std::int64_t deadline) {
    armed_deadline_ = deadline;
    timer_.arm(*task_->loop, detail::kernel_deadline(deadline));
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

  static void on_timer_cqe(detail::DeadlineTimer& timer, bool expired) noexcept {
    auto& self = timer.owner<Timeout>();
    if (self.state_ == State::entered) {
      if (self.rearm_on_cqe_) {
        self.rearm_on_cqe_ = false;
        // The old deadline may have passed while its removal was on its way: the new one counts.
        if (self.deadline_) {
          if (*self.deadline_ > detail::now_ns()) {
            self.arm(*self.deadline_);
            return;
          }
          expired = true;
        } else {
          expired = false;
        }
      } else if (expired && self.deadline_ && *self.deadline_ > detail::now_ns()) {
        // The deadline moved later while this timer was in the kernel (reschedule left it
        // there): not due yet. The rest is armed, unless the block has ended meanwhile.
        if (!self.settling_) {
          self.arm(*self.deadline_);
          return;
        }
        expired = false;
      }
      if (expired || timer.error() != 0) {
        self.state_ = State::expiring;
        self.task_->cancel();
      }
    }
    if (self.settling_) self.task_->loop->schedule(self.settling_);
  }

  // Waits for the timer's CQE after disarming it; not a cancel point (a cancel arriving
  // meanwhile is delivered at the task's next await).
  struct SettleTimer {
    Timeout& scope;
    bool await_ready() const noexcept { return !scope.timer_.armed(); }
    void await_suspend(std::coroutine_handle<> awaiting) noexcept {
      scope.rearm_on_cqe_ = false;
      scope.settling_ = awaiting;
      scope.timer_.disarm();
    }
    void await_resume() const noexcept { scope.settling_ = {}; }
  };

  detail::DeadlineTimer timer_;
  detail::TaskCore* task_ = nullptr;
  std::coroutine_handle<> settling_;
  std::optional<std::int64_t> deadline_;  // may be in the past, or negative (virtual time)
  std::int64_t armed_deadline_ = 0;       // the deadline the timer in flight was armed for
  std::uint32_t cancelling_at_entry_ = 0;
  State state_ = State::created;
  bool rearm_on_cqe_ = false;
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
  co_await SettleTimer{*this};
  bool timed_out = exit(error);
  if (timer_.error() != 0)
    throw std::system_error(-timer_.error(), std::system_category(),
                            "timeout: IORING_OP_TIMEOUT failed");
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
