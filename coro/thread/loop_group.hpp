// LoopGroup: thread-per-core. N threads, each running one Loop with its own ring, optionally
// pinned to a CPU, started and stopped together (Seastar's shards, glommio's executors). Nothing
// is shared between the loops but messages: a coroutine on one loop runs work on another with
// co_await group.loop(i).call(fn) or submit_to(i, factory), and resumes on its own loop.
//
//   ringloop::run_per_core(2, [](std::size_t i) -> ringloop::Coro<> {
//     int v = co_await ringloop::submit_to(1 - i, [] { return compute(); });  // a Coro<int>
//     ...
//   });
//
// Invariants: run() returns only when every loop's main coroutine has finished and every loop
// has closed by its own rules (tasks cancelled and awaited, nothing in flight: no doorbell or
// call owed); until every main has finished, every loop keeps serving calls from the others.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringloop/coro/task/task.hpp>
#include <ringloop/coro/thread/cross_loop_call.hpp>

namespace ringloop {

// How a LoopGroup is set up.
struct LoopGroupOptions {
  // How many loops; 0 means one per CPU in `cpus`, or else one per CPU this process may use.
  std::size_t loops = 0;
  // When not empty, loop i runs pinned to CPU cpus[i] (sched_setaffinity); one per loop. A CPU
  // the process may not use is refused by the constructor, with an error naming it.
  std::vector<int> cpus{};
  // When a main coroutine fails: cancel_others cancels every other loop's main (the group stops
  // as one); let_others_finish lets them run to their end. Either way run() rethrows the first
  // failure once every loop has closed, and reports the others through their loop's exception
  // handler.
  enum class OnError : std::uint8_t { cancel_others, let_others_finish };
  OnError on_error = OnError::cancel_others;
  // Each loop's options; LoopOptions::name is set per loop ("group-loop-I").
  LoopOptions loop{};
};

class LoopGroup {
 public:
  // One loop of the group, as the others see it: where cross-loop calls go.
  class Member {
   public:
    // co_await group.loop(i).call(fn): fn() runs on loop i (as a task's step there); the caller
    // resumes on its own loop with fn's result or exception. fn may hold move-only state and
    // return a move-only value. Cancelling the caller cancels that task and waits for its end.
    template <class F>
    auto call(F fn) {
      using R = std::invoke_result_t<F&&>;
      return detail::CrossCallAwaiter<R, F, false>(target("call"), std::move(fn), "call");
    }
    // co_await group.loop(i).submit(factory): factory() is called on loop i and the Coro it
    // returns runs there as a task; the caller resumes on its own loop with its value or
    // exception. Cancelling the caller cancels the remote task, and the caller still waits for
    // it to end (asyncio's rule for awaiting a task).
    template <class F>
    auto submit(F factory) {
      using R = typename std::invoke_result_t<F&&>::value_type;
      return detail::CrossCallAwaiter<R, F, true>(target("submit_to"), std::move(factory),
                                                  "submit_to");
    }
    std::size_t index() const noexcept { return index_; }
    // "group-loop-I": the loop's name (Loop::name()) in every message.
    const std::string& name() const noexcept { return name_; }

   private:
    friend class LoopGroup;
    explicit Member(std::size_t index);
    detail::CallTarget target(const char* what) const;

    std::size_t index_;
    std::string name_;
    // Set by the loop's thread before the group's start barrier and cleared after every thread
    // has ended, so other threads read them without a lock while the group runs.
    Loop* loop_ = nullptr;
    std::shared_ptr<ThreadInbox> inbox_;
    // Loop thread only.
    detail::TaskCore* main_ = nullptr;
    bool group_done_ = false;
    std::coroutine_handle<> done_waiter_;
    struct Message : ThreadCompletion {
      Message(Member& m, Fn fn) noexcept : ThreadCompletion(fn, &ignore), member(m) {}
      static void ignore(ThreadCompletion&) noexcept {}
      Member& member;
    };
    Message cancel_main_{*this, &on_cancel_main};
    Message group_done_message_{*this, &on_group_done};
    static void on_cancel_main(ThreadCompletion& completion) noexcept;
    static void on_group_done(ThreadCompletion& completion) noexcept;
  };

  // Checks the options (CPUs included); starts nothing: run() starts the threads.
  explicit LoopGroup(LoopGroupOptions options = {});
  LoopGroup(const LoopGroup&) = delete;
  LoopGroup& operator=(const LoopGroup&) = delete;
  ~LoopGroup();

  std::size_t size() const noexcept { return members_.size(); }
  // Loop `index` of the group; throws std::out_of_range past the end.
  Member& loop(std::size_t index);

  // Starts one thread per loop, each running main(i) (a Coro<void>) as its loop's main task;
  // returns when every main has finished and every loop has closed. Rethrows the first failure
  // (see LoopGroupOptions::on_error). From a thread that runs no loop of this group.
  template <class Main>
  void run(Main main) {
    run_erased([main = std::move(main)](std::size_t index) -> Coro<void> { return main(index); });
  }

  // The group whose loop runs on this thread; throws std::logic_error naming the caller when
  // this thread is not one of a running group's.
  static LoopGroup& current(const char* caller);
  // The index of this thread's loop in its group (same error).
  static std::size_t current_index(const char* caller);

 private:
  using MainFn = std::function<Coro<void>(std::size_t)>;
  void run_erased(MainFn main);
  void run_loop_thread(std::size_t index, const MainFn& main, std::latch& started);
  Coro<void> run_main(Member& member, const MainFn& main);
  static Coro<void> wait_group_done(Member& member);
  void main_finished(Member& member) noexcept;
  void main_failed(Member& member, const std::exception_ptr& error) noexcept;

  LoopGroupOptions options_;
  std::vector<std::unique_ptr<Member>> members_;
  std::mutex mutex_;
  std::exception_ptr first_error_;  // under mutex_
  std::atomic<bool> start_failed_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> mains_left_{0};
  bool running_ = false;
  inline static constinit thread_local LoopGroup* current_group_ = nullptr;
  inline static constinit thread_local std::size_t current_index_ = 0;
};

// Runs main(i) on each of n loops, loop i pinned to the i-th CPU this process may use (throws
// std::invalid_argument when there are fewer than n). Returns when all have finished.
template <class Main>
void run_per_core(std::size_t n, Main main, LoopGroupOptions options = {});

namespace detail {
LoopGroupOptions per_core_options(std::size_t n, LoopGroupOptions options);
}  // namespace detail

template <class Main>
void run_per_core(std::size_t n, Main main, LoopGroupOptions options) {
  LoopGroup group(detail::per_core_options(n, std::move(options)));
  group.run(std::move(main));
}

// Seastar's smp::submit_to, in the running group: co_await submit_to(i, factory) runs the Coro
// factory() returns as a task on loop i (see LoopGroup::Member::submit).
template <class F>
auto submit_to(std::size_t index, F factory) {
  return LoopGroup::current("submit_to").loop(index).submit(std::move(factory));
}

}  // namespace ringloop
