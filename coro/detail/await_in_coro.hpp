// Runs any awaitable inside a Coro, so that combinators built on tasks (wait_for, gather) can
// take it: the awaitable is moved into the coroutine's frame and awaited there.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <type_traits>
#include <utility>

#include <ringloop/coro/task/coro.hpp>

namespace ringloop::detail {

template <class A>
using AwaitResult = decltype(std::declval<A>().await_resume());

template <class A>
concept PlainAwaiter = requires(A a) {
  a.await_resume();
};

template <class A, class R = AwaitResult<A>>
Coro<R> await_in_coro(A awaitable) {
  co_return co_await std::move(awaitable);
}

// A Coro as it is, any other awaitable run in one: what create_task, shield, wait and
// as_completed take.
template <class T>
Coro<T> as_coro(Coro<T> coro) noexcept {
  return coro;
}
template <PlainAwaiter A>
auto as_coro(A awaitable) {
  return await_in_coro(std::move(awaitable));
}

}  // namespace ringloop::detail
