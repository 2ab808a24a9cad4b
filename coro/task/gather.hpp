// gather: runs children concurrently and waits for all of them (asyncio.gather).
//
// gather(a, b, ...) returns a std::tuple of the children's results, gather(range) a
// std::vector; both take Coros (started as tasks when the gather is awaited, so their first
// SQEs reach the kernel in one io_uring_enter), Tasks, and other awaitables such as I/O
// operations (each run in a Coro: their SQEs, too, go in one io_uring_enter). On the first failure
// the other children are cancelled and waited for, then the failure is rethrown: unlike asyncio, no
// child outlives its gather, since a C++ child may point at its caller's locals. Cancelling the
// gather cancels every child; it then ends with CancelledError. gather(return_exceptions, ...)
// instead hands back every child's Outcome.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <array>
#include <coroutine>
#include <cstddef>
#include <memory>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <vector>

#include <ringloop/coro/detail/await_in_coro.hpp>
#include <ringloop/coro/task/outcome.hpp>
#include <ringloop/coro/task/task.hpp>

namespace ringloop {

struct ReturnExceptions {};
inline constexpr ReturnExceptions return_exceptions{};

namespace detail {

template <class A>
struct ChildTraits;
template <class T>
struct ChildTraits<Coro<T>> {
  using value_type = T;
};
template <class T>
struct ChildTraits<Task<T>> {
  using value_type = T;
};
template <PlainAwaiter A>
struct ChildTraits<A> {
  using value_type = AwaitResult<A>;
};
template <class A>
using ChildValue = typename ChildTraits<std::remove_cvref_t<A>>::value_type;

template <class T>
Task<T> start_child(Loop& loop, Coro<T>& coro) {
  return create_task(loop, std::move(coro));
}
template <class T>
Task<T> start_child(Loop&, Task<T>& task) {
  return task;
}
template <PlainAwaiter A>
Task<AwaitResult<A>> start_child(Loop& loop, A& awaitable) {
  return create_task(loop, await_in_coro(std::move(awaitable)));
}

template <class T>
Outcome<T> take_child_outcome(Task<T>& task) {
  TaskCore& core = task.core();
  if (core.failed) {
    // Handed over as it is: rethrowing only to catch it again costs an unwind per child. Moved
    // out when gather holds the only reference (nobody can ask the task for it again).
    core.exception_retrieved = true;
    auto& promise = task.handle().promise();
    return Outcome<T>::from_exception(core.refs == 1 ? promise.take_error() : promise.error());
  }
  return Outcome<T>::from_value(take_task_result(task));
}

// What gather does whatever its children's types: count them down, cancel the rest on the
// first failure, and resume the awaiting coroutine when the last one is done. It watches its
// children through one record (TaskWatcher): a child with no other waiter holds a pointer to the
// gather and costs it nothing more; one that has waiters already (awaited elsewhere too, or
// given twice) gets a node of its own, from the derived awaiter.
class GatherState : CancelPoint, TaskWatcher {
 public:
  struct ChildWaiter : TaskWaiter {
    ChildWaiter() noexcept : TaskWaiter(&on_child_done) {}
    GatherState* state = nullptr;
    TaskCore* child = nullptr;
  };

 protected:
  // The i-th child's task, from wherever the derived awaiter keeps its children.
  using ChildAt = TaskCore& (*)(GatherState& self, std::size_t i) noexcept;
  // The i-th child's own node, when it needs one: made if allocate (which may throw
  // std::bad_alloc), else null if none was made.
  using NodeFor = ChildWaiter* (*)(GatherState& self, std::size_t i, bool allocate);

  GatherState(bool return_exceptions, ChildAt child_at, NodeFor node_for) noexcept
      : CancelPoint(&on_cancel),
        TaskWatcher(&on_watched_done),
        child_at_(child_at),
        node_for_(node_for),
        return_exceptions_(return_exceptions) {}

  // Registers with every child; returns false when all had finished (no suspension). A throw
  // (a node's allocation) leaves no child registered.
  template <class P>
  bool start(std::coroutine_handle<P> awaiting, std::size_t count) {
    count_ = count;
    outer_ = task_of(awaiting);
    awaiting_ = awaiting;
    remaining_ = count;
    std::size_t registered = 0;
    std::size_t finished = 0;
    try {
      for (; registered < count; ++registered) {
        TaskCore& child = child_at_(*this, registered);
        if (child.done) {
          ++finished;
          continue;
        }
        if (child.add_watcher(*this)) continue;
        ChildWaiter& node = *node_for_(*this, registered, true);
        node.state = this;
        node.child = &child;
        child.add_waiter(node);
      }
    } catch (...) {
      for (std::size_t i = 0; i < registered; ++i) unregister(i);
      throw;
    }
    // Those that had finished are counted after every child is registered (child_done may
    // cancel the others, which a roll-back could not undo); a second pass over a million
    // children would miss the cache on each, so it is made only when one had finished.
    for (std::size_t i = 0; finished > 0 && i < count; ++i) {
      TaskCore& child = child_at_(*this, i);
      if (child.done) {
        child_done(child);
        --finished;
      }
    }
    if (remaining_ == 0) return false;
    suspended_ = true;
    if (outer_ != nullptr) {
      loop_ = outer_->loop;
      outer_->suspend_on(*this);
      if (outer_->must_cancel) {
        outer_->must_cancel = false;
        on_cancel(*this);
      }
    } else {
      loop_ = child_at_(*this, 0).loop;
    }
    return true;
  }

  // Throws what the gather ends with, if it does not end with its children's results.
  void throw_if_failed() {
    if (outer_ != nullptr) outer_->resumed();
    if (cancel_taken_) throw cancelled_error(outer_);
  }

  // The index of the first child to fail (the first given, if it was given twice), or -1.
  std::ptrdiff_t first_failed() noexcept {
    if (first_failed_ == nullptr) return -1;
    for (std::size_t i = 0; i < count_; ++i)
      if (&child_at_(*this, i) == first_failed_) return static_cast<std::ptrdiff_t>(i);
    return -1;
  }

 private:
  static void on_child_done(TaskWaiter& waiter) noexcept {
    auto& node = static_cast<ChildWaiter&>(waiter);
    node.state->child_done(*node.child);
  }
  static void on_watched_done(TaskWatcher& watcher, TaskCore& child) noexcept {
    static_cast<GatherState&>(watcher).child_done(child);
  }

  // The i-th child's registration, taken back (start's roll-back): its node if it has one
  // linked, else the watcher (a child given twice holds both, one for each place).
  void unregister(std::size_t i) noexcept {
    TaskCore& child = child_at_(*this, i);
    ChildWaiter* node = node_for_(*this, i, false);
    if (node != nullptr && node->linked())
      child.remove_waiter(*node);
    else
      child.remove_watcher(*this);
  }

  void child_done(TaskCore& child) noexcept {
    --remaining_;
    if (child.failed) {
      // Retrieved as it ends, as asyncio's gather calls exception() in its done callback: the
      // child is in cache now, where a pass over all of them at the end would miss on each.
      child.exception_retrieved = true;
      if (first_failed_ == nullptr && !return_exceptions_) {
        first_failed_ = &child;
        cancel_children();
      }
    }
    if (remaining_ == 0 && suspended_) loop_->schedule(awaiting_);
  }

  // Once per gather, whichever comes first, a failure or the gather's own cancel (asyncio's
  // gather, too, cancels each child once): a second request would land on a child that caught
  // the first and went on, cancelling the await it made next.
  void cancel_children() noexcept {
    if (children_cancelled_) return;
    children_cancelled_ = true;
    for (std::size_t i = 0; i < count_; ++i) child_at_(*this, i).cancel();
  }

  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<GatherState&>(point);
    self.cancel_taken_ = true;
    self.cancel_children();
    return true;
  }

  ChildAt child_at_;
  NodeFor node_for_;
  std::size_t count_ = 0;
  std::size_t remaining_ = 0;
  TaskCore* first_failed_ = nullptr;
  Loop* loop_ = nullptr;
  TaskCore* outer_ = nullptr;
  std::coroutine_handle<> awaiting_;
  bool return_exceptions_;
  bool suspended_ = false;
  bool cancel_taken_ = false;
  bool children_cancelled_ = false;
};

template <bool ReturnExceptions, class... Args>
class [[nodiscard]] GatherAwaiter : GatherState {
  static constexpr std::size_t kCount = sizeof...(Args);

 public:
  using Results = std::conditional_t<ReturnExceptions, std::tuple<Outcome<ChildValue<Args>>...>,
                                     std::tuple<ResultOf<ChildValue<Args>>...>>;

  explicit GatherAwaiter(Args... args)
      : GatherState(ReturnExceptions, &child_at, &node_for), args_(std::move(args)...) {}

  bool await_ready() const noexcept { return kCount == 0; }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    Loop& loop = loop_for(task_of(awaiting), "gather");
    start_children(loop, std::index_sequence_for<Args...>{});
    return start(awaiting, kCount);
  }

  Results await_resume() {
    if constexpr (kCount == 0) {
      return {};
    } else {
      throw_if_failed();
      if constexpr (!ReturnExceptions) {
        if (std::ptrdiff_t failed = first_failed(); failed >= 0)
          rethrow_failed(failed, std::index_sequence_for<Args...>{});
        return std::apply([](auto&... t) { return Results{take_task_result(t)...}; }, tasks_);
      } else {
        return std::apply([](auto&... t) { return Results{take_child_outcome(t)...}; }, tasks_);
      }
    }
  }

 private:
  template <std::size_t... I>
  void start_children(Loop& loop, std::index_sequence<I...>) {
    // Left to right: children are scheduled in the order they were given.
    tasks_ = Tasks{start_child(loop, std::get<I>(args_))...};
    ((children_[I] = &std::get<I>(tasks_).core()), ...);
  }

  static TaskCore& child_at(GatherState& self, std::size_t i) noexcept {
    return *static_cast<GatherAwaiter&>(self).children_[i];
  }
  // A few children: a node for each is kept at hand, no allocation.
  static ChildWaiter* node_for(GatherState& self, std::size_t i, bool) noexcept {
    return &static_cast<GatherAwaiter&>(self).nodes_[i];
  }

  template <std::size_t... I>
  void rethrow_failed(std::ptrdiff_t failed, std::index_sequence<I...>) {
    ((static_cast<std::ptrdiff_t>(I) == failed ? (void)take_task_result(std::get<I>(tasks_))
                                               : void()),
     ...);
  }

  using Tasks = std::tuple<Task<ChildValue<Args>>...>;
  std::tuple<Args...> args_;
  Tasks tasks_;
  std::array<TaskCore*, kCount> children_{};
  std::array<ChildWaiter, kCount> nodes_{};
};

template <bool ReturnExceptions, class T>
class [[nodiscard]] GatherRangeAwaiter : GatherState {
 public:
  using Result = std::conditional_t<ReturnExceptions, Outcome<T>, ResultOf<T>>;

  explicit GatherRangeAwaiter(std::vector<Task<T>> tasks, std::vector<Coro<T>> coros)
      : GatherState(ReturnExceptions, &child_at, &node_for),
        tasks_(std::move(tasks)),
        coros_(std::move(coros)) {}

  bool await_ready() const noexcept { return tasks_.empty() && coros_.empty(); }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    Loop& loop = loop_for(task_of(awaiting), "gather");
    tasks_.reserve(tasks_.size() + coros_.size());
    for (Coro<T>& coro : coros_) tasks_.push_back(create_task(loop, std::move(coro)));
    coros_.clear();
    return start(awaiting, tasks_.size());
  }

  std::vector<Result> await_resume() {
    std::vector<Result> results;
    if (tasks_.empty()) return results;
    throw_if_failed();
    if constexpr (!ReturnExceptions) {
      if (std::ptrdiff_t failed = first_failed(); failed >= 0)
        take_task_result(tasks_[static_cast<std::size_t>(failed)]);
    }
    results.reserve(tasks_.size());
    for (Task<T>& task : tasks_) {
      if constexpr (ReturnExceptions)
        results.push_back(take_child_outcome(task));
      else
        results.push_back(take_task_result(task));
    }
    return results;
  }

 private:
  static TaskCore& child_at(GatherState& self, std::size_t i) noexcept {
    return static_cast<GatherRangeAwaiter&>(self).tasks_[i].core();
  }
  // Nodes are allocated for all children at once, the first time one needs its own (a child
  // awaited elsewhere too, or given twice): a gather of tasks nobody else awaits allocates none.
  static ChildWaiter* node_for(GatherState& self, std::size_t i, bool allocate) {
    auto& gather = static_cast<GatherRangeAwaiter&>(self);
    if (!gather.nodes_) {
      if (!allocate) return nullptr;
      allocation_seam();
      gather.nodes_ = std::make_unique<ChildWaiter[]>(gather.tasks_.size());
    }
    return &gather.nodes_[i];
  }

  std::vector<Task<T>> tasks_;
  std::vector<Coro<T>> coros_;
  std::unique_ptr<ChildWaiter[]> nodes_;
};

template <bool ReturnExceptions, class T, class Range>
auto make_range_gather_of_copies(Range&& range) {
  using Element = std::ranges::range_value_t<Range>;
  std::vector<Task<T>> tasks;
  std::vector<Coro<T>> coros;
  for (auto&& child : range) {
    if constexpr (std::is_same_v<Element, Coro<T>>)
      coros.push_back(std::move(child));
    else if constexpr (PlainAwaiter<Element>)
      coros.push_back(await_in_coro(std::move(child)));
    else
      tasks.push_back(child);
  }
  return GatherRangeAwaiter<ReturnExceptions, T>(std::move(tasks), std::move(coros));
}

template <bool ReturnExceptions, class Range>
auto make_range_gather(Range&& range) {
  using Element = std::ranges::range_value_t<Range>;
  using T = ChildValue<Element>;
  // A vector of tasks handed over is kept as it is: a copy would cost a reference count (a
  // cache miss, in a gather of a million) and 8 bytes per task.
  if constexpr (std::is_same_v<std::remove_cvref_t<Range>, std::vector<Task<T>>> &&
                !std::is_lvalue_reference_v<Range>)
    return GatherRangeAwaiter<ReturnExceptions, T>(std::move(range), {});
  else
    return make_range_gather_of_copies<ReturnExceptions, T>(std::forward<Range>(range));
}

template <class A>
concept GatherChild = requires {
  typename ChildTraits<std::remove_cvref_t<A>>::value_type;
};

template <class R>
concept GatherRange = std::ranges::input_range<R> && GatherChild<std::ranges::range_value_t<R>>;

}  // namespace detail

// gather(a, b, ...): a std::tuple of results (std::monostate for a void child).
template <detail::GatherChild... Args>
auto gather(Args&&... children) {
  return detail::GatherAwaiter<false, std::remove_cvref_t<Args>...>(
      std::remove_cvref_t<Args>(std::forward<Args>(children))...);
}

// gather(return_exceptions, a, b, ...): a std::tuple of Outcomes; never throws for a child.
template <detail::GatherChild... Args>
auto gather(ReturnExceptions, Args&&... children) {
  return detail::GatherAwaiter<true, std::remove_cvref_t<Args>...>(
      std::remove_cvref_t<Args>(std::forward<Args>(children))...);
}

// gather(range): a std::vector of results, in the range's order. Coros in the range are moved
// from; Tasks are shared.
template <detail::GatherRange Range>
auto gather(Range&& children) {
  return detail::make_range_gather<false>(std::forward<Range>(children));
}

template <detail::GatherRange Range>
auto gather(ReturnExceptions, Range&& children) {
  return detail::make_range_gather<true>(std::forward<Range>(children));
}

}  // namespace ringloop
