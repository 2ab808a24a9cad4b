// LoopHandle: how other threads talk to a loop (asyncio's call_soon_threadsafe and
// run_coroutine_threadsafe; Asio's executor with a work guard). Made on the loop's thread,
// then copied to any thread. While a handle lives, the loop keeps a read of an eventfd in flight
// and waits for posts instead of reporting that nothing can wake it; each post is an eventfd
// write that completes that read, so the loop wakes through its ring (no other thread touches
// the ring, no busy poll). Once the loop is closed, posts throw; a handle may outlive its loop.
//
//   LoopHandle handle(loop);                                  // on the loop's thread
//   std::thread worker([handle] {
//     handle.call_soon_threadsafe([] { ... });                // runs on the loop's thread
//     int v = handle.run_coroutine_threadsafe(compute()).get();
//   });
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <exception>
#include <future>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <ringloop/coro/task/task.hpp>
#include <ringloop/coro/time/call_later.hpp>

namespace ringloop {

class LoopHandle {
 public:
  // On the loop's thread.
  explicit LoopHandle(Loop& loop) : loop_(&loop), inbox_(loop.open_to_threads()) {}
  LoopHandle(const LoopHandle& other) noexcept : loop_(other.loop_), inbox_(other.inbox_) {
    if (inbox_) inbox_->add_keep_alive();
  }
  LoopHandle(LoopHandle&& other) noexcept
      : loop_(other.loop_), inbox_(std::exchange(other.inbox_, nullptr)) {}
  LoopHandle& operator=(LoopHandle other) noexcept {
    std::swap(loop_, other.loop_);
    std::swap(inbox_, other.inbox_);
    return *this;
  }
  ~LoopHandle() {
    if (inbox_) inbox_->drop_keep_alive();
  }

  // Any thread: fn() runs on the loop's thread, as a callback (call_soon) made there.
  template <class F>
  void call_soon_threadsafe(F&& fn) const {
    post_new(new Callback<std::decay_t<F>>(*loop_, std::forward<F>(fn)), "call_soon_threadsafe");
  }

  // Any thread: coro runs as a task on the loop; the future gets its result or exception (or
  // std::future_error broken_promise if the loop closes before the task could start).
  template <class T>
  std::future<T> run_coroutine_threadsafe(Coro<T> coro) const {
    auto promise = std::make_shared<std::promise<T>>();
    std::future<T> future = promise->get_future();
    call_soon_threadsafe(
        [promise, body = std::make_shared<Coro<T>>(std::move(coro)), loop = loop_]() mutable {
          create_task(*loop, forward_to(std::move(*body), std::move(promise)));
        });
    return future;
  }

  // Any thread: resumes a coroutine handle (of any coroutine type) on the loop's thread.
  void post(std::coroutine_handle<> handle) const {
    post_new(new Resume(*loop_, handle), "LoopHandle::post");
  }

  // Any thread: co_await handle.schedule() moves the awaiting coroutine onto the loop's thread.
  class ScheduleAwaiter : ThreadCompletion {
   public:
    explicit ScheduleAwaiter(const LoopHandle& handle) noexcept
        : ThreadCompletion(&on_loop_fn, &on_discard_fn), handle_(handle) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    void await_suspend(std::coroutine_handle<P> awaiting) {
      // A ringloop task belongs to its loop: moved to another loop's thread, its next await
      // would submit to its own ring from the wrong thread (issue #19).
      if (detail::TaskCore* task = detail::task_of(awaiting);
          task != nullptr && task->loop != handle_.loop_)
        throw std::logic_error("LoopHandle::schedule: a task of " + task->loop->name() +
                               " cannot move to " + handle_.loop_->name() +
                               "; a task stays on its loop (await LoopGroup's call() or "
                               "submit_to() to run work on another loop)");
      awaiting_ = awaiting;
      if (!handle_.inbox_ || !handle_.inbox_->post(*this))
        throw std::runtime_error("LoopHandle::schedule: the event loop is closed");
    }
    void await_resume() const {
      if (discarded_)
        throw std::runtime_error("LoopHandle::schedule: the event loop closed before it ran");
    }

   private:
    static void on_loop_fn(ThreadCompletion& c) noexcept {
      auto& self = static_cast<ScheduleAwaiter&>(c);
      self.handle_.loop_->schedule(self.awaiting_);
    }
    // The loop closed with this post queued: resume the coroutine where it is, with an error.
    static void on_discard_fn(ThreadCompletion& c) noexcept {
      auto& self = static_cast<ScheduleAwaiter&>(c);
      self.discarded_ = true;
      self.awaiting_.resume();
    }
    const LoopHandle& handle_;
    std::coroutine_handle<> awaiting_;
    bool discarded_ = false;
  };
  [[nodiscard]] ScheduleAwaiter schedule() const noexcept { return ScheduleAwaiter(*this); }

 private:
  template <class F>
  struct Callback : ThreadCompletion {
    Callback(Loop& l, F f) : ThreadCompletion(&run, &discard), loop(l), fn(std::move(f)) {}
    static void run(ThreadCompletion& c) noexcept {
      auto* self = static_cast<Callback*>(&c);
      // Starting a task only schedules it: allowed from the reaping loop.
      call_soon(self->loop, std::move(self->fn));
      delete self;
    }
    static void discard(ThreadCompletion& c) noexcept { delete static_cast<Callback*>(&c); }
    Loop& loop;
    F fn;
  };

  struct Resume : ThreadCompletion {
    Resume(Loop& l, std::coroutine_handle<> h) noexcept
        : ThreadCompletion(&run, &discard), loop(l), handle(h) {}
    static void run(ThreadCompletion& c) noexcept {
      auto* self = static_cast<Resume*>(&c);
      self->loop.schedule(self->handle);
      delete self;
    }
    // Never resumed: the coroutine stays suspended, as asyncio drops callbacks at close.
    static void discard(ThreadCompletion& c) noexcept { delete static_cast<Resume*>(&c); }
    Loop& loop;
    std::coroutine_handle<> handle;
  };

  template <class T>
  static Coro<void> forward_to(Coro<T> coro, std::shared_ptr<std::promise<T>> promise) {
    try {
      if constexpr (std::is_void_v<T>) {
        co_await std::move(coro);
        promise->set_value();
      } else {
        promise->set_value(co_await std::move(coro));
      }
    } catch (...) {
      promise->set_exception(std::current_exception());
    }
  }

  void post_new(ThreadCompletion* completion, const char* caller) const {
    if (!inbox_ || !inbox_->post(*completion)) {
      completion->on_discard(*completion);
      throw std::runtime_error(std::string(caller) + ": the event loop is closed");
    }
  }

  Loop* loop_;
  std::shared_ptr<ThreadInbox> inbox_;
};

}  // namespace ringloop
