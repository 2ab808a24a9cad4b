// Future<T>: asyncio's Future (loop.create_future()), for bridging callback APIs into
// coroutines: a completion handler calls set_result()/set_exception() and every coroutine that
// awaits the future resumes (on a later step, never inline). A Future is a shared handle: copies
// refer to the same result, so a callback can hold one. Loop thread only (another thread goes
// through LoopHandle::call_soon_threadsafe). wrap_future() awaits a std::future of another thread.
//
// As in asyncio, cancelling a task that awaits a future cancels the future itself (shield() a
// task that awaits it to keep it). Several awaiters of a copyable T each get a copy. For a
// move-only T (std::unique_ptr, Stream) the first awaiter to resume gets the value, moved out;
// any later co_await or result() throws InvalidStateError saying so.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringloop/coro/detail/waiter.hpp>
#include <ringloop/coro/errors.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/coro/thread/to_thread.hpp>
#include <ringloop/coro/time/call_later.hpp>

namespace ringloop {

template <class T = void>
class Future {
 public:
  class [[nodiscard]] Awaiter;

  // A pending future on the running loop (asyncio's loop.create_future()), or on loop.
  Future() : Future(Loop::running("Future")) {}
  explicit Future(Loop& loop) : shared_(std::make_shared<State>()) {
    shared_->loop = &loop;
    shared_->binding.bind(loop, "Future");
  }

  bool done() const noexcept { return shared_->done; }
  bool cancelled() const noexcept { return shared_->done && shared_->cancelled; }

  // Completes the future; InvalidStateError when it is done already (set or cancelled).
  template <class U = T>
  requires(!std::is_void_v<U>) void set_result(U value) {
    finish_check("set_result");
    shared_->value.emplace(std::move(value));
    complete();
  }
  template <class U = T>
  requires std::is_void_v<U>
  void set_result() {
    finish_check("set_result");
    complete();
  }
  void set_exception(std::exception_ptr error) {
    if (!error) throw std::invalid_argument("Future.set_exception(): a null exception_ptr");
    finish_check("set_exception");
    shared_->error = std::move(error);
    complete();
  }
  // asyncio's Future.cancel(msg): false when done; otherwise the future ends cancelled and its
  // awaiters get CancelledError carrying msg.
  bool cancel() { return cancel_with(std::nullopt); }
  bool cancel(std::string message) { return cancel_with(std::move(message)); }

  // The value (InvalidStateError while pending); rethrows the exception, or CancelledError.
  decltype(auto) result() const {
    require_done("result");
    throw_if_failed();
    if constexpr (!std::is_void_v<T>) {
      if (!shared_->value) throw moved_out();
      return static_cast<const T&>(*shared_->value);
    }
  }
  // The exception, or null; throws CancelledError when cancelled.
  std::exception_ptr exception() const {
    require_done("exception");
    if (shared_->cancelled) throw cancelled_error();
    return shared_->error;
  }

  // fn(future) runs on a later step of the loop once the future is done (at once scheduled if
  // it is done already), as asyncio calls done callbacks through call_soon.
  template <class F>
  requires std::invocable<F&, Future&>
  void add_done_callback(F fn) {
    std::function<void(Future&)> callback(std::move(fn));
    if (shared_->done)
      schedule_callback(std::move(callback));
    else
      shared_->callbacks.push_back(std::move(callback));
  }

  Awaiter operator co_await() const noexcept;

 private:
  struct State {
    detail::LoopBinding binding;
    detail::WaitList waiters;
    Loop* loop = nullptr;
    std::optional<detail::ResultOf<T>> value;
    std::exception_ptr error;
    std::optional<std::string> cancel_message;
    std::vector<std::function<void(Future&)>> callbacks;
    bool done = false;
    bool cancelled = false;
    ~State() { RINGLOOP_ASSERT(waiters.empty(), "a Future's state went while awaited"); }
  };

  void finish_check(const char* what) {
    shared_->binding.check(what);
    if (shared_->done)
      throw InvalidStateError(std::string("Future.") + what + "(): the future is done already (" +
                              (shared_->cancelled ? "cancelled" : "its result was set") + ")");
  }
  bool cancel_with(std::optional<std::string> message) {
    if (shared_->done) return false;
    shared_->cancelled = true;
    shared_->cancel_message = std::move(message);
    complete();
    return true;
  }
  void complete() {
    shared_->done = true;
    detail::Waiter::grant_all(shared_->waiters);
    auto callbacks = std::move(shared_->callbacks);
    for (auto& callback : callbacks) schedule_callback(std::move(callback));
  }
  void schedule_callback(std::function<void(Future&)> callback) {
    call_soon(*shared_->loop,
              [callback = std::move(callback), self = *this]() mutable { callback(self); });
  }
  void require_done(const char* what) const {
    if (!shared_->done)
      throw InvalidStateError(std::string("Future.") + what + "(): the future is not done yet");
  }
  CancelledError cancelled_error() const {
    return shared_->cancel_message ? CancelledError(*shared_->cancel_message) : CancelledError();
  }
  void throw_if_failed() const {
    if (shared_->cancelled) throw cancelled_error();
    if (shared_->error) std::rethrow_exception(shared_->error);
  }
  static InvalidStateError moved_out() {
    return InvalidStateError(
        "Future: the result is of a move-only type and was moved to the first coroutine that "
        "awaited it");
  }
  // One awaiter's share of the result: a copy, or the value itself for a move-only T.
  detail::ResultOf<T> take_for_awaiter() {
    throw_if_failed();
    if constexpr (std::is_void_v<T>) {
      return {};
    } else if constexpr (std::is_copy_constructible_v<T>) {
      return *shared_->value;
    } else {
      if (!shared_->value) throw moved_out();
      T value = std::move(*shared_->value);
      shared_->value.reset();
      return value;
    }
  }

  std::shared_ptr<State> shared_;
};

template <class T>
class [[nodiscard]] Future<T>::Awaiter : detail::Waiter {
 public:
  explicit Awaiter(Future future) noexcept : Waiter(&on_cancel), future_(std::move(future)) {}

  using Waiter::await_ready;

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    if (!start(awaiting, future_.shared_->binding, "Future")) return false;
    if (future_.shared_->done) {
      state_ = State::granted;
      return false;
    }
    enqueue(future_.shared_->waiters);
    return true;
  }

  T await_resume() {
    finish();
    if constexpr (std::is_void_v<T>)
      future_.take_for_awaiter();
    else
      return future_.take_for_awaiter();
  }

 private:
  // asyncio: cancelling a task that awaits a future cancels the future, with the task's cancel
  // message; every awaiter, this one included, is woken by that and sees CancelledError.
  static bool on_cancel(detail::CancelPoint& point) noexcept {
    auto& self = static_cast<Awaiter&>(static_cast<Waiter&>(point));
    if (self.state_ != State::queued) {
      // Done already, and this awaiter is scheduled: it ends with CancelledError and the result
      // is not taken (the future, done, stays as it is), as an asyncio task would.
      self.state_ = State::cancelled;
      return true;
    }
    std::optional<std::string> message;
    detail::TaskExtras* extras = self.task_ != nullptr ? self.task_->extras() : nullptr;
    if (extras != nullptr && extras->cancel_message) message = *extras->cancel_message;
    self.future_.cancel_with(std::move(message));
    return true;
  }

  Future future_;
};

template <class T>
typename Future<T>::Awaiter Future<T>::operator co_await() const noexcept {
  return Awaiter(*this);
}

// asyncio.wrap_future for a std::future, whose result comes from another thread: awaits it
// without blocking the loop. A std::future has no completion callback, so one worker of the
// default thread pool waits in get() meanwhile (as to_thread); cancelling the awaiter abandons
// that wait, and the worker is free once the future is ready.
template <class T>
Coro<T> wrap_future(std::future<T> future) {
  // The callable is a named local, not a temporary inside the co_await expression: g++ 12
  // destroyed that temporary's captured std::future once too often under ASan.
  auto wait = [pending = std::move(future)]() mutable { return pending.get(); };
  co_return co_await to_thread(std::move(wait));
}

}  // namespace ringloop
