// run() and run_until_complete(): the entry points (asyncio.run, loop.run_until_complete).
#pragma once

#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "coro/task.hpp"

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

template <class T>
T run_until_complete(Loop& loop, Coro<T> coro) {
  Loop::RunningScope running(loop);
  Task<T> main = create_task(loop, std::move(coro));
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

// What Loop::run_until_complete(coro) calls.
template <class T>
T loop_run_until_complete(Loop& loop, Coro<T> coro) {
  return run_until_complete(loop, std::move(coro));
}

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
      run_until_complete(loop, std::move(coro));
    else
      result.emplace(run_until_complete(loop, std::move(coro)));
  } catch (...) {
    error = std::current_exception();
  }
  loop.close();
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

}  // namespace ringloop
