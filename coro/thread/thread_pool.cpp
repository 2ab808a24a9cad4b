#include <ringloop/coro/thread/thread_pool.hpp>

#include <algorithm>
#include <stdexcept>

namespace ringloop {

ThreadPool::ThreadPool(std::size_t threads) {
  if (threads == 0) throw std::invalid_argument("ThreadPool: at least one thread is needed");
  workers_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::post(ThreadJob& job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job.next_job = nullptr;
    (head_ == nullptr ? head_ : tail_->next_job) = &job;
    tail_ = &job;
  }
  wake_.notify_one();
}

void ThreadPool::work() {
  for (;;) {
    ThreadJob* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return head_ != nullptr || stopping_; });
      if (head_ == nullptr) return;  // stopping, and nothing left to run
      job = head_;
      head_ = job->next_job;
    }
    job->run(*job);
  }
}

ThreadPool& default_executor() {
  static ThreadPool pool(std::min<std::size_t>(32, std::thread::hardware_concurrency() + 4));
  return pool;
}

}  // namespace ringloop
