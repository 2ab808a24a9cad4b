// current_task() and all_tasks() (asyncio's): the task a coroutine runs in, and a loop's
// unfinished tasks, as AnyTask: a Task handle whose result type is not known. It counts as a
// reference like a Task (the frame stays while one is held) and offers what needs no result.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ringloop/coro/detail/current_task.hpp>
#include <ringloop/coro/task/task.hpp>

namespace ringloop {

class AnyTask {
 public:
  AnyTask() noexcept = default;
  explicit AnyTask(detail::TaskCore& core) noexcept : core_(&core) { ++core_->refs; }
  template <class T>
  AnyTask(const Task<T>& task) : AnyTask(task.core()) {}  // NOLINT: a Task is an AnyTask
  AnyTask(const AnyTask& other) noexcept : core_(other.core_) {
    if (core_ != nullptr) ++core_->refs;
  }
  AnyTask(AnyTask&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
  AnyTask& operator=(AnyTask other) noexcept {
    std::swap(core_, other.core_);
    return *this;
  }
  ~AnyTask() {
    // The promise's destructor reports an exception nobody retrieved, as for a Task.
    if (core_ != nullptr && --core_->refs == 0) core_->destroy_frame();
  }

  bool valid() const noexcept { return core_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }
  bool done() const { return core().done; }
  bool cancelled() const { return core().done && core().cancelled; }
  bool cancel() { return core().cancel_with_message(std::nullopt); }
  bool cancel(std::string message) { return core().cancel_with_message(std::move(message)); }
  std::uint32_t cancelling() const { return core().cancel_requests; }
  std::string get_name() const { return core().name(); }
  void set_name(std::string name) { core().set_name(std::move(name)); }

  // The same task (as asyncio compares Task objects by identity).
  friend bool operator==(const AnyTask& a, const AnyTask& b) noexcept { return a.core_ == b.core_; }
  template <class T>
  friend bool operator==(const AnyTask& a, const Task<T>& b) noexcept {
    return b.valid() && a.core_ == &b.handle().promise().core();
  }

  detail::TaskCore& core() const {
    if (core_ == nullptr) throw std::logic_error("use of an empty AnyTask (no task)");
    return *core_;
  }

 private:
  detail::TaskCore* core_ = nullptr;
};

namespace detail {
class [[nodiscard]] CurrentAnyTask {
 public:
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) noexcept {
    task_ = task_of(awaiting);
    return false;  // never suspends
  }
  AnyTask await_resume() const noexcept { return task_ != nullptr ? AnyTask(*task_) : AnyTask(); }

 private:
  TaskCore* task_ = nullptr;
};
}  // namespace detail

// co_await current_task(): the task the awaiting coroutine runs in (asyncio.current_task()); an
// empty AnyTask in a coroutine of another library's type. Never suspends. (A C++ coroutine
// cannot be asked from a plain function which task runs it, hence the co_await.)
inline detail::CurrentAnyTask current_task() noexcept { return {}; }

// asyncio.all_tasks(loop): the loop's unfinished tasks, in the order they were created; ringloop's
// own tasks are among them (gather's and wait_for's children, pending call_soon calls).
inline std::vector<AnyTask> all_tasks(Loop& loop) {
  std::vector<AnyTask> tasks;
  tasks.reserve(loop.task_count());
  loop.for_each_task(
      [&](detail::TaskHook& hook) { tasks.emplace_back(static_cast<detail::TaskCore&>(hook)); });
  return tasks;
}
inline std::vector<AnyTask> all_tasks() { return all_tasks(Loop::running("all_tasks")); }

}  // namespace ringloop
