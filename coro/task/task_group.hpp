// task_group(body): asyncio.TaskGroup (Python 3.11), structured concurrency. body receives a
// TaskGroup and starts children with group.create_task(); task_group returns when body and
// every child have finished. The first child to fail cancels the others and body itself; when
// everything has ended, the failures are thrown together as an ExceptionGroup. No child
// outlives the scope, so children may point at the caller's locals.
//
//   co_await task_group([&](TaskGroup& group) -> Coro<void> {
//     group.create_task(fetch("a"));
//     group.create_task(fetch("b"));
//     co_return;
//   });
//
// The rules follow asyncio's __aexit__ line by line: a CancelledError from body that the group
// caused (by cancelling its task after a child failed) is taken back with uncancel() and does
// not escape; a cancel from elsewhere cancels the children and escapes as CancelledError once
// they have ended, unless children failed, whose errors take precedence. Then, Python 3.13's
// rule (gh-116720; 3.11 and 3.12 lose the cancel): when the ExceptionGroup leaves while the task
// is still being cancelled from elsewhere, the task is uncancelled and cancelled again, so its
// next await raises CancelledError.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringloop/coro/detail/current_task.hpp>
#include <ringloop/coro/task/task.hpp>

namespace ringloop {

class TaskGroup;

template <class F>
auto task_group(F body) -> Coro<typename std::invoke_result_t<F&, TaskGroup&>::value_type>;

class TaskGroup {
 public:
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  // Starts coro (or any awaitable ringloop::create_task takes) as a child task. Refused once the
  // group is shutting down (a child failed, or body ended with an exception) or has finished, as
  // asyncio refuses.
  template <detail::TaskSource A>
  Task<detail::TaskValue<A>> create_task(A coro) {
    using T = detail::TaskValue<A>;
    if (finished_) throw std::logic_error("TaskGroup::create_task: the TaskGroup has finished");
    if (aborting_) throw std::logic_error("TaskGroup::create_task: the TaskGroup is shutting down");
    Task<T> task = ringloop::create_task(*parent_.loop, std::move(coro));
    auto child = std::make_unique<ChildOf<T>>(*this, task);
    task.core().add_waiter(*child);
    children_.push_back(std::move(child));
    ++pending_;
    return task;
  }

  // Children that have not finished.
  std::size_t pending() const noexcept { return pending_; }

 private:
  template <class F>
  friend auto task_group(F body) -> Coro<typename std::invoke_result_t<F&, TaskGroup&>::value_type>;

  explicit TaskGroup(detail::TaskCore& parent) noexcept : parent_(parent) {}
  ~TaskGroup() = default;

  struct Child : detail::TaskWaiter {
    Child(TaskGroup& owner, detail::TaskCore& core) noexcept
        : TaskWaiter(&on_child_done), group(owner), task(core) {}
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    // Only if the scope's frame goes without finishing (a loop abandoning a stuck task).
    virtual ~Child() { task.remove_waiter(*this); }
    virtual std::exception_ptr error() const noexcept = 0;
    TaskGroup& group;
    detail::TaskCore& task;
  };
  template <class T>
  struct ChildOf final : Child {
    ChildOf(TaskGroup& owner, const Task<T>& t) : Child(owner, t.core()), handle(t) {}
    std::exception_ptr error() const noexcept override { return handle.handle().promise().error(); }
    Task<T> handle;  // keeps the frame, and its exception, until the group is gone
  };

  // Waits until no child is pending; a cancel point (cancelling the waiting task resumes it
  // with CancelledError, and the group's exit decides what that means).
  class Join : detail::CancelPoint {
   public:
    explicit Join(TaskGroup& group) noexcept : CancelPoint(&on_cancel), group_(group) {}
    bool await_ready() const noexcept { return group_.pending_ == 0; }
    void await_suspend(std::coroutine_handle<> awaiting) noexcept {
      awaiting_ = awaiting;
      group_.joiner_ = this;
      group_.parent_.suspend_on(*this);
      if (group_.parent_.must_cancel) {
        group_.parent_.must_cancel = false;
        on_cancel(*this);
      }
    }
    void await_resume() {
      group_.parent_.resumed();
      if (cancelled_) throw group_.parent_.cancelled_error();
    }

   private:
    friend class TaskGroup;
    static bool on_cancel(CancelPoint& point) noexcept {
      auto& self = static_cast<Join&>(point);
      if (self.group_.joiner_ != &self) return false;  // woken already: the cancel waits
      self.group_.joiner_ = nullptr;
      self.cancelled_ = true;
      self.group_.parent_.loop->schedule(self.awaiting_);
      return true;
    }
    TaskGroup& group_;
    std::coroutine_handle<> awaiting_;
    bool cancelled_ = false;
  };

  void abort() noexcept {
    aborting_ = true;
    for (auto& child : children_)
      if (!child->task.done) child->task.cancel();
  }

  static void on_child_done(detail::TaskWaiter& waiter) noexcept {
    auto& child = static_cast<Child&>(waiter);
    TaskGroup& self = child.group;
    --self.pending_;
    if (self.pending_ == 0 && self.joiner_ != nullptr) {
      Join* joiner = std::exchange(self.joiner_, nullptr);
      self.parent_.loop->schedule(joiner->awaiting_);
    }
    if (!child.task.failed || child.task.cancelled) return;
    child.task.exception_retrieved = true;
    self.errors_.push_back(child.error());
    if (!self.aborting_ && !self.parent_cancel_requested_) {
      // Cancels body too (whatever it awaits now), and remembers to take that cancel back.
      self.abort();
      self.parent_cancel_requested_ = true;
      self.parent_.cancel();
    }
  }

  detail::TaskCore& parent_;
  std::vector<std::unique_ptr<Child>> children_;
  std::vector<std::exception_ptr> errors_;
  Join* joiner_ = nullptr;
  std::size_t pending_ = 0;
  bool aborting_ = false;
  bool parent_cancel_requested_ = false;
  bool finished_ = false;
};

template <class F>
auto task_group(F body) -> Coro<typename std::invoke_result_t<F&, TaskGroup&>::value_type> {
  using T = typename std::invoke_result_t<F&, TaskGroup&>::value_type;
  detail::TaskCore& parent = co_await detail::current_task("task_group");
  TaskGroup group(parent);
  std::exception_ptr error;
  std::optional<detail::ResultOf<T>> result;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await body(group);
      result.emplace();
    } else {
      result.emplace(co_await body(group));
    }
  } catch (...) {
    error = std::current_exception();
  }

  // asyncio's TaskGroup.__aexit__.
  std::exception_ptr propagate_cancel;
  if (error && detail::is_cancelled_error(error)) propagate_cancel = error;
  if (error && !group.aborting_) group.abort();
  while (group.pending_ > 0) {
    try {
      co_await TaskGroup::Join(group);
    } catch (const CancelledError&) {
      if (!group.aborting_) {  // our task is being cancelled from outside: so are the children
        propagate_cancel = std::current_exception();
        group.abort();
      }
    }
  }
  group.finished_ = true;
  if (group.parent_cancel_requested_ && parent.uncancel() == 0) propagate_cancel = nullptr;
  // Children's errors take precedence over a cancel.
  if (propagate_cancel && group.errors_.empty()) std::rethrow_exception(propagate_cancel);
  if (error && !detail::is_cancelled_error(error)) group.errors_.push_back(error);
  if (!group.errors_.empty()) {
    if (parent.cancel_requests > 0) {  // 3.13: keeps the count, re-arms the pending cancel
      parent.uncancel();
      parent.cancel();
    }
    throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(group.errors_));
  }
  if constexpr (!std::is_void_v<T>) co_return std::move(*result);
}

}  // namespace ringloop
