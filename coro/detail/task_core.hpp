// The state of a task, kept in the promise of its root coroutine (so a task costs no
// allocation beyond that frame). A task is "suspended at a cancel point" when one of ringloop's
// awaiters registered itself as what the task waits for; cancel() asks that point to end the
// wait, as asyncio's Task.cancel() cancels the future its task waits on. When nothing can take
// the request now, it is remembered, and the task's next await point throws CancelledError.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include <ringloop/coro/detail/created_at.hpp>
#include <ringloop/coro/detail/frame_pool.hpp>
#include <ringloop/coro/errors.hpp>
#include <ringloop/loop/detail/intrusive_ring.hpp>
#include <ringloop/loop/loop.hpp>

namespace ringloop::detail {

// What a task is suspended on. request_cancel returns true when the point takes the request:
// it will end the wait early and deliver the outcome (CancelledError, for an operation).
struct CancelPoint {
  using RequestFn = bool (*)(CancelPoint&) noexcept;
  explicit CancelPoint(RequestFn fn) noexcept : request_cancel(fn) {}
  RequestFn request_cancel;
};

// Someone waiting for a task to finish (an awaiter, gather, wait_for). notify may only
// schedule coroutines, never resume one.
struct TaskWaiter : ListNode {
  using NotifyFn = void (*)(TaskWaiter&) noexcept;
  explicit TaskWaiter(NotifyFn fn) noexcept : notify(fn) {}
  TaskWaiter(const TaskWaiter& other) noexcept : ListNode(), notify(other.notify) {}
  TaskWaiter& operator=(const TaskWaiter&) = delete;
  NotifyFn notify;
};

class TaskCore;

// Where a coroutine is in being run by its awaiter (Coro's awaiter, an async generator's next).
enum class StartState : std::uint8_t {
  not_started,
  inline_start,     // being run by its awaiter's await_suspend
  finished_inline,  // finished before that await_suspend returned
  running,          // suspended at least once; will resume its continuation when done
  hooked,           // as running, but its continuation is a ContinuationHook (wait_for's)
};

// What a coroutine started inline by wait_for calls when it ends, in place of resuming the
// coroutine that awaits it: wait_for lets its timer go first. on_done returns the coroutine to
// transfer to (wait_for's returns the awaiting one).
struct ContinuationHook {
  using DoneFn = std::coroutine_handle<> (*)(ContinuationHook&) noexcept;
  explicit ContinuationHook(DoneFn fn) noexcept : on_done(fn) {}
  ContinuationHook(const ContinuationHook&) = delete;
  ContinuationHook& operator=(const ContinuationHook&) = delete;
  DoneFn on_done;
};

// One record through which something watches many tasks (gather): a task holds a pointer to it
// in its waiters' word, in place of a waiter node per task (32 bytes each, 32 MB for a gather of
// a million). notify gets the task that finished; like TaskWaiter's, it only schedules.
struct TaskWatcher {
  using NotifyFn = void (*)(TaskWatcher&, TaskCore&) noexcept;
  explicit TaskWatcher(NotifyFn fn) noexcept : notify(fn) {}
  // An awaiter holding one is moved before it is awaited, and registers only then.
  TaskWatcher(const TaskWatcher&) noexcept = default;
  TaskWatcher& operator=(const TaskWatcher&) = delete;
  NotifyFn notify;
};

// asyncio's done callback (Task.add_done_callback): a waiter in the task's FIFO like an awaiter,
// so callbacks and awaiters are woken in the order they came. schedule() starts the call on a
// later step of the loop (as call_soon); matches() serves remove_done_callback.
struct DoneCallback : TaskWaiter {
  DoneCallback() noexcept : TaskWaiter(&on_done) {}
  DoneCallback(const DoneCallback&) = delete;
  DoneCallback& operator=(const DoneCallback&) = delete;
  virtual ~DoneCallback() = default;
  virtual void schedule(TaskCore& task) noexcept = 0;
  virtual bool matches(const std::type_info& type, const void* fn) const noexcept = 0;
  TaskCore* task = nullptr;

 private:
  static void on_done(TaskWaiter& waiter) noexcept {
    auto& self = static_cast<DoneCallback&>(waiter);
    self.schedule(*self.task);
  }
};

// What few tasks need: a name set by hand, a cancel message, done callbacks. Allocated on first
// use; the pointer to them shares its word with created_file, so a task that has none pays
// nothing for them.
struct TaskExtras {
  const char* created_file = nullptr;  // moved here from the task's record (CreatedAt)
  std::optional<std::string> name;
  const char* created_function = nullptr;  // debug mode only (CreatedAt)
  std::optional<std::string> cancel_message;
  std::vector<std::unique_ptr<DoneCallback>> callbacks;  // added and not removed
  // The task's watcher, moved here from the waiters' word when a waiter node came after it
  // (it came first, so it is still woken first).
  TaskWatcher* watcher = nullptr;
};

// asyncio's "Task-N": one counter for the process, as asyncio's _task_name_counter.
inline std::uint64_t next_task_number() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

class TaskCore : public TaskHook {
 public:
  TaskCore() noexcept {}  // NOLINT(modernize-use-equals-default): the union's member is chosen
  TaskCore(const TaskCore&) = delete;
  TaskCore& operator=(const TaskCore&) = delete;
  ~TaskCore() {
    if (has_extras) delete extras_;
  }

  // Destroys the root coroutine's frame, and with it this record (it lives in that frame's
  // promise). Defined with PromiseBase (promise.hpp), which knows where the frame starts.
  void destroy_frame() noexcept;

  // asyncio's Task.cancel(): false when the task has finished, true otherwise.
  bool cancel() noexcept {
    if (done) return false;
    ++cancel_requests;
    if (waiting_on != nullptr && waiting_on->request_cancel(*waiting_on)) return true;
    must_cancel = true;
    return true;
  }

  // asyncio's Task.uncancel(): takes back one cancel request, for a scope that cancelled its own
  // task and turned the CancelledError into something else (timeout(), TaskGroup). When none is
  // left, a cancel that has not been delivered yet is dropped too (Python 3.13's rule).
  std::uint32_t uncancel() noexcept {
    if (cancel_requests > 0 && --cancel_requests == 0) must_cancel = false;
    return cancel_requests;
  }

  void suspend_on(CancelPoint& point) noexcept { waiting_on = &point; }

  // Called by every ringloop awaiter as it resumes: a cancel that arrived when nothing could
  // take it surfaces here.
  void resumed() {
    waiting_on = nullptr;
    note_running();
    throw_if_cancel_pending();
  }

  // Debug mode: tells the loop which task the running step belongs to (its slow-step report).
  void note_running() const noexcept {
    if (loop->debug()) loop->note_step_task(created_file(), created_line, created_function());
  }

  void throw_if_cancel_pending() {
    if (must_cancel) {
      must_cancel = false;
      throw cancelled_error();
    }
  }

  // asyncio's Task.cancel(msg), for Task and AnyTask: the latest cancel request made through a
  // handle sets the message (none drops an earlier one; ringloop's own cancels leave it as it
  // is). The CancelledError the task sees at its await point carries it, and so does the one it
  // ends with.
  bool cancel_with_message(std::optional<std::string> message) {
    if (done) return false;
    if (message)
      ensure_extras().cancel_message = std::move(message);
    else if (has_extras)
      extras_->cancel_message.reset();
    return cancel();
  }
  CancelledError cancelled_error() const {
    return has_extras && extras_->cancel_message ? CancelledError(*extras_->cancel_message)
                                                 : CancelledError();
  }

  // asyncio's Task.get_name()/set_name(): "Task-N" until a name is set; the string is built on
  // demand, so an unnamed task stores only its number.
  std::string name() const {
    if (has_extras && extras_->name) return *extras_->name;
    return "Task-" + std::to_string(number);
  }
  void set_name(std::string new_name) { ensure_extras().name = std::move(new_name); }

  // asyncio's add_done_callback: on a finished task the call is scheduled at once. The callback
  // stays here, with the frame, until the frame goes (its call holds a Task handle).
  void add_done_callback(std::unique_ptr<DoneCallback> callback) {
    callback->task = this;
    DoneCallback& added = *callback;
    ensure_extras().callbacks.push_back(std::move(callback));
    if (done)
      added.schedule(*this);
    else
      add_waiter(added);
  }
  // asyncio's remove_done_callback: removes every callback equal to fn not yet scheduled;
  // returns how many.
  std::size_t remove_done_callbacks(const std::type_info& type, const void* fn) {
    if (!has_extras) return 0;
    return std::erase_if(extras_->callbacks, [&](const std::unique_ptr<DoneCallback>& callback) {
      if (!callback->linked() || !callback->matches(type, fn)) return false;
      remove_waiter(*callback);
      return true;
    });
  }

  // The extras, made on first use: they take over the word that held created_file.
  TaskExtras& ensure_extras() {
    if (!has_extras) {
      allocation_seam();
      auto* made = new TaskExtras;
      made->created_file = created_file_;
      extras_ = made;
      has_extras = true;
    }
    return *extras_;
  }
  // The extras, or null when the task has none.
  TaskExtras* extras() const noexcept { return has_extras ? extras_ : nullptr; }

  // Waiters are woken in the order they came (FIFO, as asyncio's done callbacks). A node that
  // comes after a watcher moves the watcher to the extras (which may throw bad_alloc, before
  // anything changed); the watcher, first to come, is still the first woken.
  void add_waiter(TaskWaiter& waiter) {
    RINGLOOP_ASSERT(!done, "waiting for a task that has finished");
    if (waiters.alt() != nullptr) {
      TaskExtras& more = ensure_extras();
      more.watcher = waiters.take_alt();
    }
    waiters.push_back(waiter);
  }
  void remove_waiter(TaskWaiter& waiter) noexcept {
    if (waiter.linked()) waiters.erase(waiter);
  }
  // Registers watcher when the task has no waiter yet; false otherwise (the caller registers a
  // node instead).
  bool add_watcher(TaskWatcher& watcher) noexcept {
    RINGLOOP_ASSERT(!done, "watching a task that has finished");
    if (!waiters.empty() || (has_extras && extras_->watcher != nullptr)) return false;
    waiters.set_alt(watcher);
    return true;
  }

  // Takes back a watcher registered by add_watcher (or moved aside since); false if not there.
  bool remove_watcher(TaskWatcher& watcher) noexcept {
    if (waiters.alt() == &watcher) return waiters.take_alt() != nullptr;
    if (has_extras && extras_->watcher == &watcher) {
      extras_->watcher = nullptr;
      return true;
    }
    return false;
  }

  // The watcher, from the waiters' word or from the extras where a node moved it; null if none.
  TaskWatcher* take_watcher() noexcept {
    TaskWatcher* watcher = waiters.take_alt();
    if (watcher == nullptr && has_extras) watcher = std::exchange(extras_->watcher, nullptr);
    return watcher;
  }

  void notify_waiters() noexcept {
    if (TaskWatcher* watcher = take_watcher()) watcher->notify(*watcher, *this);
    while (waiters.has_nodes()) {
      TaskWaiter& waiter = waiters.pop_front();  // unlinked first: notify may end its life
      waiter.notify(waiter);
    }
  }

  // The loop closes and nothing can resume this task: it ends as cancelled, its waiters are
  // let go (they are stuck too), and its frame goes when no Task handle refers to it.
  void abandon() noexcept {
    take_watcher();
    while (waiters.has_nodes()) waiters.pop_front();
    done = failed = cancelled = true;
    waiting_on = nullptr;
    if (--refs == 0) destroy_frame();
  }

  // Where create_task was called: for reports. The calling function's name is kept in debug
  // mode only (asyncio keeps a task's source traceback only then): file and line name the place,
  // and a task is 8 bytes smaller without it.
  CreatedAt created_at() const noexcept {
    return {created_file(), created_line, created_function()};
  }
  void set_created_at(const CreatedAt& where, bool debug) {
    (has_extras ? extras_->created_file : created_file_) = where.file;
    created_line = where.line;
    if (debug) ensure_extras().created_function = where.function;
  }
  const char* created_function() const noexcept {
    return has_extras ? extras_->created_function : nullptr;
  }
  const char* created_file() const noexcept {
    return has_extras ? extras_->created_file : created_file_;
  }

  // The flags and the 32-bit fields come first: they fill the tail padding of TaskHook (the
  // layout's size is part of every coroutine frame's, tests/task_size.cpp prints it).
  bool must_cancel : 1 = false;
  bool done : 1 = false;
  bool failed : 1 = false;     // ended with an exception (CancelledError included)
  bool cancelled : 1 = false;  // ended with CancelledError
  bool exception_retrieved : 1 = false;
  bool root : 1 = false;  // this record is a task's (its coroutine was made a task's root)
  // The promise's own state (PromiseBase, Promise<T>), every coroutine's and not only a
  // task's: kept here, where it fills the padding before created_line, rather than after this
  // record, where it cost a frame 8 bytes.
  bool holds_error : 1 = false;  // the promise's slot holds the exception it ended with
  bool has_value : 1 = false;    // Promise<T>: return_value constructed the value
  bool value_taken : 1 = false;  // Promise<T>: the value was moved out
  bool has_extras : 1 = false;   // the created_file_ / extras_ word holds extras_
  StartState start = StartState::not_started;
  std::uint32_t created_line = 0;
  std::uint32_t refs = 0;             // Task handles, plus one while the coroutine has not finished
  std::uint32_t cancel_requests = 0;  // asyncio's Task.cancelling()
  // A coroutine that is not a task's root (one awaited as a Coro, a generator's body) reads no
  // field of this record; the two it needs share storage with two that only a task reads, so
  // they cost its frame nothing (PromiseBase::task() and continuation()).
  union {
    Loop* loop = nullptr;      // a task's
    TaskCore* enclosing_task;  // a non-root's: the task it runs in, or null
  };
  union {
    CancelPoint* waiting_on = nullptr;  // a task's
    void* continuation_frame;           // a non-root's: the coroutine awaiting it (or, when
                                        // start is hooked, the ContinuationHook)
  };
  // Most tasks never have extras; one that does keeps its created_file there (a task is 8
  // bytes smaller for it, which took a trivial task's frame from a 144-byte block to 128).
  union {
    const char* created_file_ = nullptr;
    TaskExtras* extras_;  // owned, when has_extras
  };
  std::uint64_t number = 0;  // asyncio's N in "Task-N"; 0 until the coroutine is a task
  // One pointer: most tasks have one waiter or none; a watcher takes the word for itself.
  IntrusiveRing<TaskWaiter, TaskWatcher> waiters;
};

// The CancelledError a cancelled wait throws in task (which may be null: a foreign coroutine).
inline CancelledError cancelled_error(const TaskCore* task) {
  return task != nullptr ? task->cancelled_error() : CancelledError();
}

// The task a coroutine handle runs in: its promise's, for ringloop's coroutines; none for a
// foreign coroutine type (it can await ringloop's awaiters, without cancellation).
template <class Promise>
TaskCore* task_of(std::coroutine_handle<Promise> handle) noexcept;

}  // namespace ringloop::detail
