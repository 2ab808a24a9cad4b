// Channel<T>: a bounded queue between loops (tokio's mpsc::channel, for a LoopGroup): coroutines
// on any loops send, one coroutine at a time receives; both ends await (a full channel holds its
// senders back, an empty one its receiver), and close() ends it: the receiver drains what was
// sent, then gets ChannelClosed, as do senders.
//
// Invariants: the items and the waiters' lists are guarded by one mutex, held for a few moves;
// a waiter is woken by a ThreadCompletion posted to its own loop (a MSG_RING doorbell or the
// eventfd), which its loop expects from the moment it suspends, so no loop exits or closes
// with a wake-up owed; a woken waiter has what it waited for (a place, or an item) before it
// resumes, and a cancel that comes after that gives it back (the item returns to the front).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <ringloop/coro/task/task.hpp>

namespace ringloop {

// Sending to, or receiving from (once drained), a closed Channel.
class ChannelClosed : public std::runtime_error {
 public:
  explicit ChannelClosed(const char* what)
      : std::runtime_error(std::string(what) + ": the channel is closed") {}
};

template <class T>
class Channel {
 public:
  // capacity: how many items may wait in the channel (at least 1).
  explicit Channel(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("Channel: the capacity must be at least 1");
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  class SendAwaiter;
  class ReceiveAwaiter;
  // co_await channel.send(value): queues value, waiting while the channel is full; throws
  // ChannelClosed once closed. A cancelled send that was still waiting sent nothing.
  [[nodiscard]] SendAwaiter send(T value) { return SendAwaiter(*this, std::move(value)); }
  // co_await channel.receive(): the oldest item, waiting while none is there; throws
  // ChannelClosed once the channel is closed and drained. One receiver at a time.
  [[nodiscard]] ReceiveAwaiter receive() { return ReceiveAwaiter(*this); }

  // Any thread. Wakes every waiter: senders and an idle receiver get ChannelClosed; items
  // already sent are still received. Idempotent.
  void close() {
    Waiting* woken = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
      if (receiver_ != nullptr) {
        receiver_->closed = true;
        receiver_->next_woken = std::exchange(woken, receiver_);
        receiver_ = nullptr;
      }
      while (senders_head_ != nullptr) {
        Waiting* sender = pop_sender();
        sender->closed = true;
        sender->next_woken = std::exchange(woken, sender);
      }
    }
    wake_all(woken);
  }

  bool closed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return items_.size();
  }

 private:
  // A suspended end: woken by posting `wake` to its loop's inbox.
  struct Waiting : ThreadCompletion {
    Waiting() noexcept : ThreadCompletion(&on_woken, nullptr) {}
    static void on_woken(ThreadCompletion& completion) noexcept {
      auto& self = static_cast<Waiting&>(completion);
      self.loop->schedule(self.awaiting);
    }
    Loop* loop = nullptr;
    std::shared_ptr<ThreadInbox> inbox;
    std::coroutine_handle<> awaiting;
    Waiting* next_waiting = nullptr;  // in the senders' FIFO
    Waiting* next_woken = nullptr;    // in a list of those to wake
    T* value = nullptr;               // a sender's value, moved in when a place frees
    bool queued = false;              // under the mutex
    bool closed = false;              // woken by close()
  };

  // Suspends `waiting` on the current loop: its loop expects the wake-up from now on.
  void prepare_wait(Waiting& waiting, Loop& loop, std::coroutine_handle<> awaiting) {
    waiting.loop = &loop;
    waiting.inbox = loop.thread_inbox();
    waiting.awaiting = awaiting;
  }

  static void wake(Waiting& waiting) noexcept {
    bool posted = false;
    try {
      if (Loop* here = Loop::current()) posted = here->post_to(waiting.inbox, waiting);
    } catch (...) {
    }
    if (!posted) (void)waiting.inbox->post(waiting);  // expected: never refused
  }
  static void wake_all(Waiting* list) noexcept {
    while (list != nullptr) wake(*std::exchange(list, list->next_woken));
  }

  void push_sender(Waiting& sender) noexcept {
    sender.next_waiting = nullptr;
    (senders_head_ == nullptr ? senders_head_ : senders_tail_->next_waiting) = &sender;
    senders_tail_ = &sender;
    sender.queued = true;
  }
  Waiting* pop_sender() noexcept {
    Waiting* first = senders_head_;
    senders_head_ = first->next_waiting;
    if (senders_head_ == nullptr) senders_tail_ = nullptr;
    first->queued = false;
    return first;
  }
  bool remove_sender(Waiting& sender) noexcept {
    if (!sender.queued) return false;
    Waiting* previous = nullptr;
    for (Waiting* w = senders_head_; w != nullptr; previous = w, w = w->next_waiting) {
      if (w != &sender) continue;
      (previous == nullptr ? senders_head_ : previous->next_waiting) = w->next_waiting;
      if (senders_tail_ == w) senders_tail_ = previous;
      sender.queued = false;
      return true;
    }
    return false;
  }

  // The receiver's next item, taken under the lock, and the waiting sender whose value refills
  // the place it left (to be woken after the unlock).
  Waiting* take_item(std::optional<T>& item) {
    item.emplace(std::move(items_.front()));
    items_.pop_front();
    if (senders_head_ == nullptr) return nullptr;
    Waiting* sender = pop_sender();
    items_.push_back(std::move(*sender->value));
    return sender;
  }

  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<T> items_;
  bool closed_ = false;
  Waiting* receiver_ = nullptr;
  Waiting* senders_head_ = nullptr;  // FIFO; each holds its value until it is moved in
  Waiting* senders_tail_ = nullptr;

  // What both ends' awaiters do around their step under the lock: before it, a cancel already
  // pending ends the await without touching the channel; after it, the end it unblocked is
  // woken (outside the lock), and a wait is announced to the loop (the wake-up comes from
  // another thread) and to the task (a cancel reaches on_cancel).
  class AwaiterBase : protected detail::CancelPoint {
   protected:
    using CancelPoint::CancelPoint;

    // The awaiting task's loop, or nullptr when a cancel is pending.
    template <class P>
    Loop* begin(std::coroutine_handle<P> awaiting, const char* what) {
      task_ = detail::task_of(awaiting);
      if (task_ != nullptr && task_->must_cancel) return nullptr;
      return &detail::loop_for(task_, what);
    }
    // await_suspend's answer.
    bool end(Loop& loop, Waiting* to_wake, bool waits) {
      if (to_wake != nullptr) wake(*to_wake);
      if (!waits) return false;
      loop.expect_thread_completion();
      if (task_ != nullptr) task_->suspend_on(*this);
      return true;
    }

    detail::TaskCore* task_ = nullptr;
  };

 public:
  class SendAwaiter : AwaiterBase {
    using AwaiterBase::task_;  // a dependent base: its names are not found by themselves

   public:
    SendAwaiter(Channel& channel, T value)
        : AwaiterBase(&on_cancel), channel_(channel), value_(std::move(value)) {}
    SendAwaiter(SendAwaiter&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
        : AwaiterBase(&on_cancel), channel_(other.channel_), value_(std::move(other.value_)) {}
    SendAwaiter& operator=(SendAwaiter&&) = delete;

    bool await_ready() const noexcept { return false; }

    template <class P>
    bool await_suspend(std::coroutine_handle<P> awaiting) {
      Loop* loop = this->begin(awaiting, "Channel.send");
      if (loop == nullptr) {
        state_ = State::cancelled;
        return false;
      }
      Waiting* to_wake = nullptr;
      {
        std::lock_guard<std::mutex> lock(channel_.mutex_);
        if (channel_.closed_) {
          state_ = State::closed;
        } else if (channel_.senders_head_ == nullptr &&
                   channel_.items_.size() < channel_.capacity_) {
          channel_.items_.push_back(std::move(value_));
          state_ = State::sent;
          to_wake = std::exchange(channel_.receiver_, nullptr);
        } else {
          channel_.prepare_wait(waiting_, *loop, awaiting);
          waiting_.value = &value_;
          channel_.push_sender(waiting_);
          state_ = State::waiting;
        }
      }
      return this->end(*loop, to_wake, state_ == State::waiting);
    }

    void await_resume() {
      if (state_ == State::waiting) state_ = waiting_.closed ? State::closed : State::sent;
      if (state_ == State::sent) {
        // Sent: a cancel that came after the value went in stays pending for the next await.
        if (task_ != nullptr) {
          task_->waiting_on = nullptr;
          task_->note_running();
        }
        return;
      }
      if (task_ != nullptr) task_->resumed();
      if (state_ == State::cancelled) throw detail::cancelled_error(task_);
      throw ChannelClosed("Channel.send");
    }

   private:
    enum class State : std::uint8_t { idle, sent, waiting, closed, cancelled };
    // Still waiting for a place: it leaves the FIFO, and wakes itself through its own inbox
    // (its loop expects that wake-up). Moved in or closed already: that wake-up is on its way.
    static bool on_cancel(detail::CancelPoint& point) noexcept {
      auto& self = static_cast<SendAwaiter&>(point);
      {
        std::lock_guard<std::mutex> lock(self.channel_.mutex_);
        if (!self.channel_.remove_sender(self.waiting_)) return false;
      }
      self.state_ = State::cancelled;
      wake(self.waiting_);
      return true;
    }

    Channel& channel_;
    T value_;
    Waiting waiting_;
    State state_ = State::idle;
  };

  class ReceiveAwaiter : AwaiterBase {
    using AwaiterBase::task_;  // a dependent base: its names are not found by themselves

   public:
    explicit ReceiveAwaiter(Channel& channel) : AwaiterBase(&on_cancel), channel_(channel) {}
    ReceiveAwaiter(ReceiveAwaiter&& other) noexcept
        : AwaiterBase(&on_cancel), channel_(other.channel_) {}
    ReceiveAwaiter& operator=(ReceiveAwaiter&&) = delete;

    bool await_ready() const noexcept { return false; }

    template <class P>
    bool await_suspend(std::coroutine_handle<P> awaiting) {
      Loop* loop = this->begin(awaiting, "Channel.receive");
      if (loop == nullptr) {
        state_ = State::cancelled;
        return false;
      }
      Waiting* to_wake = nullptr;
      {
        std::lock_guard<std::mutex> lock(channel_.mutex_);
        if (channel_.receiver_ != nullptr)
          throw std::logic_error(
              "Channel.receive: another coroutine is receiving; a channel has one receiver at a "
              "time");
        if (!channel_.items_.empty()) {
          to_wake = channel_.take_item(item_);
          state_ = State::received;
        } else if (channel_.closed_) {
          state_ = State::closed;
        } else {
          channel_.prepare_wait(waiting_, *loop, awaiting);
          channel_.receiver_ = &waiting_;
          state_ = State::waiting;
        }
      }
      return this->end(*loop, to_wake, state_ == State::waiting);
    }

    T await_resume() {
      // A cancel pending here leaves the item in the channel: it is taken only below.
      if (task_ != nullptr) task_->resumed();
      if (state_ == State::cancelled) throw detail::cancelled_error(task_);
      if (state_ == State::waiting) {
        Waiting* to_wake = nullptr;
        {
          std::lock_guard<std::mutex> lock(channel_.mutex_);
          if (!channel_.items_.empty()) {
            to_wake = channel_.take_item(item_);
            state_ = State::received;
          } else {
            state_ = State::closed;
          }
        }
        if (to_wake != nullptr) wake(*to_wake);
      }
      if (state_ == State::closed) throw ChannelClosed("Channel.receive");
      return std::move(*item_);
    }

   private:
    enum class State : std::uint8_t { idle, received, waiting, closed, cancelled };
    static bool on_cancel(detail::CancelPoint& point) noexcept {
      auto& self = static_cast<ReceiveAwaiter&>(point);
      {
        std::lock_guard<std::mutex> lock(self.channel_.mutex_);
        if (self.channel_.receiver_ != &self.waiting_) return false;  // woken already
        self.channel_.receiver_ = nullptr;
      }
      self.state_ = State::cancelled;
      wake(self.waiting_);
      return true;
    }

    Channel& channel_;
    std::optional<T> item_;
    Waiting waiting_;
    State state_ = State::idle;
  };
};

}  // namespace ringloop
