// Coro<T>: asyncio's coroutine object. Calling a coroutine function runs nothing; co_await
// runs it in the awaiting task and hands back its result or rethrows its exception. A Coro runs
// once: awaiting it again is an error, as in asyncio. To run one concurrently, create_task() it.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <stdexcept>
#include <utility>

#include <ringloop/coro/detail/promise.hpp>

namespace ringloop {

template <class T = void>
class [[nodiscard]] Coro {
 public:
  using promise_type = detail::Promise<T>;
  using value_type = T;
  using Handle = std::coroutine_handle<promise_type>;

  Coro() noexcept = default;
  explicit Coro(Handle handle) noexcept : handle_(handle) {}
  Coro(Coro&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Coro& operator=(Coro&& other) noexcept {
    if (this != &other) {
      destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  ~Coro() { destroy(); }

  bool valid() const noexcept { return static_cast<bool>(handle_); }

  class Awaiter {
   public:
    explicit Awaiter(Handle child) noexcept : child_(child) {}

    bool await_ready() const {
      if (!child_)
        throw std::logic_error("co_await on an empty Coro (moved from, or default-constructed)");
      if (child_.promise().start != detail::StartState::not_started)
        throw std::logic_error(
            "a Coro was awaited twice: a coroutine object runs once; create_task() it to await "
            "its result from several places");
      return false;
    }

    template <class P>
    bool await_suspend(std::coroutine_handle<P> parent) noexcept {
      promise_type& child = child_.promise();
      child.await_from(parent, detail::task_of(parent));
      child.start = detail::StartState::inline_start;
      child_.resume();
      if (child.start == detail::StartState::finished_inline) return false;
      child.start = detail::StartState::running;
      return true;
    }

    T await_resume() { return child_.promise().take_result(); }

   private:
    Handle child_;
  };

  Awaiter operator co_await() const& noexcept { return Awaiter(handle_); }
  // Awaiting a temporary keeps the frame alive in the temporary until the full expression ends.
  Awaiter operator co_await() const&& noexcept { return Awaiter(handle_); }

  // Gives up ownership of the frame (create_task, gather and wait_for take it over).
  Handle release() noexcept { return std::exchange(handle_, {}); }

 private:
  void destroy() noexcept {
    if (handle_) std::exchange(handle_, {}).destroy();
  }

  Handle handle_;
};

namespace detail {
template <class T>
Coro<T> Promise<T>::get_return_object() noexcept {
  return Coro<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Coro<void> Promise<void>::get_return_object() noexcept {
  return Coro<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace ringloop
