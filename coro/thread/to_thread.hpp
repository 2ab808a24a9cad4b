// to_thread(fn, args...): runs a blocking call on a worker thread and resumes the awaiting
// coroutine on the loop's thread with its result or exception (asyncio.to_thread).
// run_in_executor(pool, fn, args...) does the same on a pool of the caller's.
//
// The job's state is on the heap, not in the awaiter: a cancelled awaiter resumes at once with
// CancelledError and abandons the result (asyncio's rule), while the worker may still be
// running the call and writing its result. The state is freed on the loop's thread when the
// worker's completion comes back, or by the awaiter once it has read the result.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <exception>
#include <functional>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include <ringloop/coro/detail/promise.hpp>
#include <ringloop/coro/thread/thread_pool.hpp>

namespace ringloop {
namespace detail {

template <class Call, class R>
struct ThreadJobState : ThreadJob {
  explicit ThreadJobState(Call c) : ThreadJob(&run_call, &on_loop_done), call(std::move(c)) {}

  static void run_call(ThreadJob& job) noexcept {
    auto& self = static_cast<ThreadJobState&>(job);
    try {
      if constexpr (std::is_void_v<R>)
        std::apply(std::move(self.call.first), std::move(self.call.second));
      else
        self.value.emplace(std::apply(std::move(self.call.first), std::move(self.call.second)));
    } catch (...) {
      self.error = std::current_exception();
    }
    self.loop->post_from_thread(self);
  }

  // On the loop's thread, once the call has returned.
  static void on_loop_done(ThreadCompletion& completion) noexcept {
    auto& self = static_cast<ThreadJobState&>(static_cast<ThreadJob&>(completion));
    if (self.abandoned) {
      delete &self;
      return;
    }
    self.finished = true;
    self.loop->schedule(self.awaiting);
  }

  Call call;
  Loop* loop = nullptr;
  std::coroutine_handle<> awaiting;
  std::optional<ResultOf<R>> value;
  std::exception_ptr error;
  bool finished = false;   // loop thread only
  bool abandoned = false;  // loop thread only: the awaiter was cancelled and has gone on
};

template <class F, class... Args>
using CallResult = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;

template <class F, class... Args>
class [[nodiscard]] ToThreadAwaiter : CancelPoint {
  using R = CallResult<F, Args...>;
  using Call = std::pair<std::decay_t<F>, std::tuple<std::decay_t<Args>...>>;
  using State = ThreadJobState<Call, R>;

 public:
  ToThreadAwaiter(ThreadPool& pool, F&& fn, Args&&... args)
      : CancelPoint(&on_cancel),
        pool_(pool),
        state_(new State(Call(std::forward<F>(fn),
                              std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)))) {}
  ToThreadAwaiter(ToThreadAwaiter&& other) noexcept
      : CancelPoint(&on_cancel), pool_(other.pool_), state_(std::exchange(other.state_, nullptr)) {}
  ToThreadAwaiter& operator=(ToThreadAwaiter&&) = delete;
  ~ToThreadAwaiter() {
    // Never posted (not awaited), or finished and read: ours to free. A posted state that was
    // abandoned is freed by the loop when the worker is done with it.
    if (state_ != nullptr && (!posted_ || state_->finished)) delete state_;
  }

  bool await_ready() const noexcept { return false; }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    task_ = task_of(awaiting);
    if (task_ != nullptr && task_->must_cancel) return false;
    Loop& loop = loop_for(task_, "to_thread");
    state_->loop = &loop;
    state_->awaiting = awaiting;
    loop.expect_thread_completion();
    posted_ = true;
    pool_.post(*state_);
    if (task_ != nullptr) task_->suspend_on(*this);
    return true;
  }

  ResultOf<R> await_resume() {
    if (task_ != nullptr) task_->resumed();
    if (cancel_taken_) throw detail::cancelled_error(task_);
    if (state_->error) std::rethrow_exception(state_->error);
    if constexpr (std::is_void_v<R>)
      return {};
    else
      return std::move(*state_->value);
  }

 private:
  // The call cannot be stopped on its thread: the awaiter lets it go and resumes now.
  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<ToThreadAwaiter&>(point);
    if (self.state_->finished) return false;  // its resume is scheduled already
    self.cancel_taken_ = true;
    self.state_->abandoned = true;
    self.state_->loop->schedule(self.state_->awaiting);
    self.state_ = nullptr;  // the loop frees it when the worker is done
    return true;
  }

  ThreadPool& pool_;
  State* state_;
  TaskCore* task_ = nullptr;
  bool posted_ = false;
  bool cancel_taken_ = false;
};

}  // namespace detail

// Runs fn(args...) on the default thread pool; the awaiting coroutine resumes on its loop.
template <class F, class... Args>
detail::ToThreadAwaiter<F, Args...> to_thread(F&& fn, Args&&... args) {
  return {default_executor(), std::forward<F>(fn), std::forward<Args>(args)...};
}

// Runs fn(args...) on pool (asyncio's loop.run_in_executor).
template <class F, class... Args>
detail::ToThreadAwaiter<F, Args...> run_in_executor(ThreadPool& pool, F&& fn, Args&&... args) {
  return {pool, std::forward<F>(fn), std::forward<Args>(args)...};
}

}  // namespace ringloop
