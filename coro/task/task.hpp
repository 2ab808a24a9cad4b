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

#include <concepts>
#include <coroutine>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include <ringloop/coro/detail/await_in_coro.hpp>
#include <ringloop/coro/errors.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

namespace detail {
template <class T, class F>
class DoneCallbackOf;
}  // namespace detail

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
  // asyncio's Task.cancel(msg): false when the task has finished already; otherwise the task sees
  // CancelledError at its current (or next) await point and cancel() returns true. The message
  // is carried by that CancelledError, by the one the task ends with and by the one its awaiters
  // get (what() is the message); as in asyncio, the latest cancel's message wins, and cancel()
  // without one drops an earlier message. The string is allocated only when a message is given.
  bool cancel() { return core().cancel_with_message(std::nullopt); }
  bool cancel(std::string message) { return core().cancel_with_message(std::move(message)); }

  // asyncio's Task.get_name()/set_name(): "Task-N" (N counts the tasks of the process, ringloop's
  // own included: gather's and wait_for's children, call_soon's calls) until set_name().
  std::string get_name() const { return core().name(); }
  void set_name(std::string name) { core().set_name(std::move(name)); }

  // asyncio's Task.add_done_callback(fn): when the task finishes, fn(task) runs on a later step
  // of the loop (as call_soon would run it), in the order callbacks and awaiters came; on a
  // finished task it is scheduled at once. fn takes a Task<T>& (or const Task<T>&, or Task<T>);
  // an exception escaping it is reported like a call_soon callback's.
  template <class F>
  requires std::invocable<F&, Task&>
  void add_done_callback(F fn) {
    core().add_done_callback(std::make_unique<detail::DoneCallbackOf<T, F>>(std::move(fn)));
  }
  // asyncio's Task.remove_done_callback(fn): removes every callback equal to fn that has not been
  // scheduled yet, and returns how many. Only callbacks of a type with == can be found: a
  // function pointer, or a callable object of your own (a lambda has no ==: pass +[]{...} for
  // one without captures, which converts to a function pointer).
  template <class F>
  std::size_t remove_done_callback(const F& fn) {
    static_assert(std::equality_comparable<F>,
                  "remove_done_callback: the callback's type has no ==; use a function pointer "
                  "(+[](Task<T>&) {...} for a lambda without captures)");
    return core().remove_done_callbacks(typeid(F), &fn);
  }
  // asyncio's Task.cancelling() and Task.uncancel(): the count of cancel requests not taken back.
  std::uint32_t cancelling() const { return core().cancel_requests; }
  std::uint32_t uncancel() { return core().uncancel(); }

  // The task's value; rethrows its exception (CancelledError if it was cancelled). Throws
  // InvalidStateError while it runs.
  decltype(auto) result() const {
    require_done("result");
    return handle_.promise().peek_result();
  }
  // The exception the task ended with, or null; throws the CancelledError it ended with if it
  // was cancelled.
  std::exception_ptr exception() const {
    require_done("exception");
    if (core().cancelled) detail::rethrow_cancelled(handle_.promise());
    core().exception_retrieved = true;
    return handle_.promise().error();
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
    return handle_.promise().core();
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
    if (handle_) ++handle_.promise().core().refs;
  }
  void release() noexcept {
    if (!handle_) return;
    promise_type& promise = handle_.promise();
    if (--promise.core().refs == 0) handle_.destroy();  // ~PromiseBase reports an unretrieved error
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
    return target_.promise().core().done;
  }

  template <class P>
  void await_suspend(std::coroutine_handle<P> awaiting) {
    awaiting_ = awaiting;
    waiter_task_ = detail::task_of(awaiting);
    detail::TaskCore& target = target_.promise().core();
    if (waiter_task_ == &target) throw std::logic_error("a task cannot await itself");
    if (waiter_task_ != nullptr && waiter_task_->loop != target.loop)
      throw std::logic_error("awaiting a task of another event loop (" + target.loop->name() +
                             ") from a task of " + waiter_task_->loop->name() +
                             ": a task can only be awaited from coroutines on its own loop "
                             "(across loops, use LoopGroup's submit_to())");
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
    if (promise.core().cancelled) detail::rethrow_cancelled(promise);
    if constexpr (std::is_void_v<T>) {
      promise.take_result();
    } else if constexpr (std::is_copy_constructible_v<T>) {
      if (move_ && promise.core().refs == 1) return promise.take_result();
      return promise.peek_result();
    } else {
      return promise.take_result();
    }
  }

 private:
  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<Awaiter&>(point);
    return self.target_.promise().core().cancel();
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
    if (promise.core().refs == 1) return promise.take_result();
    return promise.peek_result();
  } else {
    return promise.take_result();
  }
}
}  // namespace detail

// How create_task starts a task (asyncio's name= argument and 3.12's eager task factory).
struct TaskOptions {
  std::optional<std::string> name{};  // get_name(); "Task-N" when none
  // The coroutine runs inside create_task, up to its first suspension, instead of on a later
  // step of the loop (asyncio 3.12's eager_task_factory). One that finishes there comes back done
  // and never goes through the ready queue. Its first step runs in the caller's stack: a
  // coroutine that never suspends runs to its end before create_task returns.
  bool eager = false;
};

namespace detail {

template <class T>
Task<T> start_task(Loop& loop, Coro<T> coro, TaskOptions options, CreatedAt created_at) {
  if (!coro.valid()) throw std::logic_error("create_task: empty Coro (moved from?)");
  auto root = coro.release();
  if (root.promise().start != StartState::not_started) {
    coro = Coro<T>(root);
    throw std::logic_error("create_task: this Coro has been awaited already; it runs only once");
  }
  if (loop.is_closed()) {
    coro = Coro<T>(root);
    throw std::logic_error("create_task: the event loop is closed");
  }
  TaskCore& core = root.promise().core();
  try {  // before the loop adopts the task: a bad_alloc here leaves it a plain Coro
    core.set_created_at(created_at, loop.debug());
    if (options.name) core.set_name(std::move(*options.name));
  } catch (...) {
    coro = Coro<T>(root);
    throw;
  }
  root.promise().make_root(loop, root);
  Task<T> task = Task<T>::adopt(root);  // before an eager step, which may finish the task
  if (options.eager)
    root.resume();
  else
    loop.schedule_first_step(core);  // a cancel before it runs costs no throw
  return task;
}

// What create_task takes: a Coro, or any awaitable gather and wait_for take (run in a Coro by
// await_in_coro, as they do).
template <class A>
concept TaskSource = requires(A a) {
  as_coro(std::move(a));
};
// The result type of the task create_task makes of an A.
template <TaskSource A>
using TaskValue = typename decltype(as_coro(std::declval<A>()))::value_type;

template <class T>
struct DoneCallbackFor : DoneCallback {
  virtual void invoke(Task<T>& task) = 0;
};

// Calls a done callback as a small task of its own (as call_soon does). The callback lives in
// the finished task's extras, which the Task handle held here keeps alive. (Only T in the frame's
// type: a frame holding the callable's own type would be a type without linkage for a lambda.)
template <class T>
Coro<void> run_done_callback(Task<T> task, DoneCallbackFor<T>* callback) {
  try {
    callback->invoke(task);
  } catch (...) {
    report_callback_exception(std::current_exception());
  }
  co_return;
}

template <class T, class F>
class DoneCallbackOf final : public DoneCallbackFor<T> {
 public:
  explicit DoneCallbackOf(F fn) : fn_(std::move(fn)) {}

  void schedule(TaskCore& core) noexcept override {
    auto task = Task<T>::adopt(
        std::coroutine_handle<Promise<T>>::from_promise(PromiseBase::of<Promise<T>>(core)));
    start_task(*core.loop, run_done_callback<T>(std::move(task), this), {}, CreatedAt::here());
  }
  void invoke(Task<T>& task) override { std::invoke(fn_, task); }
  bool matches(const std::type_info& type, const void* fn) const noexcept override {
    if constexpr (std::equality_comparable<F>)
      return type == typeid(F) && static_cast<bool>(*static_cast<const F*>(fn) == fn_);
    else
      return false;
  }

 private:
  F fn_;
};

}  // namespace detail

// asyncio.create_task(coro, name=...): starts coro as a task on loop, on its next step (or at
// once, up to its first suspension, with TaskOptions::eager). coro is a Coro that has not run
// yet, or any awaitable gather takes (create_task(sleep(1s))). The call site is kept for reports
// about the task.
template <detail::TaskSource A>
auto create_task(Loop& loop, A coro, TaskOptions options,
                 detail::CreatedAt created_at = detail::CreatedAt::here()) {
  return detail::start_task(loop, detail::as_coro(std::move(coro)), std::move(options), created_at);
}
template <detail::TaskSource A>
auto create_task(Loop& loop, A coro, detail::CreatedAt created_at = detail::CreatedAt::here()) {
  return detail::start_task(loop, detail::as_coro(std::move(coro)), {}, created_at);
}
template <detail::TaskSource A>
auto create_task(Loop& loop, A coro, std::string name,
                 detail::CreatedAt created_at = detail::CreatedAt::here()) {
  return detail::start_task(loop, detail::as_coro(std::move(coro)), {.name = std::move(name)},
                            created_at);
}

namespace detail {
// Each awaitable started as a task on the running loop, in order (for wait and as_completed).
template <TaskSource A>
std::vector<Task<TaskValue<A>>> start_tasks(std::vector<A> awaitables, const char* caller) {
  Loop& loop = Loop::running(caller);
  std::vector<Task<TaskValue<A>>> tasks;
  tasks.reserve(awaitables.size());
  for (A& awaitable : awaitables) tasks.push_back(create_task(loop, std::move(awaitable)));
  return tasks;
}
}  // namespace detail

// The same on the running loop (asyncio.create_task).
template <detail::TaskSource A>
auto create_task(A coro, TaskOptions options,
                 detail::CreatedAt created_at = detail::CreatedAt::here()) {
  return create_task(Loop::running("create_task"), std::move(coro), std::move(options), created_at);
}
template <detail::TaskSource A>
auto create_task(A coro, detail::CreatedAt created_at = detail::CreatedAt::here()) {
  return create_task(Loop::running("create_task"), std::move(coro), created_at);
}
template <detail::TaskSource A>
auto create_task(A coro, std::string name,
                 detail::CreatedAt created_at = detail::CreatedAt::here()) {
  return create_task(Loop::running("create_task"), std::move(coro), std::move(name), created_at);
}

}  // namespace ringloop
