// ThreadPool: worker threads for blocking calls (asyncio's default executor). A job runs on a
// worker, then goes back to its loop through Loop::post_from_thread; the pool knows nothing of
// coroutines. The default pool starts on first use with min(32, cores + 4) threads, as Python's.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

#include <ringloop/loop/loop.hpp>

namespace ringloop {

// A unit of work for the pool; run() is called on a worker thread.
struct ThreadJob : ThreadCompletion {
  using RunFn = void (*)(ThreadJob&) noexcept;
  ThreadJob(RunFn run_fn, Fn on_loop_fn) noexcept : ThreadCompletion(on_loop_fn), run(run_fn) {}
  RunFn run;
  ThreadJob* next_job = nullptr;
};

class ThreadPool {
 public:
  explicit ThreadPool(std::size_t threads);
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  // Lets the queued jobs finish, then joins the workers.
  ~ThreadPool();

  void post(ThreadJob& job);
  std::size_t size() const noexcept { return workers_.size(); }

 private:
  void work();

  std::mutex mutex_;
  std::condition_variable wake_;
  ThreadJob* head_ = nullptr;
  ThreadJob* tail_ = nullptr;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

ThreadPool& default_executor();

}  // namespace ringloop
