// Runs any awaitable inside a Coro, so that combinators built on tasks (wait_for, gather) can
// take it: the awaitable is moved into the coroutine's frame and awaited there.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <type_traits>
#include <utility>

#include <ringloop/coro/task/coro.hpp>

namespace ringloop {
template <class T>
class Task;
}  // namespace ringloop

namespace ringloop::detail {

// An awaiter: what co_await uses as it is.
template <class A>
concept Awaiter = requires(std::remove_cvref_t<A> a) {
  a.await_resume();
};
// An awaitable that makes its awaiter when it is awaited, as an rvalue: wait_for's WaitFor,
// which can move (into a task, a gather) where the awaiter, once started, cannot.
template <class A>
concept AwaiterMaker = !Awaiter<A> && requires(std::remove_cvref_t<A> a) {
  std::move(a).operator co_await().await_resume();
};

template <class A>
struct AwaitResultOf {
  using type = decltype(std::declval<std::remove_cvref_t<A>&>().await_resume());
};
template <AwaiterMaker A>
struct AwaitResultOf<A> {
  using type =
      decltype(std::declval<std::remove_cvref_t<A>&&>().operator co_await().await_resume());
};
// What co_await of an A gives.
template <class A>
using AwaitResult = typename AwaitResultOf<A>::type;

template <class A>
inline constexpr bool is_coro_or_task = false;
template <class T>
inline constexpr bool is_coro_or_task<Coro<T>> = true;
template <class T>
inline constexpr bool is_coro_or_task<Task<T>> = true;

// Any awaitable other than a Coro or a Task (which combinators take as they are): an awaiter,
// or an awaitable that makes one.
template <class A>
concept PlainAwaiter = !is_coro_or_task<std::remove_cvref_t<A>> && (Awaiter<A> || AwaiterMaker<A>);

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
