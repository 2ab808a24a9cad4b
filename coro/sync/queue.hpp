// Queue<T>, LifoQueue<T>, PriorityQueue<T>: asyncio's queues, for coroutines of one loop.
// maxsize 0 means unbounded. put() waits while the queue is full, get() while nothing is there;
// put_nowait() and get_nowait() throw QueueFull and QueueEmpty instead. task_done() and join()
// count the items still being processed, as in asyncio.
//
// Fairness, and no item lost to a cancel: when an item arrives for a waiting getter, that item
// is promised to the first getter, which is scheduled and takes one when it runs; get_nowait()
// and later getters cannot take a promised item. Likewise a place freed for a waiting putter
// is promised to it. If a getter (putter) is cancelled after the promise and before it runs
// (and uncancel() did not take the cancel back), the promise goes on, when it resumes, to the
// next waiter, or back to the queue. qsize(), empty() and full()
// count what a get_nowait() or put_nowait() could take now: a promised item is not counted by
// qsize(), a promised place makes full() true (asyncio counts both, and lets *_nowait take them,
// sending the woken waiter back to the end of the line).
//
// shutdown(immediate) is Python 3.13's Queue.shutdown: from then on put and put_nowait throw
// QueueShutDown, and so does every putter waiting or woken; get and get_nowait take what is left,
// then throw QueueShutDown where they would wait or throw QueueEmpty, and waiting getters are
// woken to throw it. shutdown(true) also empties the queue at once (the items promised to woken
// getters too: they throw QueueShutDown), taking one unfinished task per item removed, so a
// join() returns once the items already got are task_done(). task_done and join are otherwise
// unchanged (3.13's are).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ringloop/coro/sync/event.hpp>

namespace ringloop {

// asyncio.QueueEmpty and asyncio.QueueFull.
class QueueEmpty : public std::runtime_error {
 public:
  QueueEmpty() : std::runtime_error("get_nowait(): the queue is empty") {}
};

class QueueFull : public std::runtime_error {
 public:
  explicit QueueFull(std::size_t maxsize)
      : std::runtime_error("put_nowait(): the queue is full (maxsize " + std::to_string(maxsize) +
                           ")") {}
};

// asyncio.QueueShutDown (3.13): the queue was shut down.
class QueueShutDown : public std::runtime_error {
 public:
  explicit QueueShutDown(const char* what)
      : std::runtime_error(std::string(what) + ": the queue is shut down") {}
};

namespace detail {

// The three orders. push() adds an item, pop() removes the next one.
template <class T>
class FifoBuffer {
 public:
  void push(T&& item) { items_.push_back(std::move(item)); }
  T pop() {
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }
  std::size_t size() const noexcept { return items_.size(); }
  void clear() noexcept { items_.clear(); }

 private:
  std::deque<T> items_;
};

template <class T>
class LifoBuffer {
 public:
  void push(T&& item) { items_.push_back(std::move(item)); }
  T pop() {
    T item = std::move(items_.back());
    items_.pop_back();
    return item;
  }
  std::size_t size() const noexcept { return items_.size(); }
  void clear() noexcept { items_.clear(); }

 private:
  std::vector<T> items_;
};

// Smallest first, as asyncio's heapq: a binary heap ordered by Compare (std::less: a min-heap).
template <class T, class Compare>
class PriorityBuffer {
 public:
  void push(T&& item) {
    items_.push_back(std::move(item));
    std::push_heap(items_.begin(), items_.end(), later_);
  }
  T pop() {
    std::pop_heap(items_.begin(), items_.end(), later_);
    T item = std::move(items_.back());
    items_.pop_back();
    return item;
  }
  std::size_t size() const noexcept { return items_.size(); }
  void clear() noexcept { items_.clear(); }

 private:
  struct Later {
    Compare compare;
    bool operator()(const T& a, const T& b) const { return compare(b, a); }
  };
  std::vector<T> items_;
  Later later_{};
};

template <class T, class Buffer>
class BasicQueue {
 public:
  class [[nodiscard]] GetAwaiter;
  class [[nodiscard]] PutAwaiter;

  explicit BasicQueue(std::size_t maxsize = 0) : maxsize_(maxsize) { finished_.set(); }
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;
  ~BasicQueue() {
    RINGLOOP_ASSERT(getters_.empty() && putters_.empty() && promised_items_ == 0 &&
                        promised_places_ == 0 && finished_.waiters_.empty(),
                    "a Queue was destroyed while coroutines wait on it (get, put or join); keep "
                    "it alive until they have finished (or cancel and await them)");
  }

  std::size_t maxsize() const noexcept { return maxsize_; }
  // Items a get could take now.
  std::size_t qsize() const noexcept { return buffer_.size() - promised_items_; }
  bool empty() const noexcept { return qsize() == 0; }
  // True when a put would wait.
  bool full() const noexcept { return free_places() == 0; }

  // co_await queue.put(item): waits for a free place.
  PutAwaiter put(T item) { return PutAwaiter(*this, std::move(item)); }
  // co_await queue.get(): waits for an item and returns it.
  GetAwaiter get() noexcept { return GetAwaiter(*this); }

  void put_nowait(T item) {
    binding_.check("Queue.put_nowait");
    if (shut_down_) throw QueueShutDown("Queue.put_nowait");
    if (free_places() == 0) throw QueueFull(maxsize_);
    add(std::move(item));
  }
  T get_nowait() {
    binding_.check("Queue.get_nowait");
    if (qsize() == 0) {
      if (shut_down_) throw QueueShutDown("Queue.get_nowait");
      throw QueueEmpty();
    }
    return take();
  }

  // Python 3.13's Queue.shutdown(immediate): see the top of this file.
  void shutdown(bool immediate = false) {
    binding_.check("Queue.shutdown");
    shut_down_ = true;
    if (immediate && !immediate_) {
      immediate_ = true;
      std::size_t removed = buffer_.size();
      buffer_.clear();
      promised_items_ = 0;  // the woken getters see immediate_ and throw
      unfinished_ -= std::min(removed, unfinished_);
      if (unfinished_ == 0) finished_.set();
    }
    while (!getters_.empty()) static_cast<GetAwaiter&>(getters_.front()).wake_for_shutdown();
    while (!putters_.empty()) static_cast<PutAwaiter&>(putters_.front()).wake_for_shutdown();
  }
  bool is_shut_down() const noexcept { return shut_down_; }

  // An item got earlier is processed; join() returns once every item put has been.
  void task_done() {
    binding_.check("Queue.task_done");
    if (unfinished_ == 0)
      throw std::logic_error(
          "Queue.task_done(): called more times than there were items put in the queue");
    if (--unfinished_ == 0) finished_.set();
  }
  // co_await queue.join(): waits until task_done() has been called for every item put.
  Event::WaitAwaiter join() noexcept { return finished_.wait(); }

 private:
  std::size_t free_places() const noexcept {
    if (maxsize_ == 0) return 1;  // unbounded: always room
    std::size_t taken = buffer_.size() + promised_places_;
    return taken >= maxsize_ ? 0 : maxsize_ - taken;
  }

  void add(T&& item) {
    buffer_.push(std::move(item));
    ++unfinished_;
    finished_.clear();
    promise_items();
  }
  T take() {
    T item = buffer_.pop();
    promise_places();
    return item;
  }

  // Each item nobody was promised goes to a waiting getter, first come first served.
  void promise_items() noexcept {
    while (qsize() > 0 && Waiter::grant_first(getters_)) ++promised_items_;
  }
  void promise_places() noexcept {
    while (free_places() > 0 && Waiter::grant_first(putters_)) ++promised_places_;
  }

  Buffer buffer_;
  std::size_t maxsize_;
  std::size_t promised_items_ = 0;   // in buffer_, for getters scheduled to resume
  std::size_t promised_places_ = 0;  // free, for putters scheduled to resume
  std::size_t unfinished_ = 0;       // put, and not yet task_done()
  Event finished_;                   // set while unfinished_ == 0
  LoopBinding binding_;
  bool shut_down_ = false;
  bool immediate_ = false;  // shut down with immediate: the items promised were removed
  WaitList getters_;        // wait only while nothing is there to take
  WaitList putters_;        // wait only while there is no free place
};

template <class T, class Buffer>
class [[nodiscard]] BasicQueue<T, Buffer>::GetAwaiter : Waiter {
 public:
  explicit GetAwaiter(BasicQueue& queue) noexcept : Waiter(&cancel_unless_granted), queue_(queue) {}

  using Waiter::await_ready;

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    if (!start(awaiting, queue_.binding_, "Queue.get")) return false;
    if (queue_.qsize() == 0 && queue_.shut_down_) throw QueueShutDown("Queue.get");
    if (queue_.qsize() > 0) {
      ++queue_.promised_items_;  // taken in await_resume, like a woken getter's
      state_ = State::granted;
      return false;
    }
    enqueue(queue_.getters_);
    return true;
  }

  T await_resume() {
    // Without an item: woken by shutdown(), or its item removed by shutdown(immediate).
    bool no_item = shutdown_woken_ || queue_.immediate_;
    if (refuse_grant_if_cancelled() && !no_item) {
      // Promised an item it will not take: the item goes to the next getter, or stays.
      --queue_.promised_items_;
      queue_.promise_items();
    }
    finish();
    if (no_item) throw QueueShutDown("Queue.get");
    --queue_.promised_items_;
    return queue_.take();
  }

 private:
  friend class BasicQueue;

  void wake_for_shutdown() noexcept {
    shutdown_woken_ = true;
    list_->erase(*this);
    wake(State::granted);
  }

  bool shutdown_woken_ = false;
  BasicQueue& queue_;
};

template <class T, class Buffer>
class [[nodiscard]] BasicQueue<T, Buffer>::PutAwaiter : Waiter {
 public:
  PutAwaiter(BasicQueue& queue, T item)
      : Waiter(&cancel_unless_granted), queue_(queue), item_(std::move(item)) {}

  using Waiter::await_ready;

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    if (!start(awaiting, queue_.binding_, "Queue.put")) return false;
    if (queue_.shut_down_) throw QueueShutDown("Queue.put");
    if (queue_.free_places() > 0) {
      ++queue_.promised_places_;
      state_ = State::granted;
      return false;
    }
    enqueue(queue_.putters_);
    return true;
  }

  void await_resume() {
    bool cancelled = refuse_grant_if_cancelled();
    bool promised = !shutdown_woken_;  // a place, unless woken by shutdown()
    if (promised && (cancelled || queue_.shut_down_)) {
      // Promised a place it will not fill: the place goes to the next putter, or stays free.
      --queue_.promised_places_;
      promised = false;
      queue_.promise_places();
    }
    finish();
    if (!promised) throw QueueShutDown("Queue.put");
    --queue_.promised_places_;
    queue_.add(std::move(item_));
  }

 private:
  friend class BasicQueue;

  void wake_for_shutdown() noexcept {
    shutdown_woken_ = true;
    list_->erase(*this);
    wake(State::granted);
  }

  bool shutdown_woken_ = false;
  BasicQueue& queue_;
  T item_;  // in the awaiter, in the putting coroutine's frame, until there is room
};

}  // namespace detail

// First in, first out (asyncio.Queue).
template <class T>
class Queue : public detail::BasicQueue<T, detail::FifoBuffer<T>> {
 public:
  using detail::BasicQueue<T, detail::FifoBuffer<T>>::BasicQueue;
};

// Last in, first out (asyncio.LifoQueue).
template <class T>
class LifoQueue : public detail::BasicQueue<T, detail::LifoBuffer<T>> {
 public:
  using detail::BasicQueue<T, detail::LifoBuffer<T>>::BasicQueue;
};

// Smallest first (asyncio.PriorityQueue); Compare orders the items as std::less does.
template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, detail::PriorityBuffer<T, Compare>> {
 public:
  using detail::BasicQueue<T, detail::PriorityBuffer<T, Compare>>::BasicQueue;
};

}  // namespace ringloop
