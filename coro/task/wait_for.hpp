// wait_for(awaitable, timeout): the awaitable's result, or TimeoutError when the deadline
// passes first (asyncio.wait_for, with Python 3.12's rules).
//
// The inner work runs as a child task. A Coro child is started inline; if it finishes without
// suspending, no timer SQE is ever submitted. Otherwise one IORING_OP_TIMEOUT with an absolute
// deadline (taken when wait_for is called) races the child. When the timer fires, the child is
// cancelled and waited for; if it ends cancelled, wait_for throws TimeoutError, and if it
// swallowed the cancel and returned a value, the value wins. When the child finishes first, the
// timer is removed: in user space if the loop has not given it an SQE yet (Loop::submit makes
// timers' SQEs at its submit point, an iteration late), else by TIMEOUT_REMOVE, whose CQE is
// awaited: the awaiter, which holds the timespec, outlives both. Cancelling the awaiting task
// cancels the child and ends with CancelledError, never TimeoutError; the deadline stays armed
// while the child unwinds, and cancels it again if it passes first (3.12's wait_for is `async with
// timeout()`).
//
// A zero or negative timeout arms no timer and never starts a Coro (asyncio 3.12's wait_for,
// tasks.py: timeout <= 0 wraps it in a task, cancels it and waits, so its body never runs):
// a Task already done gives its result; otherwise the task is cancelled at once and waited for.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include <ringloop/coro/detail/await_in_coro.hpp>
#include <ringloop/coro/detail/deadline.hpp>
#include <ringloop/coro/task/task.hpp>

namespace ringloop {
namespace detail {

template <class T>
class [[nodiscard]] WaitForAwaiter : CancelPoint, TaskWaiter, Operation {
 public:
  // A deadline of nullopt: the timeout was zero or negative (expired before it started).
  WaitForAwaiter(Coro<T> coro, std::optional<std::int64_t> due_ns) noexcept
      : WaitForAwaiter(due_ns) {
    coro_ = std::move(coro);
  }
  WaitForAwaiter(Task<T> task, std::optional<std::int64_t> due_ns) noexcept
      : WaitForAwaiter(due_ns) {
    child_ = std::move(task);
  }

  bool await_ready() const {
    if (!coro_.valid() && !child_.valid()) throw std::logic_error("wait_for: empty Coro or Task");
    return child_.valid() && child_.done();
  }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    outer_ = task_of(awaiting);
    loop_ = &loop_for(outer_, "wait_for");
    awaiting_ = awaiting;
    if (expired_at_start_) {
      cancel_child_now();
    } else if (coro_.valid()) {
      if (!start_child_inline()) return false;  // finished without suspending: no timer
      loop_->submit(*this);
    } else {
      child_.core().add_waiter(*this);
      loop_->submit(*this);
    }
    if (outer_ != nullptr) {
      outer_->suspend_on(*this);
      if (outer_->must_cancel) {
        outer_->must_cancel = false;
        on_cancel(*this);
      }
    }
    return true;
  }

  ResultOf<T> await_resume() {
    if (outer_ != nullptr) outer_->resumed();
    TaskCore& child = child_.core();
    if (child.cancelled) {
      child.exception_retrieved = true;
      if (timed_out_ && !outer_cancel_taken_) throw TimeoutError("wait_for: the timeout expired");
      throw cancelled_error(outer_);
    }
    if (timer_error_ != 0)
      throw std::system_error(-timer_error_, std::system_category(),
                              "wait_for: IORING_OP_TIMEOUT failed");
    return take_task_result(child_);
  }

 private:
  explicit WaitForAwaiter(std::optional<std::int64_t> due_ns) noexcept
      : CancelPoint(&on_cancel),
        TaskWaiter(&on_child_done),
        Operation(&prepare, &complete, /*is_timeout_op=*/true),
        timespec_(to_timespec(due_ns.value_or(0))),
        expired_at_start_(!due_ns) {
    Operation::deadline_ns = due_ns.value_or(0);  // lets the loop end it once it is due
  }

  // A timeout that expired before wait_for began: the child (a Coro becomes a task that never
  // runs its body) is cancelled now, with no timer, and waited for.
  void cancel_child_now() {
    if (coro_.valid()) child_ = create_task(*loop_, std::move(coro_));
    child_.core().add_waiter(*this);
    timer_done_ = true;
    timed_out_ = true;
    child_.core().cancel();
  }

  // Runs the Coro as a task until it first suspends. Returns false when it finished already.
  bool start_child_inline() {
    auto root = coro_.release();
    if (root.promise().start != StartState::not_started) {
      coro_ = Coro<T>(root);
      throw std::logic_error("wait_for: this Coro has been awaited already; it runs only once");
    }
    root.promise().make_root(*loop_, root);
    child_ = Task<T>::adopt(root);
    child_.core().add_waiter(*this);
    inside_suspend_ = true;
    root.resume();
    inside_suspend_ = false;
    return !child_done_;
  }

  static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
    auto& self = static_cast<WaitForAwaiter&>(operation);
    io_uring_prep_timeout(&sqe, &self.timespec_, 0, IORING_TIMEOUT_ABS);
  }

  // The timer's CQE: -ETIME when it fired, -ECANCELED when it was removed.
  static void complete(Operation& operation, std::int32_t result, std::uint32_t) noexcept {
    auto& self = static_cast<WaitForAwaiter&>(operation);
    self.timer_done_ = true;
    if (result != -ETIME && result != -ECANCELED && result != 0) self.timer_error_ = result;
    if ((result == -ETIME || self.timer_error_ != 0) && !self.child_done_) {
      self.timed_out_ = result == -ETIME;
      self.child_.core().cancel();
    }
    self.resume_when_settled();
  }

  static void on_child_done(TaskWaiter& waiter) noexcept {
    auto& self = static_cast<WaitForAwaiter&>(waiter);
    self.child_done_ = true;
    if (self.inside_suspend_) return;  // await_suspend sees it and does not suspend
    if (!self.timer_done_) self.loop_->cancel(self);
    self.resume_when_settled();
  }

  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<WaitForAwaiter&>(point);
    // The child has finished: nothing is left for this cancel to end. Declined, it stays
    // pending on the task and await_resume throws it (asyncio: the task's next step raises
    // CancelledError); taken, it was lost and the child's value returned.
    if (self.child_done_) return false;
    // The timer stays armed (Python 3.12: the timeout() scope is still open while the inner
    // unwinds): if it fires before the child ends, the child is cancelled again. The result is
    // CancelledError all the same (await_resume): an outer cancel never becomes TimeoutError.
    self.outer_cancel_taken_ = true;
    self.child_.core().cancel();
    return true;
  }

  // Once: removing a timer that has not reached the kernel (in the loop's FIFO, or on a
  // virtual clock) completes it inside cancel(), so on_child_done gets here twice.
  void resume_when_settled() noexcept {
    if (child_done_ && timer_done_ && !resume_scheduled_) {
      resume_scheduled_ = true;
      loop_->schedule(awaiting_);
    }
  }

  Coro<T> coro_;
  Task<T> child_;
  __kernel_timespec timespec_;
  Loop* loop_ = nullptr;
  TaskCore* outer_ = nullptr;
  std::coroutine_handle<> awaiting_;
  std::int32_t timer_error_ = 0;
  bool expired_at_start_ = false;
  bool inside_suspend_ = false;
  bool child_done_ = false;
  bool timer_done_ = false;
  bool timed_out_ = false;
  bool outer_cancel_taken_ = false;
  bool resume_scheduled_ = false;
};

// nullopt for a timeout that has expired already (zero or negative).
template <class Rep, class Period>
std::optional<std::int64_t> wait_for_deadline(std::chrono::duration<Rep, Period> timeout) {
  if (checked_ns(timeout, "wait_for") <= 0) return std::nullopt;
  return deadline_after(timeout, "wait_for");
}

}  // namespace detail

// What wait_for returns: the work and its deadline (taken when wait_for was called), not started
// yet. Awaiting it starts the race; so does handing it to create_task, gather, shield (a
// WaitFor moves, the awaiter it makes cannot). It is awaited once.
template <class T>
class [[nodiscard]] WaitFor {
 public:
  using value_type = T;

  WaitFor(Coro<T> coro, std::optional<std::int64_t> due_ns) noexcept
      : coro_(std::move(coro)), due_ns_(due_ns) {}
  WaitFor(Task<T> task, std::optional<std::int64_t> due_ns) noexcept
      : task_(std::move(task)), due_ns_(due_ns) {}

  // Either way the work moves into the awaiter: a second await finds it gone.
  detail::WaitForAwaiter<T> operator co_await() && { return start(); }
  detail::WaitForAwaiter<T> operator co_await() & { return start(); }

 private:
  detail::WaitForAwaiter<T> start() {
    if (task_.valid()) return detail::WaitForAwaiter<T>(std::move(task_), due_ns_);
    if (!coro_.valid())
      throw std::logic_error(
          "wait_for: nothing to wait for: this wait_for was awaited already (it runs once), or "
          "was given an empty Coro or Task");
    return detail::WaitForAwaiter<T>(std::move(coro_), due_ns_);
  }

  Coro<T> coro_;
  Task<T> task_;
  std::optional<std::int64_t> due_ns_;
};

template <class T, class Rep, class Period>
WaitFor<T> wait_for(Coro<T> coro, std::chrono::duration<Rep, Period> timeout) {
  return WaitFor<T>(std::move(coro), detail::wait_for_deadline(timeout));
}

// On expiry the task is cancelled, as asyncio.wait_for cancels the task it is given.
template <class T, class Rep, class Period>
WaitFor<T> wait_for(Task<T> task, std::chrono::duration<Rep, Period> timeout) {
  return WaitFor<T>(std::move(task), detail::wait_for_deadline(timeout));
}

// Any other awaitable (a gather, another wait_for, a foreign awaiter) runs inside a Coro, so it
// can be a task. A single I/O operation has its own overload (coro/io/io.hpp): a linked
// timeout, no child task.
template <class A, class Rep, class Period>
requires detail::PlainAwaiter<A>
auto wait_for(A&& awaitable, std::chrono::duration<Rep, Period> timeout) {
  using R = detail::AwaitResult<A>;
  return WaitFor<R>(detail::await_in_coro<std::remove_cvref_t<A>, R>(std::forward<A>(awaitable)),
                    detail::wait_for_deadline(timeout));
}

}  // namespace ringloop
