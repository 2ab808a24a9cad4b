// co_await current_task("who"): the task the awaiting coroutine runs in, without suspending.
// Scopes that act on their own task (timeout(), TaskGroup) need it; outside a task (in a
// foreign coroutine type) they cannot work, and say so.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <stdexcept>
#include <string>

#include <ringloop/coro/detail/promise.hpp>

namespace ringloop::detail {

class [[nodiscard]] CurrentTask {
 public:
  explicit CurrentTask(const char* caller) noexcept : caller_(caller) {}
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) noexcept {
    task_ = task_of(awaiting);
    return false;  // never suspends: the coroutine goes on at once
  }
  TaskCore& await_resume() const {
    if (task_ == nullptr)
      throw std::logic_error(std::string(caller_) +
                             ": must be awaited from a ringloop coroutine running in a task");
    return *task_;
  }

 private:
  const char* caller_;
  TaskCore* task_ = nullptr;
};

inline CurrentTask current_task(const char* caller) noexcept { return CurrentTask(caller); }

}  // namespace ringloop::detail
