// sleep(duration) and sleep_until(time_point): one IORING_OP_TIMEOUT SQE each, with an absolute
// deadline on the monotonic clock taken when sleep() is called, so time spent waiting for CQ
// room or for the loop's next step is not added on top. sleep(0) (or less) yields to the other
// ready coroutines without an SQE. A sleep never returns before its deadline. sleep() returns
// its awaiter: no frame, no allocation. A NaN duration is refused (std::invalid_argument, as
// asyncio 3.13's ValueError); +inf, or any duration past int64 nanoseconds, sleeps for ever.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <system_error>

#include <ringloop/coro/detail/deadline.hpp>
#include <ringloop/coro/detail/promise.hpp>

namespace ringloop {
namespace detail {

// The timespec the kernel reads lives here, in the awaiter, in the sleeping coroutine's frame,
// which is not destroyed before the timeout's CQE (liburing #603, asio #1284).
class [[nodiscard]] SleepAwaiter : CancelPoint, Operation {
 public:
  struct YieldOnly {};
  explicit SleepAwaiter(std::int64_t due_ns) noexcept
      : CancelPoint(&on_cancel),
        Operation(&prepare, &complete, /*is_timeout_op=*/true),
        timespec_(to_timespec(due_ns)) {
    Operation::deadline_ns = due_ns;  // lets the loop end it in place once it is due
  }
  explicit SleepAwaiter(YieldOnly) noexcept : SleepAwaiter(0) { yield_only_ = true; }
  // Movable until it is awaited, so that create_task, gather and wait_for can take a sleep (moved
  // into the Coro that awaits it); a sleep whose SQE may be in flight never moves.
  SleepAwaiter(SleepAwaiter&& other) noexcept : SleepAwaiter(other.Operation::deadline_ns) {
    RINGLOOP_ASSERT(!other.awaiting_ && other.state == OpState::idle,
                    "a sleep was moved after it was awaited");
    yield_only_ = other.yield_only_;
  }
  SleepAwaiter& operator=(SleepAwaiter&&) = delete;

  bool await_ready() const noexcept { return false; }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    task_ = task_of(awaiting);
    // asyncio: a task with a cancel pending cancels what it awaits at once; here nothing is
    // submitted and await_resume throws.
    if (task_ != nullptr && task_->must_cancel) return false;
    loop_ = &loop_for(task_, "sleep");
    if (yield_only_) {
      loop_->schedule(awaiting);  // sleep(0) takes no cancel: a cancel lands at resume
      return true;
    }
    awaiting_ = awaiting;
    loop_->submit(*this);
    if (task_ != nullptr) task_->suspend_on(*this);
    return true;
  }

  void await_resume() {
    if (task_ != nullptr) task_->resumed();
    if (cancel_taken_) throw detail::cancelled_error(task_);
    // -ETIME is a timeout's success; -ECANCELED without a cancel of ours means the loop is
    // being torn down around the sleeper.
    if (result_ == -ETIME || result_ == 0) return;
    if (result_ == -ECANCELED) throw detail::cancelled_error(task_);
    throw std::system_error(-result_, std::system_category(), "sleep: IORING_OP_TIMEOUT failed");
  }

 private:
  static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
    auto& self = static_cast<SleepAwaiter&>(operation);
    io_uring_prep_timeout(&sqe, &self.timespec_, 0, IORING_TIMEOUT_ABS);
  }
  static void complete(Operation& operation, std::int32_t result, std::uint32_t) noexcept {
    auto& self = static_cast<SleepAwaiter&>(operation);
    self.result_ = result;
    self.loop_->schedule(self.awaiting_);
  }
  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<SleepAwaiter&>(point);
    if (self.state == OpState::idle) return false;  // fired: its resume is scheduled already
    self.cancel_taken_ = true;
    self.loop_->cancel(self);
    return true;
  }

  __kernel_timespec timespec_;
  Loop* loop_ = nullptr;
  TaskCore* task_ = nullptr;
  std::coroutine_handle<> awaiting_;
  std::int32_t result_ = 0;
  bool cancel_taken_ = false;
  bool yield_only_ = false;
};

}  // namespace detail

// Suspends for at least `duration` (asyncio.sleep). Zero or negative: yields once.
template <class Rep, class Period>
detail::SleepAwaiter sleep(std::chrono::duration<Rep, Period> duration) {
  if (detail::checked_ns(duration, "sleep") <= 0)
    return detail::SleepAwaiter(detail::SleepAwaiter::YieldOnly{});
  return detail::SleepAwaiter(detail::deadline_after(duration, "sleep"));
}

// Suspends until the monotonic clock reaches `deadline` (IORING_TIMEOUT_ABS).
template <class Duration>
detail::SleepAwaiter sleep_until(
    std::chrono::time_point<std::chrono::steady_clock, Duration> deadline) {
  return detail::SleepAwaiter(detail::deadline_at(deadline, "sleep_until"));
}

}  // namespace ringloop
