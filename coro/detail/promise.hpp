// The promise behind Coro<T> and Task<T>. One promise type serves both: a coroutine object
// becomes a task's root in place (create_task adds no allocation), so every promise is a
// TaskCore that is used only when it is a root. Its base rather than a member: a TaskCore then
// reaches its promise, and so its frame, by a static_cast, with no handle stored in it.
//
// Awaiting a Coro resumes it inline inside await_suspend. If it finishes without suspending,
// its final_suspend sees that and returns noop_coroutine(), and await_suspend returns false: the
// parent goes on without a nested resume. This keeps a long chain of synchronous awaits from
// growing the stack at -O0 and under sanitizers, where g++ 12 does not make symmetric transfer
// a tail call (PITFALLS.md, "Toolchain"). A child that suspended resumes its parent from
// final_suspend by symmetric transfer.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <concepts>
#include <coroutine>
#include <cstdio>
#include <exception>
#include <memory>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>

#include <ringloop/coro/detail/frame_pool.hpp>
#include <ringloop/coro/detail/task_core.hpp>

namespace ringloop {

template <class T>
class Coro;

namespace detail {

// asyncio's None: what a void child contributes to gather's results.
template <class T>
using ResultOf = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

void report_unretrieved_exception(Loop* loop, const std::exception_ptr& error,
                                  const CreatedAt& created_at) noexcept;
// An exception that escaped a done callback: reported as call_soon's callbacks report theirs.
void report_callback_exception(const std::exception_ptr& error) noexcept;

// Whether error holds a CancelledError. libstdc++ names the type of the exception an
// exception_ptr holds, which spares a rethrow (a second unwind per cancelled task); for a type
// derived from CancelledError, or another standard library, it falls back to rethrowing.
inline bool is_cancelled_error(const std::exception_ptr& error) noexcept {
#if defined(__GLIBCXX__)
  if (const std::type_info* type = error.__cxa_exception_type()) {
    if (*type == typeid(CancelledError)) return true;
    if (*type == typeid(TimeoutError) || *type == typeid(std::runtime_error)) return false;
  }
#endif
  try {
    std::rethrow_exception(error);
  } catch (const CancelledError&) {
    return true;
  } catch (...) {
    return false;
  }
}

class PromiseBase : protected TaskCore {
 public:
  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* frame, std::size_t size) noexcept {
    deallocate_frame(frame, size);
  }

  // Every coroutine starts suspended; nothing is checked as it first resumes, so the awaiter is
  // empty and costs the frame no pointer to the promise. A root's first step goes through
  // first_step, which ends a task cancelled before it started without running its body
  // (asyncio throws into the coroutine before its first step, which never runs the body
  // either); the other ways a root starts (an eager create_task, wait_for's inline start) run
  // it as soon as make_root made it one, before anything could cancel it.
  std::suspend_always initial_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { set_error(std::current_exception()); }

  bool is_root() const noexcept { return root; }

  // The task this coroutine runs in: its own record when it is the root, else the task of the
  // coroutine that awaits it (null outside any task).
  TaskCore* task() noexcept { return root ? &core() : enclosing_task; }
  // The coroutine awaiting this one (a non-root's).
  std::coroutine_handle<> continuation() const noexcept {
    return std::coroutine_handle<>::from_address(continuation_frame);
  }
  // A non-root is about to run for awaiting (inside task, which may be null).
  void await_from(std::coroutine_handle<> awaiting, TaskCore* in_task) noexcept {
    RINGLOOP_ASSERT(!root, "a task's root coroutine awaited as a Coro");
    continuation_frame = awaiting.address();
    enclosing_task = in_task;
  }
  // The same, for wait_for's inline start: when it ends, it calls hook rather than resuming
  // the awaiting coroutine (once it has suspended, start is hooked).
  void await_from(ContinuationHook& hook, TaskCore* in_task) noexcept {
    RINGLOOP_ASSERT(!root, "a task's root coroutine awaited as a Coro");
    continuation_frame = &hook;
    enclosing_task = in_task;
  }

  // The task record, used when this coroutine is a task's root.
  TaskCore& core() noexcept { return *this; }
  const TaskCore& core() const noexcept { return *this; }
  template <class Promise>
  static Promise& of(TaskCore& core) noexcept {
    return static_cast<Promise&>(static_cast<PromiseBase&>(core));
  }

  // The exception the coroutine ended with; null if it has none (or it was taken).
  const std::exception_ptr& error() const noexcept { return holds_error ? error_ : kNoError; }
  // Moves the exception out, leaving null: for one who holds the only reference.
  std::exception_ptr take_error() noexcept {
    return holds_error ? std::exchange(error_, nullptr) : nullptr;
  }

  using TaskCore::start;

  // Promise<T> destroys its value here when it holds one; a promise with no value has nothing.
  void discard_value() noexcept {}

  // Turns this coroutine into a task's root on owner; the task holds one reference for its run.
  template <class Promise>
  void make_root(Loop& owner, std::coroutine_handle<Promise> self) noexcept {
    RINGLOOP_ASSERT(&self.promise() == this, "make_root given another coroutine's handle");
    root = true;
    loop = &owner;
    waiting_on = nullptr;
    refs = 1;
    number = next_task_number();
    start = StartState::running;
    RINGLOOP_ASSERT(frame().address() == self.address(),
                    "a promise type whose frame starts elsewhere");
    owner.adopt_task(core());
  }

  // The frame of the coroutine whose promise this is, from the record alone (the loop holds
  // only that). Every Promise<T> starts with this PromiseBase and is aligned to at most 16
  // (Promise's static_assert), so the compilers put it at the same offset from the frame's start
  // as a PromiseBase of its own would be: make_root checks it for every task, and
  // tests/task_size.cpp for every kind of result.
  std::coroutine_handle<> frame() noexcept {
    return std::coroutine_handle<PromiseBase>::from_promise(*this);
  }

  // What the loop runs for a task's first step (Loop::schedule_first_step): the coroutine,
  // unless the task was cancelled before it started. Then it ends cancelled there without
  // running its body, and without a C++ throw: the CancelledError is made by
  // make_exception_ptr, which libstdc++ builds in place (no unwind). An unstarted coroutine holds
  // no value, so ending it needs nothing of its Promise<T>.
  void first_step() noexcept {
    note_running();
    if (!must_cancel) {
      frame().resume();
      return;
    }
    if (finish_task<PromiseBase>()) frame().destroy();
  }

 protected:
  void set_error(std::exception_ptr exception) noexcept {
    if (holds_error) {
      error_ = std::move(exception);
      return;
    }
    RINGLOOP_ASSERT(!has_value, "an exception stored over a value (discard_value first)");
    std::construct_at(&error_, std::move(exception));
    holds_error = true;
  }

  // Called when a root finishes: records how it ended, wakes its waiters. Returns true when the
  // frame should be destroyed now (nobody holds a Task handle to it).
  template <class Promise>
  bool finish_task() noexcept {
    // asyncio: a task whose coroutine returns with a cancel still pending (it came while the
    // task ran, and no await followed) ends cancelled; returning the value would lose the
    // cancel, and any cancel an awaiter forwarded to this task with it.
    if (must_cancel && !error()) {
      static_cast<Promise&>(*this).discard_value();
      set_error(std::make_exception_ptr(cancelled_error()));
    }
    must_cancel = false;
    done = true;
    failed = error() != nullptr;
    if (failed) cancelled = is_cancelled_error(error());
    loop->release_task(core());
    notify_waiters();
    return --refs == 0;
  }

 public:
  // As the frame of a finished root goes away, by whichever handle (Task, AnyTask, the loop's
  // own reference): asyncio's "Task exception was never retrieved".
  ~PromiseBase() {
    if (!holds_error) return;
    if (is_root() && done && error_ && !cancelled && !exception_retrieved)
      report_unretrieved_exception(loop, error_, created_at());
    error_.~exception_ptr();
  }
  PromiseBase() noexcept {}  // NOLINT(modernize-use-equals-default): the slot stays unconstructed
  PromiseBase(const PromiseBase&) = delete;
  PromiseBase& operator=(const PromiseBase&) = delete;

  template <class Promise>
  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> handle) const noexcept {
      PromiseBase& promise = handle.promise();
      if (promise.is_root()) {
        if (promise.template finish_task<Promise>()) handle.destroy();
        return std::noop_coroutine();
      }
      if (promise.start == StartState::inline_start) {
        promise.start = StartState::finished_inline;
        return std::noop_coroutine();
      }
      if (promise.start == StartState::hooked) {
        auto& hook = *static_cast<ContinuationHook*>(promise.continuation_frame);
        return hook.on_done(hook);
      }
      return promise.continuation();
    }
    void await_resume() const noexcept {}
  };

 protected:
  // A coroutine ends with an exception or with a value, never both, so the two share this slot:
  // the exception (when holds_error), or a Promise<T>'s value when T fits in the room of an
  // exception_ptr (a long, a pointer, a unique_ptr); a larger T has storage of its own.
  union {
    std::exception_ptr error_;
    alignas(std::exception_ptr) unsigned char value_in_slot_[sizeof(std::exception_ptr)];
  };

 private:
  static inline const std::exception_ptr kNoError{};
};

inline void TaskCore::destroy_frame() noexcept {
  PromiseBase::of<PromiseBase>(*this).frame().destroy();
}

// Storage for a Promise<T>'s value when it does not fit in PromiseBase's slot.
template <class T>
union ValueStorage {
  ValueStorage() noexcept {}  // NOLINT(modernize-use-equals-default): constructed by return_value
  ~ValueStorage() {}          // NOLINT(modernize-use-equals-default): destroyed by its promise
  ValueStorage(const ValueStorage&) = delete;
  ValueStorage& operator=(const ValueStorage&) = delete;
  T value;
};
struct NoValueStorage {};

template <class T>
class Promise : public PromiseBase {
  // g++ 12 and clang 14 allocate a coroutine's frame with plain operator new (they do not pass
  // the promise's alignment), which gives 16 bytes: a value aligned beyond that would sit
  // misaligned in the frame.
  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__,
                "ringloop: a coroutine's result type is aligned beyond 16 bytes, which its frame "
                "cannot hold (the compiler allocates frames with plain operator new): return it "
                "in a std::unique_ptr");
  static constexpr bool kValueInSlot =
      sizeof(T) <= sizeof(std::exception_ptr) && alignof(T) <= alignof(std::exception_ptr);

 public:
  Promise() noexcept {}  // NOLINT(modernize-use-equals-default): the value stays unconstructed
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() { discard_value(); }

  Coro<T> get_return_object() noexcept;
  FinalAwaiter<Promise> final_suspend() noexcept { return {}; }

  template <class U>
  requires std::convertible_to<U&&, T>
  void return_value(U&& value) {
    std::construct_at(value_address(), std::forward<U>(value));
    has_value = true;
  }

  // An exception after the value (a local's throwing destructor, after co_return) replaces it.
  void unhandled_exception() noexcept {
    discard_value();
    set_error(std::current_exception());
  }

  // The result, moved out (or the exception, rethrown). A value moved out once is gone: a
  // second taker gets InvalidStateError rather than a moved-from value.
  T take_result() {
    require_value();
    value_taken = true;
    return std::move(*value_address());
  }
  const T& peek_result() {
    require_value();
    return *value_address();
  }

  void discard_value() noexcept {
    if (!has_value) return;
    std::destroy_at(value_address());
    has_value = false;
  }

 private:
  T* value_address() noexcept {
    if constexpr (kValueInSlot) {
      RINGLOOP_ASSERT(!holds_error, "a value stored over an exception");
      return std::launder(reinterpret_cast<T*>(value_in_slot_));
    } else {
      return std::addressof(storage_.value);
    }
  }

  void require_value() {
    if (error()) {
      exception_retrieved = true;
      std::rethrow_exception(error());
    }
    if (value_taken)
      throw InvalidStateError(
          "the task's result was moved out already: its type cannot be copied, so only one "
          "awaiter (or combinator) can take it");
    // A task the closing loop abandoned ended cancelled with neither a value nor an exception.
    if (!has_value) throw cancelled_error();
  }

  [[no_unique_address]] std::conditional_t<kValueInSlot, NoValueStorage, ValueStorage<T>> storage_;
};

template <>
class Promise<void> : public PromiseBase {
 public:
  Coro<void> get_return_object() noexcept;
  FinalAwaiter<Promise> final_suspend() noexcept { return {}; }
  void return_void() noexcept {}

  void take_result() {
    if (error()) {
      exception_retrieved = true;
      std::rethrow_exception(error());
    }
  }
  void peek_result() { take_result(); }
};

// What a cancelled task's awaiters get: the CancelledError it ended with (with its cancel
// message), or a new one carrying the message when the closing loop ended it without one.
[[noreturn]] inline void rethrow_cancelled(PromiseBase& root) {
  if (root.error()) std::rethrow_exception(root.error());
  throw root.core().cancelled_error();
}

template <class P>
TaskCore* task_of(std::coroutine_handle<P> handle) noexcept {
  if constexpr (std::is_base_of_v<PromiseBase, P>)
    return handle.promise().task();
  else
    return nullptr;
}

// A task of one loop found running on another loop's thread (LoopHandle::schedule() moved it,
// or a foreign resume): its awaits would submit to its own loop's ring from the wrong thread.
[[noreturn]] void throw_task_on_wrong_loop(const TaskCore& task, const char* caller);

// The loop an awaiter should use: its task's, or the thread's running loop. Every ringloop
// await of a task comes here first, so this is where a task resumed on another loop's thread
// is refused: one thread-local read and a compare (bench/coro.cpp measures it).
inline Loop& loop_for(TaskCore* task, const char* caller) {
  if (task == nullptr) return Loop::running(caller);
  if (Loop::current() != task->loop) [[unlikely]] {
    // No loop running here is allowed on the loop's own thread (a test driving run_once()).
    if (Loop::current() != nullptr || !task->loop->on_owner_thread())
      throw_task_on_wrong_loop(*task, caller);
  }
  return *task->loop;
}

}  // namespace detail
}  // namespace ringloop
