// AsCompleted: asyncio.as_completed. Hands back the tasks one by one in the order they finish:
//
//   AsCompleted each(std::move(tasks), 5s);       // the timeout is optional
//   while (each.has_next()) {
//     Task<int> first = co_await each.next();      // finished; its result() is ready
//   }
//
// With a timeout, next() throws TimeoutError once the deadline (for the whole iteration, as in
// asyncio) has passed with tasks still pending. The tasks are never cancelled by it. It watches
// every task from the start, so it must stay where it is built (not copyable, not movable).
// As asyncio's: a task given twice is watched once (as_completed iterates over set(fs)), and
// next() may be awaited by several tasks at once: finished tasks go to the awaiters in the order
// they awaited (asyncio's waiters all await one Queue of finished tasks).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

#include <ringloop/coro/detail/deadline_wait.hpp>
#include <ringloop/coro/task/task.hpp>

namespace ringloop {

template <class T>
class AsCompleted {
 public:
  explicit AsCompleted(std::vector<Task<T>> tasks) : AsCompleted(std::move(tasks), std::nullopt) {}
  template <class Rep, class Period>
  AsCompleted(std::vector<Task<T>> tasks, std::chrono::duration<Rep, Period> timeout)
      : AsCompleted(std::move(tasks), detail::deadline_after(timeout, "AsCompleted")) {}
  // Coroutines, or other awaitables create_task takes, are started as tasks on the running loop
  // first.
  template <detail::TaskSource A>
  requires std::same_as<detail::TaskValue<A>, T>
  explicit AsCompleted(std::vector<A> awaitables)
      : AsCompleted(detail::start_tasks(std::move(awaitables), "as_completed")) {}
  template <detail::TaskSource A, class Rep, class Period>
  requires std::same_as<detail::TaskValue<A>, T> AsCompleted(
      std::vector<A> awaitables, std::chrono::duration<Rep, Period> timeout)
      : AsCompleted(detail::start_tasks(std::move(awaitables), "as_completed"), timeout) {}

  AsCompleted(const AsCompleted&) = delete;
  AsCompleted& operator=(const AsCompleted&) = delete;
  ~AsCompleted() {
    for (Watch& watch : watches_) watch.task.core().remove_waiter(watch);
  }

  // True while next() has been called fewer times than there are (distinct) tasks: asyncio's
  // iterator yields one awaitable per task, each of which gives a task or raises TimeoutError.
  bool has_next() const noexcept { return issued_ < watches_.size(); }

  class Next;
  Next next() {
    if (!has_next()) throw std::logic_error("AsCompleted::next: every task was handed out already");
    ++issued_;
    return Next(*this);
  }

  class [[nodiscard]] Next : detail::DeadlineWait {
   public:
    explicit Next(AsCompleted& owner) noexcept : DeadlineWait(&stop_watching), owner_(owner) {}

    bool await_ready() const noexcept {
      return !owner_.finished_.empty() ||
             (owner_.deadline_ && *owner_.deadline_ <= detail::now_ns());
    }

    template <class P>
    void await_suspend(std::coroutine_handle<P> awaiting) {
      begin(awaiting, "AsCompleted::next");
      try {
        owner_.waiting_.push_back(this);
        suspend(owner_.deadline_);  // on bad_alloc it has taken this off waiting_ again
      } catch (...) {
        --owner_.issued_;  // this next() handed nothing out: has_next() is as it was
        throw;
      }
    }

    Task<T> await_resume() {
      throw_if_cancelled_or_failed("as_completed: IORING_OP_TIMEOUT failed");
      if (given_) return std::move(*given_);
      if (owner_.finished_.empty())
        throw TimeoutError("as_completed: the timeout passed with tasks still pending");
      Task<T> task = std::move(owner_.finished_.front());
      owner_.finished_.pop_front();
      return task;
    }

   private:
    friend class AsCompleted;
    static void stop_watching(DeadlineWait& base) noexcept {
      auto& self = static_cast<Next&>(base);
      std::deque<Next*>& waiting = self.owner_.waiting_;
      for (auto it = waiting.begin(); it != waiting.end(); ++it) {
        if (*it == &self) {
          waiting.erase(it);
          return;
        }
      }
    }

    AsCompleted& owner_;
    std::optional<Task<T>> given_;  // the finished task on_task_done handed to this awaiter
  };

 private:
  struct Watch : detail::TaskWaiter {
    Watch(AsCompleted& o, Task<T> t) noexcept
        : TaskWaiter(&on_task_done), owner(&o), task(std::move(t)) {}
    AsCompleted* owner;
    Task<T> task;
  };

  AsCompleted(std::vector<Task<T>> tasks, std::optional<std::int64_t> deadline)
      : deadline_(deadline) {
    watches_.reserve(tasks.size());  // no reallocation once nodes are linked
    std::unordered_set<const detail::TaskCore*> seen;
    try {
      for (Task<T>& task : tasks) {
        if (!seen.insert(&task.core()).second) continue;  // asyncio: set(fs)
        Watch& watch = watches_.emplace_back(*this, std::move(task));
        if (watch.task.done())
          finished_.push_back(watch.task);
        else
          watch.task.core().add_waiter(watch);  // may throw bad_alloc (TaskCore::add_waiter)
      }
    } catch (...) {
      // No destructor runs for an object whose constructor threw: unlink what was linked.
      for (Watch& watch : watches_) watch.task.core().remove_waiter(watch);
      throw;
    }
  }

  static void on_task_done(detail::TaskWaiter& waiter) noexcept {
    auto& watch = static_cast<Watch&>(waiter);
    AsCompleted& self = *watch.owner;
    if (self.waiting_.empty()) {
      self.finished_.push_back(watch.task);
      return;
    }
    // To the first awaiter now, so a later awaiter resumed sooner (its timer's CQE came back
    // first) cannot overtake it.
    Next* first = self.waiting_.front();
    self.waiting_.pop_front();
    first->given_ = watch.task;
    first->finish();
  }

  std::vector<Watch> watches_;
  std::deque<Task<T>> finished_;  // finished while no awaiter was waiting
  std::deque<Next*> waiting_;     // suspended awaiters, in the order they awaited
  std::optional<std::int64_t> deadline_;
  std::size_t issued_ = 0;
};

template <detail::TaskSource A>
AsCompleted(std::vector<A>) -> AsCompleted<detail::TaskValue<A>>;
template <detail::TaskSource A, class Rep, class Period>
AsCompleted(std::vector<A>, std::chrono::duration<Rep, Period>)
    -> AsCompleted<detail::TaskValue<A>>;

}  // namespace ringloop
