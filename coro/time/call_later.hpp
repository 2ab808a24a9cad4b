// call_soon(fn), call_later(delay, fn), call_at(when, fn): asyncio's callbacks. Each call is a
// small task: call_soon's runs fn on the loop's next step, in the order of the calls; call_later
// and call_at first sleep on one IORING_OP_TIMEOUT with an absolute deadline. The TimerHandle
// cancels it (the timeout SQE is removed) as long as fn has not run. An exception escaping fn
// goes to the loop's exception handler (by default a line on stderr) and does not stop the loop,
// as in asyncio.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include <ringloop/coro/exception_handler.hpp>
#include <ringloop/coro/task/task.hpp>
#include <ringloop/coro/time/sleep.hpp>

namespace ringloop {

class TimerHandle {
 public:
  TimerHandle() noexcept = default;
  TimerHandle(Task<void> task, std::int64_t when_ns) noexcept
      : task_(std::move(task)), when_ns_(when_ns) {}

  // Prevents the call; false when fn has run already (or the handle was cancelled before).
  bool cancel() {
    return task_.valid() && !task_.done() && task_.cancelling() == 0 && task_.cancel();
  }
  bool cancelled() const { return task_.valid() && task_.cancelled(); }
  // True once fn has run (or was cancelled).
  bool done() const { return task_.valid() && task_.done(); }
  // When the call is due, on the monotonic clock (for call_soon: when it was made).
  std::chrono::steady_clock::time_point when() const noexcept {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(when_ns_));
  }

 private:
  Task<void> task_;
  std::int64_t when_ns_ = 0;
};

namespace detail {

template <class F>
Coro<void> run_callback(std::int64_t deadline_ns, F fn) {
  if (deadline_ns != 0) co_await SleepAwaiter(deadline_ns);
  try {
    std::invoke(fn);
  } catch (...) {
    report_exception(Loop::current(), {"exception in callback", std::current_exception(), ""});
  }
}

template <class F>
TimerHandle schedule_callback(Loop& loop, std::int64_t deadline_ns, F&& fn) {
  std::int64_t when = deadline_ns != 0 ? deadline_ns : now_ns();
  return TimerHandle(
      create_task(loop, run_callback<std::decay_t<F>>(deadline_ns, std::forward<F>(fn))), when);
}

}  // namespace detail

template <class F>
TimerHandle call_soon(Loop& loop, F&& fn) {
  return detail::schedule_callback(loop, 0, std::forward<F>(fn));
}
template <class F>
TimerHandle call_soon(F&& fn) {
  return call_soon(Loop::running("call_soon"), std::forward<F>(fn));
}

template <class Rep, class Period, class F>
TimerHandle call_later(Loop& loop, std::chrono::duration<Rep, Period> delay, F&& fn) {
  // A zero or negative delay still waits for the loop's next step (asyncio: call_later(0)).
  std::int64_t deadline = std::max<std::int64_t>(detail::deadline_after(delay, "call_later"), 1);
  return detail::schedule_callback(loop, deadline, std::forward<F>(fn));
}
template <class Rep, class Period, class F>
TimerHandle call_later(std::chrono::duration<Rep, Period> delay, F&& fn) {
  return call_later(Loop::running("call_later"), delay, std::forward<F>(fn));
}

template <class Duration, class F>
TimerHandle call_at(Loop& loop, std::chrono::time_point<std::chrono::steady_clock, Duration> when,
                    F&& fn) {
  std::int64_t deadline = std::max<std::int64_t>(detail::deadline_at(when, "call_at"), 1);
  return detail::schedule_callback(loop, deadline, std::forward<F>(fn));
}
template <class Duration, class F>
TimerHandle call_at(std::chrono::time_point<std::chrono::steady_clock, Duration> when, F&& fn) {
  return call_at(Loop::running("call_at"), when, std::forward<F>(fn));
}

}  // namespace ringloop
