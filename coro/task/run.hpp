// run() and run_until_complete(): the entry points (asyncio.run, loop.run_until_complete).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <ringloop/coro/signal/signals.hpp>
#include <ringloop/coro/task/task.hpp>

namespace ringloop {

// Runs coro as a task on loop until it finishes; returns its result or rethrows. Other tasks
// are left as they are, as asyncio's run_until_complete does.
namespace detail {
// Stops the loop when the main task ends, so the iteration in which it ends does not go on to
// block in the kernel for the other tasks' operations.
struct StopLoopWhenDone : TaskWaiter {
  explicit StopLoopWhenDone(Loop& l) noexcept : TaskWaiter(&on_done), loop(&l) {}
  static void on_done(TaskWaiter& waiter) noexcept {
    static_cast<StopLoopWhenDone&>(waiter).loop->stop();
  }
  Loop* loop;
};
}  // namespace detail

// Runs the loop until main finishes; returns its result or rethrows.
template <class T>
T run_until_complete(Loop& loop, Task<T> main) {
  Loop::RunningScope running(loop);
  if (main.core().loop != &loop)
    throw std::logic_error("run_until_complete: the task belongs to another event loop");
  detail::StopLoopWhenDone stopper(loop);
  main.core().add_waiter(stopper);
  while (!main.done()) {
    if (!loop.run_once() && !main.done()) {
      main.core().remove_waiter(stopper);
      throw std::logic_error(
          "run_until_complete: the coroutine waits for something that nothing scheduled or in "
          "flight will ever complete (a deadlock)");
    }
  }
  if constexpr (std::is_void_v<T>)
    main.handle().promise().take_result();
  else
    return detail::take_task_result(main);
}

template <class T>
T run_until_complete(Loop& loop, Coro<T> coro) {
  if (Loop::current() != nullptr)
    throw std::logic_error(
        "a ringloop event loop is already running on this thread: run() and "
        "run_until_complete() cannot be nested; await the coroutine instead");
  return run_until_complete(loop, create_task(loop, std::move(coro)));
}

// What Loop::run_until_complete(coro) calls.
template <class T>
T loop_run_until_complete(Loop& loop, Coro<T> coro) {
  return run_until_complete(loop, std::move(coro));
}

namespace detail {
// What run() and Runner::run() share: runs coro as the main task of loop until it finishes, with
// run()'s SIGINT rule (the main task is cancelled, then KeyboardInterrupt), and returns its
// result or rethrows. Leaves the other tasks as they are.
template <class T>
T run_main(Loop& loop, Coro<T> coro, bool cancel_main_on_sigint, const char* caller) {
  if (Loop::current() != nullptr)
    throw std::logic_error(std::string(caller) +
                           " cannot be called from a running event loop; await the coroutine "
                           "instead");
  Task<T> main = create_task(loop, std::move(coro));
  std::optional<InterruptMainOnSigint> sigint;
  if (cancel_main_on_sigint) sigint.emplace(loop, main.core());
  try {
    return run_until_complete(loop, main);
  } catch (const CancelledError&) {
    // asyncio.Runner: the cancel came from Ctrl-C and nothing else is pending.
    if (sigint && sigint->interrupts() > 0 && main.uncancel() == 0) throw KeyboardInterrupt();
    throw;
  }
}
}  // namespace detail

// Makes a loop, runs coro to its end, then cancels every task still pending and waits for them
// and for every operation in flight, closes the loop, and returns coro's result or rethrows
// its exception. Calling it inside a running loop is an error, as in asyncio.
template <class T>
T run(Coro<T> coro, const LoopOptions& options = {}) {
  if (Loop::current() != nullptr)
    throw std::logic_error(
        "run() cannot be called from a running event loop; await the coroutine instead");
  Loop loop(options);
  std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> result{};
  std::exception_ptr error;
  try {
    if constexpr (std::is_void_v<T>)
      detail::run_main(loop, std::move(coro), options.cancel_main_on_sigint, "run()");
    else
      result.emplace(
          detail::run_main(loop, std::move(coro), options.cancel_main_on_sigint, "run()"));
  } catch (...) {
    error = std::current_exception();
  }
  loop.close();
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

}  // namespace ringloop
