// Multishot operations: one SQE, a stream of CQEs (each with IORING_CQE_F_MORE but the last).
// MultishotStream<Op> is the consumer's handle: `co_await stream.next()` gives the next result,
// or nullopt once the stream has ended; multishot_accept(listener) is the stream of accepted
// connections. The record the kernel answers lives on the heap, not in the consumer's frame: a
// frame may unwind at any await, and a handle destroyed while the operation is armed cancels it
// and leaves the record to free itself at its last CQE, releasing every result nobody took
// (closing an accepted fd, returning a buffer): no path forgets one.
//
// Backpressure: results wait in a queue bounded by `max_queued` (default kDefaultMaxQueued).
// When it fills, the operation is cancelled (the kernel keeps what follows: connections in the
// listen backlog, bytes in the socket with TCP's flow control) and re-armed when the consumer
// drains it. The bound is soft by what the kernel posted before its cancel took effect.
//
// A stream ends when its loop closes, held by a task or not: Loop::close cancels the operation
// (a detail::CloseHook) and reaps its last CQE; next() then gives what was queued, then nullopt,
// and the handle may outlive the loop.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>
#include <unistd.h>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <ringloop/coro/detail/promise.hpp>
#include <ringloop/coro/net/socket.hpp>
#include <ringloop/loop/loop.hpp>

namespace ringloop {

// One CQE of a multishot operation, as the kernel posted it.
struct MultishotCqe {
  std::int32_t result;
  std::uint32_t flags;  // IORING_CQE_F_MORE, IORING_CQE_F_BUFFER and its buffer id...
};

// How many results a MultishotStream queues before it pauses the operation in the kernel.
inline constexpr std::size_t kDefaultMaxQueued = 128;

// What a multishot operation is, for MultishotStream<Op>: Op is copyable and has
//   static constexpr const char* name;            // for error messages
//   static constexpr bool priority;               // admitted ahead of reads (Operation::priority)
//   using Value = ...;                            // what next() gives
//   void operator()(io_uring_sqe&) const noexcept;  // fills the multishot SQE
//   Value take(MultishotCqe) const;               // a successful result into a value (noexcept
//                                                 // move of what it owns)
//   void discard(MultishotCqe) const noexcept;    // releases what any CQE nobody took owns
//   bool is_end(MultishotCqe) const noexcept;     // a last CQE that ends the stream (EOF)
//   bool can_arm(ArmWaiter&) const noexcept;      // whether arming can succeed now; if not,
//                                                 // calls the waiter back once it can (and
//                                                 // if so, forgets the waiter: it is served)
//   void forget(ArmWaiter&) const noexcept;       // the waiter is going away
//   void pass_turn() const noexcept;              // an arming ended having taken nothing
//                                                 // can_arm waited for: another may use it
//   void arrived(MultishotCqe) const noexcept;    // sees every CQE first (buffer accounting)
template <class Op>
class MultishotStream;

// A stream that could not be armed (no buffer left in its ring) waits here to be called back.
// wake returns whether the stream armed: one that did not (it was ended, or closing) passes
// its turn to the next waiter, so a returned buffer is never left with waiters asleep.
struct ArmWaiter : detail::ListNode {
  using WakeFn = bool (*)(void* context) noexcept;
  ArmWaiter(WakeFn fn, void* of) noexcept : wake(fn), context(of) {}
  WakeFn wake;
  void* context;
};

namespace detail {

// The results a multishot record holds for its consumer, oldest first. Not a std::deque: that
// allocates a 512-byte block as it is made, paid by every idle connection's receive stream (of
// c100k's 2.2 KiB per idle connection, a quarter). Empty, this holds no memory; a burst's memory
// is kept for reuse up to a few results, and let go once the burst is taken.
class CqeFifo {
 public:
  bool empty() const noexcept { return head_ == items_.size(); }
  std::size_t size() const noexcept { return items_.size() - head_; }
  const MultishotCqe& front() const noexcept { return items_[head_]; }
  void push_back(MultishotCqe cqe) {
    if (head_ >= kCompactAfter && head_ * 2 >= items_.size()) {  // taken from the front: compact
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    items_.push_back(cqe);
  }
  void pop_front() noexcept {
    if (++head_ < items_.size()) return;
    if (items_.capacity() > kKeptCapacity)
      std::vector<MultishotCqe>().swap(items_);
    else
      items_.clear();
    head_ = 0;
  }
  void clear() noexcept {
    items_.clear();
    head_ = 0;
  }
  auto begin() const noexcept { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() const noexcept { return items_.end(); }

 private:
  static constexpr std::size_t kKeptCapacity = 8;
  static constexpr std::size_t kCompactAfter = 64;
  std::vector<MultishotCqe> items_;
  std::size_t head_ = 0;
};

template <class Op>
class MultishotRecord final : public Operation {
 public:
  MultishotRecord(Loop& loop, Op op, std::size_t max_queued)
      : Operation(&prepare, &complete, /*is_timeout_op=*/false),
        loop_(loop),
        op_(std::move(op)),
        max_queued_(max_queued == 0 ? 1 : max_queued) {
    priority = Op::priority;
    loop_.add_close_hook(close_hook_);
  }
  ~MultishotRecord() {
    // Unlinked once the loop has closed: the loop may be gone by now, and is not touched.
    if (close_hook_.linked()) loop_.remove_close_hook(close_hook_);
    op_.forget(arm_waiter_);
  }

  bool armed() const noexcept { return state != OpState::idle; }

  // Arms the operation if the stream wants more and nothing stops it: once the consumer has
  // taken every queued result (the pause's bound, and an error is seen before re-arming on it).
  void pump() {
    if (armed() || ended_ || closing_ || !queue_.empty() || !op_.can_arm(arm_waiter_)) return;
    paused_ = false;
    ++arms_;
    loop_.submit(*this);
  }

  // The handle is gone, or the stream is closed: cancel, and when detached, free at the last CQE.
  void close(bool detach) noexcept {
    closing_ = true;
    if (detach) {
      detached_ = true;
      drop_queue();
    }
    if (armed()) {
      loop_.cancel(*this);
    } else if (detach) {
      delete this;
    }
  }

  Loop& loop_;
  Op op_;
  // Called back by what can_arm() waited for: arms, and says whether it did.
  ArmWaiter arm_waiter_{[](void* self) noexcept {
                          auto& record = *static_cast<MultishotRecord*>(self);
                          record.pump();
                          return record.armed();
                        },
                        this};
  // The loop closes: the stream ends as if cancelled (the handle, if any, still frees it).
  detail::CloseHook close_hook_{
      [](detail::CloseHook& hook) noexcept {
        static_cast<MultishotRecord*>(hook.owner)->close(/*detach=*/false);
      },
      this};
  CqeFifo queue_;
  std::coroutine_handle<> waiter_;
  std::size_t max_queued_;
  bool ended_ = false;    // an end CQE was queued: nothing is armed again
  bool closing_ = false;  // close() was called: the last CQE ends the stream
  bool detached_ = false;
  bool paused_ = false;  // cancelled because the queue was full; re-armed by pump()
  std::uint64_t arms_ = 0;

 private:
  void drop_queue() noexcept {
    for (const MultishotCqe& cqe : queue_) op_.discard(cqe);
    queue_.clear();
  }

  static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
    auto& self = static_cast<MultishotRecord&>(operation);
    self.op_(sqe);
  }

  // From the reaper: queue (or release), pause when full, wake the consumer. A CQE without
  // F_MORE is the last of this arming; the loop has set the record idle before calling.
  static void complete(Operation& operation, std::int32_t result, std::uint32_t flags) noexcept {
    auto& self = static_cast<MultishotRecord&>(operation);
    MultishotCqe cqe{result, flags};
    self.op_.arrived(cqe);
    bool last = (flags & IORING_CQE_F_MORE) == 0;
    bool took = (flags & IORING_CQE_F_BUFFER) != 0;
    if (self.detached_) {
      self.op_.discard(cqe);
      if (last) {
        if (!took) self.op_.pass_turn();
        delete &self;
      }
      return;
    }
    bool wake = false;
    if (last && result == -ECANCELED) {
      // The consumer's cancel, or one the loop made (closing): the stream ends. The pause's
      // cancel: re-armed once the queue drains.
      if (!self.paused_ || self.closing_) self.ended_ = wake = true;
    } else if (result != -ENOBUFS) {  // -ENOBUFS: no buffer left; re-armed when one returns
      self.queue_.push_back(cqe);
      wake = true;
      if (last && self.op_.is_end(cqe)) self.ended_ = true;
      if (!last && self.queue_.size() >= self.max_queued_ && !self.paused_) {
        self.paused_ = true;
        self.loop_.cancel(self);
      }
    }
    if (last) self.pump();
    if (last && !took && !self.armed()) self.op_.pass_turn();
    if (wake && self.waiter_) self.loop_.schedule(std::exchange(self.waiter_, nullptr));
  }

  template <class>
  friend class ringloop::MultishotStream;
};

}  // namespace detail

template <class Op>
class [[nodiscard]] MultishotStream {
 public:
  using Value = typename Op::Value;

  // Arms the operation on loop at once: results queue up before the first next().
  MultishotStream(Loop& loop, Op op, std::size_t max_queued = kDefaultMaxQueued)
      : record_(new detail::MultishotRecord<Op>(loop, std::move(op), max_queued)) {
    try {
      record_->pump();
    } catch (...) {
      delete record_;  // not armed: nothing owed
      throw;
    }
  }
  MultishotStream(MultishotStream&& other) noexcept
      : record_(std::exchange(other.record_, nullptr)) {}
  MultishotStream& operator=(MultishotStream&& other) noexcept {
    if (this != &other) {
      reset();
      record_ = std::exchange(other.record_, nullptr);
    }
    return *this;
  }
  ~MultishotStream() { reset(); }

  class [[nodiscard]] NextAwaiter : detail::CancelPoint {
   public:
    explicit NextAwaiter(detail::MultishotRecord<Op>& record) noexcept
        : CancelPoint(&on_cancel), record_(record) {}
    bool await_ready() {
      record_.pump();
      return !record_.queue_.empty() || !can_produce();
    }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> awaiting) {
      task_ = detail::task_of(awaiting);
      if (task_ != nullptr && task_->must_cancel) return false;
      record_.waiter_ = awaiting;
      if (task_ != nullptr) task_->suspend_on(*this);
      return true;
    }
    std::optional<Value> await_resume() {
      if (task_ != nullptr) task_->resumed();
      if (cancel_taken_) throw detail::cancelled_error(task_);
      if (record_.queue_.empty()) return std::nullopt;  // ended (await_ready said so)
      MultishotCqe cqe = record_.queue_.front();
      record_.queue_.pop_front();
      record_.pump();
      if (cqe.result < 0 || record_.op_.is_end(cqe)) {
        record_.op_.discard(cqe);
        if (cqe.result < 0) throw std::system_error(-cqe.result, std::system_category(), Op::name);
        return std::nullopt;
      }
      return record_.op_.take(cqe);
    }

   private:
    // Whether anything could still come: armed, or able to be armed.
    bool can_produce() const noexcept {
      return record_.armed() || (!record_.ended_ && !record_.closing_);
    }
    // The consumer's task was cancelled while it waited: the stream stays as it is (results
    // keep queuing), as a cancelled asyncio.Queue.get() leaves the queue.
    static bool on_cancel(detail::CancelPoint& point) noexcept {
      auto& self = static_cast<NextAwaiter&>(point);
      self.cancel_taken_ = true;
      if (self.record_.waiter_)
        self.record_.loop_.schedule(std::exchange(self.record_.waiter_, nullptr));
      return true;
    }

    detail::MultishotRecord<Op>& record_;
    detail::TaskCore* task_ = nullptr;
    bool cancel_taken_ = false;
  };

  // The next result; nullopt once the stream has ended (end of file, or after cancel() once
  // the kernel's last CQE is in). An error CQE throws std::system_error naming the operation;
  // the stream is re-armed by the next call.
  NextAwaiter next() {
    if (record_ == nullptr)
      throw std::logic_error(std::string(Op::name) + ": the stream was moved from");
    return NextAwaiter(*record_);
  }

  // Ends the stream: cancels the operation in the kernel; next() still gives the results
  // queued before the last CQE, then nullopt.
  void cancel() noexcept {
    if (record_ != nullptr) record_->close(/*detach=*/false);
  }

  // Results waiting to be taken, and whether the operation is armed in the kernel.
  std::size_t queued() const noexcept { return record_ ? record_->queue_.size() : 0; }
  bool armed() const noexcept { return record_ != nullptr && record_->armed(); }
  // How many SQEs the stream has used: 1, plus one per re-arm (the kernel ended the multishot,
  // the queue paused it, or its buffer ring ran dry).
  std::uint64_t arms() const noexcept { return record_ ? record_->arms_ : 0; }

 private:
  void reset() noexcept {
    if (record_ != nullptr) std::exchange(record_, nullptr)->close(/*detach=*/true);
  }

  detail::MultishotRecord<Op>* record_;
};

namespace detail {

// IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT (Linux 5.19).
struct MultishotAcceptOp {
  static constexpr const char* name = "multishot accept";
  static constexpr bool priority = true;  // never behind idle reads (Loop's admission)
  using Value = Socket;
  int fd;
  int flags;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_multishot_accept(&sqe, fd, nullptr, nullptr, flags);
  }
  Socket take(MultishotCqe cqe) const noexcept { return Socket(cqe.result); }
  void discard(MultishotCqe cqe) const noexcept {
    if (cqe.result >= 0) ::close(cqe.result);
  }
  bool is_end(MultishotCqe) const noexcept { return false; }  // a listener never ends by itself
  bool can_arm(ArmWaiter&) const noexcept { return true; }
  void forget(ArmWaiter&) const noexcept {}
  void pass_turn() const noexcept {}
  void arrived(MultishotCqe) const noexcept {}
};

}  // namespace detail

// The stream of connections accepted on listener (a listening socket, which must outlive the
// stream): one SQE accepts every connection, re-armed when the kernel ends it. Each next()
// gives a Socket; an accept error (EMFILE...) throws from next() and the following next()
// accepts again. The server's hook: `for (;;) { auto s = co_await accepts.next(); ... }`.
inline MultishotStream<detail::MultishotAcceptOp> multishot_accept(
    const Socket& listener, int flags = SOCK_CLOEXEC, std::size_t max_queued = kDefaultMaxQueued) {
  return MultishotStream<detail::MultishotAcceptOp>(Loop::running("multishot_accept"),
                                                    detail::MultishotAcceptOp{listener.fd(), flags},
                                                    max_queued);
}

}  // namespace ringloop
