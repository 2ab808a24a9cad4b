// wait_for(awaitable, timeout): the awaitable's result, or TimeoutError when the deadline
// passes first (asyncio.wait_for, with Python 3.12's rules).
//
// A Coro runs in the awaiting task itself, as Python 3.12's wait_for runs its coroutine (it is
// `async with timeout(): return await coro`): current_task() inside it is the caller's, and
// when the deadline passes it is that task which is cancelled; the CancelledError that ends the
// Coro becomes TimeoutError as it leaves wait_for, unless a cancel from elsewhere came too (the
// task's cancel requests are counted, as asyncio's uncancel() counts them, so wait_for claims
// only its own). A Coro that swallows the cancel and returns a value returns it.
//
// The deadline is taken as the await begins (asyncio's wait_for is a coroutine: its timeout
// starts when it runs). If the Coro finishes without suspending, no timer is armed. Otherwise
// one IORING_OP_TIMEOUT with that absolute deadline races it. When the Coro ends first,
// its timer is let go and the caller goes on in the same step: the timer's record is the loop's
// to end (DetachableTimer), in user space if the loop has not given it an SQE yet (Loop::submit
// makes timers' SQEs at its submit point), else by TIMEOUT_REMOVE, whose CQE frees it.
//
// A Task, or a Coro awaited outside any task (a foreign coroutine), is raced as a child task:
// at the deadline the child is cancelled and waited for, and if it ends cancelled wait_for throws
// TimeoutError (if it swallowed the cancel and returned a value, the value wins). Cancelling
// the awaiting task cancels the child and ends with CancelledError, never TimeoutError; the
// deadline stays armed while the child unwinds, and cancels it again if it passes first.
//
// A zero or negative timeout arms no timer and never starts a Coro (asyncio 3.12's wait_for,
// tasks.py: timeout <= 0 wraps it in a task, cancels it and waits, so its body never runs):
// a Task already done gives its result; otherwise the task is cancelled at once and waited for.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include <ringloop/coro/detail/await_in_coro.hpp>
#include <ringloop/coro/detail/deadline.hpp>
#include <ringloop/coro/detail/detachable_timer.hpp>
#include <ringloop/coro/task/task.hpp>

namespace ringloop {
namespace detail {

template <class T>
class [[nodiscard]] WaitForAwaiter : CancelPoint, TaskWaiter, ContinuationHook {
 public:
  // A timeout (ns, > 0) of nullopt: it was zero or negative (expired before it started).
  WaitForAwaiter(Coro<T> coro, std::optional<std::int64_t> timeout_ns) noexcept
      : WaitForAwaiter(timeout_ns) {
    body_ = coro.release();
  }
  WaitForAwaiter(Task<T> task, std::optional<std::int64_t> timeout_ns) noexcept
      : WaitForAwaiter(timeout_ns) {
    child_ = std::move(task);
  }
  WaitForAwaiter(const WaitForAwaiter&) = delete;
  WaitForAwaiter& operator=(const WaitForAwaiter&) = delete;
  ~WaitForAwaiter() {
    if (timer_ != nullptr) timer_->release();
    if (body_) body_.destroy();
  }

  bool await_ready() const {
    if (!body_ && !child_.valid()) throw std::logic_error("wait_for: empty Coro or Task");
    return child_.valid() && child_.done();
  }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    outer_ = task_of(awaiting);
    loop_ = &loop_for(outer_, "wait_for");
    awaiting_ = awaiting;
    start_ = loop_->mark_now();  // the deadline counts from here, once it is needed
    if (body_) {
      if (body_.promise().start != StartState::not_started)
        throw std::logic_error("wait_for: this Coro has been awaited already; it runs only once");
      if (!expired_at_start_ && outer_ != nullptr) return run_in_caller();
    }
    if (expired_at_start_) {
      cancel_child_now();
    } else {
      // The timer's record first: once the child has started, nothing here may throw.
      timer_ = &DetachableTimer::make();
      if (body_) {
        if (!start_child_task()) {  // finished without suspending: no timer
          std::exchange(timer_, nullptr)->release();
          return false;
        }
      } else {
        child_.core().add_waiter(*this);
      }
      timer_->arm(*loop_, due_ns(), &on_expiry, this);
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
    if (in_caller_) return take_inline_result();
    if (outer_ != nullptr) outer_->resumed();
    TaskCore& child = child_.core();
    if (child.cancelled) {
      child.exception_retrieved = true;
      if (timed_out_ && !outer_cancel_taken_) throw TimeoutError("wait_for: the timeout expired");
      throw cancelled_error(outer_);
    }
    if (timer_error_ != 0) throw timer_failed();
    return take_task_result(child_);
  }

 private:
  explicit WaitForAwaiter(std::optional<std::int64_t> timeout_ns) noexcept
      : CancelPoint(&on_cancel),
        TaskWaiter(&on_child_done),
        ContinuationHook(&on_inline_done),
        timeout_ns_(timeout_ns.value_or(0)),
        expired_at_start_(!timeout_ns) {}

  // The Coro runs in the awaiting task (Python 3.12): started inline; if it suspends, the timer
  // races it, and at the deadline the task itself is cancelled. Returns false when it finished
  // without suspending (no timer was armed).
  bool run_in_caller() {
    in_caller_ = true;
    cancelling_at_entry_ = outer_->cancel_requests;
    auto& promise = body_.promise();
    promise.await_from(static_cast<ContinuationHook&>(*this), outer_);
    promise.start = StartState::inline_start;
    body_.resume();
    if (promise.start == StartState::finished_inline) return false;
    promise.start = StartState::hooked;
    // The Coro waits: from here nothing may throw out of this await_suspend (the awaiting
    // coroutine would unwind and destroy a Coro suspended in an operation). With no memory for
    // the timer, the deadline cannot be kept: the Coro is cancelled as by a timer the kernel
    // refused, and wait_for ends with that error (ENOMEM).
    try {
      timer_ = &DetachableTimer::make();
    } catch (const std::bad_alloc&) {
      on_expiry(this, -ENOMEM);
      return true;
    }
    timer_->arm(*loop_, due_ns(), &on_expiry, this);
    return true;
  }

  // The Coro that ran in the caller has ended (on_done of the hook): the timer is let go, and
  // the caller goes on at once, by symmetric transfer.
  static std::coroutine_handle<> on_inline_done(ContinuationHook& hook) noexcept {
    auto& self = static_cast<WaitForAwaiter&>(hook);
    if (self.timer_ != nullptr) std::exchange(self.timer_, nullptr)->release();
    return self.awaiting_;
  }

  ResultOf<T> take_inline_result() {
    auto& promise = body_.promise();
    if (timed_out_) {
      // The deadline cancelled this task: that request is taken back (asyncio's uncancel), and
      // if no other came meanwhile, the CancelledError it caused leaves as TimeoutError.
      bool only_ours = outer_->uncancel() <= cancelling_at_entry_;
      if (timer_error_ != 0) throw timer_failed();
      if (only_ours && promise.error() && is_cancelled_error(promise.error())) {
        promise.take_error();
        throw TimeoutError("wait_for: the timeout expired");
      }
    }
    if constexpr (std::is_void_v<T>) {
      promise.take_result();
      return {};
    } else {
      return promise.take_result();
    }
  }

  std::system_error timer_failed() const {
    return std::system_error(-timer_error_, std::system_category(),
                             timer_error_ == -ENOMEM ? "wait_for: no memory for its timer"
                                                     : "wait_for: IORING_OP_TIMEOUT failed");
  }

  // The absolute deadline: timeout_ns_ after the await began. Read only once the inner work
  // has suspended: an await that ends at once never pays for a clock read.
  std::int64_t due_ns() noexcept {
    std::int64_t start = loop_->ns_at(start_);
    return timeout_ns_ > kMaxDeadlineNs - start ? kMaxDeadlineNs : start + timeout_ns_;
  }

  // A timeout that expired before wait_for began: the child (a Coro becomes a task that never
  // runs its body) is cancelled now, with no timer, and waited for.
  void cancel_child_now() {
    if (body_) child_ = create_task(*loop_, Coro<T>(std::exchange(body_, {})));
    child_.core().add_waiter(*this);
    timed_out_ = true;
    child_.core().cancel();
  }

  // Runs the Coro as a task until it first suspends (a caller outside any task). Returns false
  // when it finished already.
  bool start_child_task() {
    auto root = std::exchange(body_, {});
    root.promise().make_root(*loop_, root);
    child_ = Task<T>::adopt(root);
    child_.core().add_waiter(*this);
    inside_suspend_ = true;
    root.resume();
    inside_suspend_ = false;
    return !child_done_;
  }

  // The deadline passed (or the kernel refused the timer) while the inner work ran.
  static void on_expiry(void* owner, std::int32_t result) noexcept {
    auto& self = *static_cast<WaitForAwaiter*>(owner);
    if (result != -ETIME) self.timer_error_ = result;
    // In the caller, timed_out_ means "the deadline cancelled the task" (to be taken back);
    // for a child task, that it expired (TimeoutError).
    self.timed_out_ = result == -ETIME || self.in_caller_;
    if (self.in_caller_)
      self.outer_->cancel();
    else
      self.child_.core().cancel();
  }

  static void on_child_done(TaskWaiter& waiter) noexcept {
    auto& self = static_cast<WaitForAwaiter&>(waiter);
    self.child_done_ = true;
    if (self.inside_suspend_) return;  // await_suspend sees it and does not suspend
    if (self.timer_ != nullptr) std::exchange(self.timer_, nullptr)->release();
    self.loop_->schedule(self.awaiting_);
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

  typename Coro<T>::Handle body_;  // a Coro's frame, owned until it runs as a task (or goes)
  Task<T> child_;
  std::int64_t timeout_ns_;
  TimeMark start_;                    // when the await began
  DetachableTimer* timer_ = nullptr;  // held while the inner work runs
  Loop* loop_ = nullptr;
  TaskCore* outer_ = nullptr;
  std::coroutine_handle<> awaiting_;
  std::int32_t timer_error_ = 0;
  std::uint32_t cancelling_at_entry_ = 0;  // the task's cancel requests as the Coro started
  bool expired_at_start_ = false;
  bool in_caller_ = false;  // the Coro runs in the awaiting task (run_in_caller)
  bool inside_suspend_ = false;
  bool child_done_ = false;
  bool timed_out_ = false;
  bool outer_cancel_taken_ = false;
};

// The timeout in ns (saturated; NaN refused), or nullopt for one that has expired already
// (zero or negative).
template <class Rep, class Period>
std::optional<std::int64_t> wait_for_timeout(std::chrono::duration<Rep, Period> timeout) {
  std::int64_t ns = checked_ns(timeout, "wait_for");
  if (ns <= 0) return std::nullopt;
  return ns;
}

}  // namespace detail

// What wait_for returns: the work and its timeout, not started yet (the deadline is taken as
// it is awaited). Awaiting it starts the race; so does handing it to create_task, gather, shield (a
// WaitFor moves, the awaiter it makes cannot). It is awaited once.
template <class T>
class [[nodiscard]] WaitFor {
 public:
  using value_type = T;

  // timeout_ns: > 0, or nullopt for a timeout that has expired already.
  WaitFor(Coro<T> coro, std::optional<std::int64_t> timeout_ns) noexcept
      : coro_(std::move(coro)), timeout_ns_(timeout_ns) {}
  WaitFor(Task<T> task, std::optional<std::int64_t> timeout_ns) noexcept
      : task_(std::move(task)), timeout_ns_(timeout_ns) {}

  // Either way the work moves into the awaiter: a second await finds it gone.
  detail::WaitForAwaiter<T> operator co_await() && { return start(); }
  detail::WaitForAwaiter<T> operator co_await() & { return start(); }

 private:
  detail::WaitForAwaiter<T> start() {
    if (task_.valid()) return detail::WaitForAwaiter<T>(std::move(task_), timeout_ns_);
    if (!coro_.valid())
      throw std::logic_error(
          "wait_for: nothing to wait for: this wait_for was awaited already (it runs once), or "
          "was given an empty Coro or Task");
    return detail::WaitForAwaiter<T>(std::move(coro_), timeout_ns_);
  }

  Coro<T> coro_;
  Task<T> task_;
  std::optional<std::int64_t> timeout_ns_;
};

template <class T, class Rep, class Period>
WaitFor<T> wait_for(Coro<T> coro, std::chrono::duration<Rep, Period> timeout) {
  return WaitFor<T>(std::move(coro), detail::wait_for_timeout(timeout));
}

// On expiry the task is cancelled, as asyncio.wait_for cancels the task it is given.
template <class T, class Rep, class Period>
WaitFor<T> wait_for(Task<T> task, std::chrono::duration<Rep, Period> timeout) {
  return WaitFor<T>(std::move(task), detail::wait_for_timeout(timeout));
}

// Any other awaitable (a gather, another wait_for, a foreign awaiter) runs inside a Coro, so it
// can be a task. A single I/O operation has its own overload (coro/io/io.hpp): a linked
// timeout, no child task.
template <class A, class Rep, class Period>
requires detail::PlainAwaiter<A>
auto wait_for(A&& awaitable, std::chrono::duration<Rep, Period> timeout) {
  using R = detail::AwaitResult<A>;
  return WaitFor<R>(detail::await_in_coro<std::remove_cvref_t<A>, R>(std::forward<A>(awaitable)),
                    detail::wait_for_timeout(timeout));
}

}  // namespace ringloop
