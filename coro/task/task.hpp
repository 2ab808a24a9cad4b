// Task<T>: asyncio's Task. create_task() schedules a coroutine to start on the loop's next step
// without being awaited; the loop owns it until it finishes, so dropping every Task handle does
// not stop it. A Task handle is a counted reference: copies share the task, and the last one
// gone (after the task finished) frees the frame. Awaiting a task from several places is fine.
// Results are moved, never copied, when nobody else can see them. A T that cannot be copied
// (Stream, std::unique_ptr) is moved out by the first taker: co_await std::move(task) (awaiting
// such a task as an lvalue does not compile), or a combinator; a second taker gets
// InvalidStateError.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <exception>
#include <utility>

#include <ringloop/coro/errors.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

template <class T = void>
class Task {
 public:
  using promise_type = detail::Promise<T>;
  using Handle = std::coroutine_handle<promise_type>;
  using value_type = T;

  Task() noexcept = default;
  Task(const Task& other) noexcept : handle_(other.handle_) { retain(); }
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task other) noexcept {
    std::swap(handle_, other.handle_);
    return *this;
  }
  ~Task() { release(); }

  bool valid() const noexcept { return static_cast<bool>(handle_); }
  bool done() const { return core().done; }
  bool cancelled() const { return core().done && core().cancelled; }
  // asyncio's Task.cancel(): false when the task has finished already; otherwise the task sees
  // CancelledError at its current (or next) await point and cancel() returns true.
  bool cancel() { return core().cancel(); }
  // asyncio's Task.cancelling() and Task.uncancel(): the count of cancel requests not taken back.
  std::uint32_t cancelling() const { return core().cancel_requests; }
  std::uint32_t uncancel() { return core().uncancel(); }

  // The task's value; rethrows its exception (CancelledError if it was cancelled). Throws
  // InvalidStateError while it runs.
  decltype(auto) result() const {
    require_done("result");
    return handle_.promise().peek_result();
  }
  // The exception the task ended with, or null; CancelledError if it was cancelled.
  std::exception_ptr exception() const {
    require_done("exception");
    if (core().cancelled) throw CancelledError();
    core().exception_retrieved = true;
    return handle_.promise().error;
  }

  class Awaiter;
  // Copies the result: the task keeps it for result() and other awaiters.
  Awaiter operator co_await() const& noexcept {
    static_assert(std::is_void_v<T> || std::is_copy_constructible_v<T>,
                  "co_await on a Task<T> lvalue copies its result, and this T cannot be copied: "
                  "write co_await std::move(task) to move the result out (once)");
    return Awaiter(handle_, false);
  }
  // A temporary's (or a std::move'd handle's) result is moved out rather than copied, unless
  // another handle still shares the task and T can be copied.
  Awaiter operator co_await() && noexcept { return Awaiter(handle_, true); }

  // For combinators: the shared state.
  detail::TaskCore& core() const {
    if (!handle_)
      throw std::logic_error("use of an empty Task (moved from, or default-constructed)");
    return handle_.promise().core;
  }
  Handle handle() const noexcept { return handle_; }

  // Adopts a root frame whose run reference was taken by make_root(); takes one more for itself.
  static Task adopt(Handle root) noexcept {
    Task task;
    task.handle_ = root;
    task.retain();
    return task;
  }

 private:
  void require_done(const char* what) const {
    if (!core().done)
      throw InvalidStateError(std::string("Task.") + what + "(): the task has not finished yet");
  }
  void retain() noexcept {
    if (handle_) ++handle_.promise().core.refs;
  }
  void release() noexcept {
    if (!handle_) return;
    promise_type& promise = handle_.promise();
    if (--promise.core.refs == 0) {
      promise.report_if_unretrieved();
      handle_.destroy();
    }
    handle_ = {};
  }

  Handle handle_;
};

// Awaiting a task: a cancel point whose cancellation cancels the awaited task, as in asyncio
// (shield-less). The awaiter resumes when the task finishes, with its value or exception.
template <class T>
class Task<T>::Awaiter : detail::CancelPoint, detail::TaskWaiter {
 public:
  Awaiter(Handle target, bool move_result) noexcept
      : CancelPoint(&on_cancel), TaskWaiter(&on_done), target_(target), move_(move_result) {}

  bool await_ready() const {
    if (!target_) throw std::logic_error("co_await on an empty Task");
    return target_.promise().core.done;
  }

  template <class P>
  void await_suspend(std::coroutine_handle<P> awaiting) {
    awaiting_ = awaiting;
    waiter_task_ = detail::task_of(awaiting);
    detail::TaskCore& target = target_.promise().core;
    if (waiter_task_ == &target) throw std::logic_error("a task cannot await itself");
    if (waiter_task_ != nullptr && waiter_task_->loop != target.loop)
      throw std::logic_error(
          "awaiting a task that belongs to another event loop; a task can only be awaited "
          "from coroutines on its own loop");
    loop_ = target.loop;
    target.add_waiter(*this);
    if (waiter_task_ != nullptr) {
      waiter_task_->suspend_on(*this);
      // A cancel already pending for the awaiting task goes on to the awaited one at once.
      if (waiter_task_->must_cancel && target.cancel()) waiter_task_->must_cancel = false;
    }
  }

  T await_resume() {
    if (waiter_task_ != nullptr) waiter_task_->resumed();
    promise_type& promise = target_.promise();
    if (promise.core.cancelled) throw CancelledError();
    if constexpr (std::is_void_v<T>) {
      promise.take_result();
    } else if constexpr (std::is_copy_constructible_v<T>) {
      if (move_ && promise.core.refs == 1) return promise.take_result();
      return promise.peek_result();
    } else {
      return promise.take_result();
    }
  }

 private:
  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<Awaiter&>(point);
    return self.target_.promise().core.cancel();
  }
  static void on_done(TaskWaiter& waiter) noexcept {
    auto& self = static_cast<Awaiter&>(waiter);
    self.loop_->schedule(self.awaiting_);
  }

  Handle target_;
  bool move_;
  std::coroutine_handle<> awaiting_;
  detail::TaskCore* waiter_task_ = nullptr;
  Loop* loop_ = nullptr;
};

namespace detail {
// A finished task's result for a combinator: moved out when the combinator holds the only
// reference or T cannot be copied, copied otherwise; rethrows the task's exception. The choice
// is made at compile time where T decides it: a copy of a move-only T is never instantiated.
template <class T>
ResultOf<T> take_task_result(Task<T>& task) {
  auto& promise = task.handle().promise();
  if constexpr (std::is_void_v<T>) {
    promise.take_result();
    return {};
  } else if constexpr (std::is_copy_constructible_v<T>) {
    if (promise.core.refs == 1) return promise.take_result();
    return promise.peek_result();
  } else {
    return promise.take_result();
  }
}
}  // namespace detail

// Starts coro as a task on loop (on its next step). The coroutine must not have run yet. The
// call site is kept for reports about the task.
template <class T>
Task<T> create_task(Loop& loop, Coro<T> coro,
                    detail::CreatedAt created_at = detail::CreatedAt::here()) {
  if (!coro.valid()) throw std::logic_error("create_task: empty Coro (moved from?)");
  auto root = coro.release();
  if (root.promise().start != detail::StartState::not_started) {
    coro = Coro<T>(root);
    throw std::logic_error("create_task: this Coro has been awaited already; it runs only once");
  }
  if (loop.is_closed()) {
    coro = Coro<T>(root);
    throw std::logic_error("create_task: the event loop is closed");
  }
  root.promise().make_root(loop, root);
  root.promise().core.created_at = created_at;
  loop.schedule(root);
  return Task<T>::adopt(root);
}

// Starts coro as a task on the running loop (asyncio.create_task).
template <class T>
Task<T> create_task(Coro<T> coro, detail::CreatedAt created_at = detail::CreatedAt::here()) {
  return create_task(Loop::running("create_task"), std::move(coro), created_at);
}

}  // namespace ringloop
