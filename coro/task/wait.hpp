// wait(tasks, return_when, timeout): asyncio.wait. Waits until the condition holds or the
// timeout passes and hands back the tasks split into done and pending; it cancels nothing and
// throws nothing for the tasks' own failures (their results stay in them). Cancelling the
// awaiting coroutine ends the wait with CancelledError and leaves the tasks running.
//
// The timeout is one IORING_OP_TIMEOUT with an absolute deadline; when the condition is met
// first it is removed and its CQE awaited before the awaiter goes away.
//
// It returns on the loop pass asyncio.wait returns on: asyncio resumes its caller through a
// future (a finished task's done callback, _on_completion, runs one pass later and sets it; the
// future's callback wakes the caller one pass after that), even when the condition already
// holds, and done/pending are read then. So here: one pass to be resumed, one more to yield.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include <ringloop/coro/detail/deadline_wait.hpp>
#include <ringloop/coro/task/task.hpp>
#include <ringloop/coro/time/sleep.hpp>

namespace ringloop {

enum class ReturnWhen : std::uint8_t { first_completed, first_exception, all_completed };

template <class T>
struct WaitResult {
  std::vector<Task<T>> done;
  std::vector<Task<T>> pending;
};

namespace detail {

// Suspends until the tasks meet return_when, the deadline passes, or the awaiting task is
// cancelled; one waiter node per task, registered only while suspended.
class [[nodiscard]] WaitCondition : DeadlineWait {
 public:
  WaitCondition(std::vector<TaskCore*> tasks, ReturnWhen when, std::optional<std::int64_t> deadline)
      : DeadlineWait(&stop_watching), tasks_(std::move(tasks)), when_(when), deadline_(deadline) {}

  // Never ready at once: asyncio.wait suspends even when the condition already holds.
  bool await_ready() const noexcept { return false; }

  template <class P>
  void await_suspend(std::coroutine_handle<P> awaiting) {
    begin(awaiting, "wait");
    if (holds_now()) {
      finish();  // resumed on the next pass, as _on_completion would run
      return;
    }
    watches_.resize(tasks_.size());
    for (std::size_t i = 0; i < tasks_.size(); ++i) {
      watches_[i].owner = this;
      if (tasks_[i]->done) {
        ++done_;
        failed_ |= tasks_[i]->failed && !tasks_[i]->cancelled;
        continue;
      }
      try {
        tasks_[i]->add_waiter(watches_[i]);  // may throw bad_alloc (TaskCore::add_waiter)
      } catch (...) {
        for (std::size_t j = 0; j < i; ++j) tasks_[j]->remove_waiter(watches_[j]);
        throw;
      }
    }
    suspend(deadline_);
  }

  void await_resume() { throw_if_cancelled_or_failed("wait: IORING_OP_TIMEOUT failed"); }

 private:
  bool holds_now() const noexcept {
    std::size_t done = 0;
    bool failed = false;
    for (TaskCore* task : tasks_) {
      done += task->done;
      failed |= task->done && task->failed && !task->cancelled;
    }
    return satisfied(done, failed) || (deadline_ && *deadline_ <= now_ns());
  }

  struct Watch : TaskWaiter {
    Watch() noexcept : TaskWaiter(&on_task_done) {}
    WaitCondition* owner = nullptr;
  };

  bool satisfied(std::size_t done, bool failed) const noexcept {
    switch (when_) {
      case ReturnWhen::first_completed:
        return done > 0;
      case ReturnWhen::first_exception:
        return failed || done == tasks_.size();
      case ReturnWhen::all_completed:
        return done == tasks_.size();
    }
    return true;
  }

  static void on_task_done(TaskWaiter& waiter) noexcept {
    auto& self = *static_cast<Watch&>(waiter).owner;
    std::size_t index =
        static_cast<std::size_t>(&static_cast<Watch&>(waiter) - self.watches_.data());
    ++self.done_;
    self.failed_ |= self.tasks_[index]->failed && !self.tasks_[index]->cancelled;
    if (self.satisfied(self.done_, self.failed_)) self.finish();
  }

  static void stop_watching(DeadlineWait& base) noexcept {
    auto& self = static_cast<WaitCondition&>(base);
    for (std::size_t i = 0; i < self.watches_.size(); ++i)
      self.tasks_[i]->remove_waiter(self.watches_[i]);
  }

  std::vector<TaskCore*> tasks_;
  ReturnWhen when_;
  std::optional<std::int64_t> deadline_;
  std::vector<Watch> watches_;
  std::size_t done_ = 0;
  bool failed_ = false;
};

// The deadline is taken when the wait starts, not when wait() is called, as asyncio's _wait
// calls call_later in its first step: a wait run as its own task, created after the tasks it
// waits for, times out after the sleeps those tasks armed first with the same delay, and so it
// sees them done (test_wait_concurrent_complete).
template <class T>
Coro<WaitResult<T>> wait_impl(std::vector<Task<T>> tasks, ReturnWhen when,
                              std::optional<std::int64_t> timeout_ns) {
  if (tasks.empty()) throw std::invalid_argument("wait: the set of tasks is empty");
  std::vector<TaskCore*> cores;
  cores.reserve(tasks.size());
  for (Task<T>& task : tasks) cores.push_back(&task.core());
  std::optional<std::int64_t> deadline;
  if (timeout_ns) deadline = deadline_after(std::chrono::nanoseconds(*timeout_ns), "wait");
  co_await WaitCondition(std::move(cores), when, deadline);
  // asyncio's second pass: the waiter future's callback wakes the caller (a cancel that came
  // meanwhile is raised here, as asyncio's step raises it).
  co_await SleepAwaiter(SleepAwaiter::YieldOnly{});
  WaitResult<T> result;
  for (Task<T>& task : tasks)
    (task.done() ? result.done : result.pending).push_back(std::move(task));
  co_return result;
}

}  // namespace detail

template <class T>
Coro<WaitResult<T>> wait(std::vector<Task<T>> tasks, ReturnWhen when = ReturnWhen::all_completed) {
  return detail::wait_impl(std::move(tasks), when, std::nullopt);
}

// With a timeout: returns (not throws) when it passes, with the unfinished tasks in pending.
template <class T, class Rep, class Period>
Coro<WaitResult<T>> wait(std::vector<Task<T>> tasks, std::chrono::duration<Rep, Period> timeout,
                         ReturnWhen when = ReturnWhen::all_completed) {
  // NaN is refused here, at the call; the deadline is taken when the wait starts.
  return detail::wait_impl(std::move(tasks), when, detail::checked_ns(timeout, "wait"));
}

// Coroutines or other awaitables (anything create_task takes): each is started as a task on the
// running loop when wait() is called, and the WaitResult hands back those tasks.
template <detail::TaskSource A>
Coro<WaitResult<detail::TaskValue<A>>> wait(std::vector<A> awaitables,
                                            ReturnWhen when = ReturnWhen::all_completed) {
  return detail::wait_impl(detail::start_tasks(std::move(awaitables), "wait"), when, std::nullopt);
}
template <detail::TaskSource A, class Rep, class Period>
Coro<WaitResult<detail::TaskValue<A>>> wait(std::vector<A> awaitables,
                                            std::chrono::duration<Rep, Period> timeout,
                                            ReturnWhen when = ReturnWhen::all_completed) {
  return detail::wait_impl(detail::start_tasks(std::move(awaitables), "wait"), when,
                           detail::deadline_after(timeout));
}

}  // namespace ringloop
