// shield(task): asyncio.shield. Awaiting it gives the task's result, but cancelling the
// awaiting coroutine does not cancel the task: the awaiter ends with CancelledError at once and
// the task runs on, owned by the loop (its exception, if nobody retrieves it, is reported when
// its last handle goes, as asyncio logs it). shield(coro) starts the coroutine as a task first.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <stdexcept>
#include <utility>

#include <ringloop/coro/task/task.hpp>

namespace ringloop {
namespace detail {

template <class T>
class [[nodiscard]] ShieldAwaiter : CancelPoint, TaskWaiter {
 public:
  explicit ShieldAwaiter(Task<T> task) noexcept
      : CancelPoint(&on_cancel), TaskWaiter(&on_done), task_(std::move(task)) {}
  ShieldAwaiter(ShieldAwaiter&& other) noexcept
      : CancelPoint(&on_cancel), TaskWaiter(&on_done), task_(std::move(other.task_)) {}

  bool await_ready() const {
    if (!task_.valid()) throw std::logic_error("shield: empty Task");
    return task_.done();
  }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    outer_ = task_of(awaiting);
    TaskCore& target = task_.core();
    if (outer_ == &target) throw std::logic_error("shield: a task cannot await itself");
    if (outer_ != nullptr && outer_->loop != target.loop)
      throw std::logic_error("shield: the task belongs to another event loop");
    // asyncio: a cancel already pending is delivered at once, and the task is left alone.
    if (outer_ != nullptr && outer_->must_cancel) return false;
    awaiting_ = awaiting;
    target.add_waiter(*this);
    if (outer_ != nullptr) outer_->suspend_on(*this);
    return true;
  }

  ResultOf<T> await_resume() {
    if (outer_ != nullptr) outer_->resumed();
    if (cancel_taken_) throw cancelled_error(outer_);
    if (task_.core().cancelled) rethrow_cancelled(task_.handle().promise());
    return take_task_result(task_);
  }

 private:
  static void on_done(TaskWaiter& waiter) noexcept {
    auto& self = static_cast<ShieldAwaiter&>(waiter);
    self.task_.core().loop->schedule(self.awaiting_);
  }
  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<ShieldAwaiter&>(point);
    if (!static_cast<TaskWaiter&>(self).linked()) return false;  // woken already
    // Stops waiting; the task itself is not touched.
    self.task_.core().remove_waiter(self);
    self.cancel_taken_ = true;
    self.task_.core().loop->schedule(self.awaiting_);
    return true;
  }

  Task<T> task_;
  TaskCore* outer_ = nullptr;
  std::coroutine_handle<> awaiting_;
  bool cancel_taken_ = false;
};

}  // namespace detail

template <class T>
detail::ShieldAwaiter<T> shield(Task<T> task) {
  return detail::ShieldAwaiter<T>(std::move(task));
}

// A coroutine (or any awaitable create_task takes) becomes a task on the running loop at once,
// as asyncio.shield wraps it.
template <detail::TaskSource A>
detail::ShieldAwaiter<detail::TaskValue<A>> shield(A awaitable) {
  return detail::ShieldAwaiter<detail::TaskValue<A>>(create_task(std::move(awaitable)));
}

}  // namespace ringloop
