// Shared by the ports of CPython's test_asyncio (tests/cpython/): virtual time, so a test that
// sleeps for seconds in CPython runs in microseconds here, and the loop's clock in seconds.
// PORTED.md beside this file says, for each CPython test, where its port is or why there is none.
#pragma once

#include <chrono>
#include <type_traits>

#include <ringloop/ringloop.hpp>

namespace cpython_port {

inline const ringloop::LoopOptions kVirtual{.virtual_time = true};

// loop.time(): the running loop's clock (virtual under kVirtual), in seconds.
inline double loop_time() {
  auto since_epoch = ringloop::Loop::current()->now().time_since_epoch();
  return std::chrono::duration<double>(since_epoch).count();
}

// Runs a test's body the way IsolatedAsyncioTestCase does: on a fresh loop, here on virtual time.
template <class F>
void run_virtual(F body) {
  ringloop::run(body(), kVirtual);
}

// asyncio.wait_for(aw, timeout) as a coroutine object, for create_task() or for awaiting later:
// ringloop::wait_for() gives an awaiter, which lives in the awaiting frame and cannot move.
template <class T, class Rep, class Period>
ringloop::Coro<T> wait_for_coro(ringloop::Coro<T> inner, std::chrono::duration<Rep, Period> d) {
  if constexpr (std::is_void_v<T>) {
    co_await ringloop::wait_for(std::move(inner), d);
  } else {
    co_return co_await ringloop::wait_for(std::move(inner), d);
  }
}
template <class T, class Rep, class Period>
ringloop::Coro<T> wait_for_coro(ringloop::Task<T> inner, std::chrono::duration<Rep, Period> d) {
  if constexpr (std::is_void_v<T>) {
    co_await ringloop::wait_for(std::move(inner), d);
  } else {
    co_return co_await ringloop::wait_for(std::move(inner), d);
  }
}

}  // namespace cpython_port
