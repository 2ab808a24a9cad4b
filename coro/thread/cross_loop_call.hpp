// A cross-loop call: a coroutine on one loop runs work as a task on another loop (Seastar's
// smp::submit_to) and resumes on its own loop with the value or the exception. The request, a
// cancel request and the reply travel as ThreadCompletions through the two loops' inboxes, each
// loop woken by a MSG_RING doorbell from the sender's ring or by its eventfd (Loop::post_to).
//
// Invariants: each loop touches the call's state only in its own steps; the caller waits for
// the reply whatever happens (a cancel is passed on to the remote task, and the caller still
// waits for that task to end, as awaiting a Task does in asyncio); the work, its coroutine frame
// and its task are made and destroyed on the target loop's thread; the state goes when the last
// of the caller's awaiter and the messages in flight lets go of it (an atomic count, the only
// field both threads write).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <atomic>
#include <coroutine>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <ringloop/coro/task/task.hpp>

namespace ringloop::detail {

// Where a cross-loop call goes: the target loop (dereferenced on its own thread only), its
// inbox, and its name for messages (owned by the LoopGroup, which outlives the call).
struct CallTarget {
  Loop* loop = nullptr;
  std::shared_ptr<ThreadInbox> inbox;
  const std::string* name = nullptr;
};

class CrossCallBase {
 public:
  struct Message : ThreadCompletion {
    Message(CrossCallBase& owner, Fn on_loop_fn, Fn on_discard_fn) noexcept
        : ThreadCompletion(on_loop_fn, on_discard_fn), call(owner) {}
    CrossCallBase& call;
  };

  explicit CrossCallBase(CallTarget target) noexcept : target_(std::move(target)) {}
  CrossCallBase(const CrossCallBase&) = delete;
  CrossCallBase& operator=(const CrossCallBase&) = delete;
  virtual ~CrossCallBase() = default;

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Caller's thread: sends the request (which holds a reference until it comes back as the
  // reply) and expects the reply. Throws when the target loop is closed.
  void send(Loop& caller, std::coroutine_handle<> awaiting, const char* what) {
    caller_ = &caller;
    caller_inbox_ = caller.thread_inbox();
    awaiting_ = awaiting;
    // Expected before it is posted: posting may reap (a full SQ), and the reply may be in by then.
    caller.expect_thread_completion();
    retain();
    bool posted = false;
    try {
      posted = caller.post_to(target_.inbox, request_);
    } catch (...) {
    }
    if (!posted) {
      release();
      caller.unexpect_thread_completion();
      throw std::runtime_error(std::string(what) + ": " + *target_.name +
                               " is closed (its group has stopped)");
    }
  }

  // Caller's thread, when its task is cancelled: passes the cancel on to the remote task.
  // False once the reply is in (its resume is scheduled already).
  bool cancel() noexcept {
    if (replied_) return false;
    if (cancel_sent_) return true;
    cancel_sent_ = true;
    retain();
    bool posted = false;
    try {
      posted = caller_->post_to(target_.inbox, cancel_request_);
    } catch (...) {
    }
    // Refused: the target is closing, and cancels every task it has itself.
    if (!posted) release();
    return true;
  }

  // Caller's thread, after the reply: rethrows the remote outcome's exception.
  void rethrow_if_failed() const {
    if (never_ran_)
      throw std::runtime_error("cross-loop call: " + *target_.name +
                               " closed before the call could run");
    if (error_) std::rethrow_exception(error_);
  }

 protected:
  // Target's thread: starts the remote task, whose frame replies when it goes.
  virtual void start_remote() = 0;
  // Target's thread: destroys the work where it was to run (it may hold that loop's objects).
  virtual void drop_work() noexcept = 0;

  // Target's thread, the last thing the remote side does: the reply takes the request's
  // reference to the caller, so nothing here is touched after the post.
  void send_reply() noexcept {
    remote_ = nullptr;
    bool posted = false;
    // A doorbell needs the target loop running (or closing) to send it; a remote frame
    // destroyed after that (a task abandoned as its loop closed) replies through the eventfd.
    try {
      if (Loop::current() == target_.loop) posted = target_.loop->post_to(caller_inbox_, reply_);
    } catch (...) {
    }
    // An expected completion is never refused; this is the eventfd path when the doorbell
    // could not be sent.
    if (!posted) (void)caller_inbox_->post(reply_);
  }

  CallTarget target_;
  TaskCore* remote_ = nullptr;  // target's thread: the remote task until it replies
  std::exception_ptr error_;    // written by the target before the reply, read after it

 private:
  static CrossCallBase& of(ThreadCompletion& completion) noexcept {
    return static_cast<Message&>(completion).call;
  }
  static void on_request(ThreadCompletion& completion) noexcept {
    // Once the remote task exists, its frame's guard owns the reply. Until then (its frame or
    // its task could not be made: out of memory) the guard stays quiet and the reply is sent
    // here, carrying the error that stopped it.
    CrossCallBase& call = of(completion);
    try {
      call.start_remote();
    } catch (...) {
      call.error_ = std::current_exception();
      call.drop_work();
      call.send_reply();
    }
  }
  // The target closed its door with the request still queued: the call never ran.
  static void on_request_discarded(ThreadCompletion& completion) noexcept {
    CrossCallBase& call = of(completion);
    call.never_ran_ = true;
    (void)call.caller_inbox_->post(call.reply_);
  }
  static void on_cancel_request(ThreadCompletion& completion) noexcept {
    CrossCallBase& call = of(completion);
    if (call.remote_ != nullptr) call.remote_->cancel();  // null: it has replied already
    call.release();
  }
  static void on_cancel_discarded(ThreadCompletion& completion) noexcept {
    of(completion).release();
  }
  static void on_reply(ThreadCompletion& completion) noexcept {
    CrossCallBase& call = of(completion);
    call.replied_ = true;
    call.caller_->schedule(call.awaiting_);
    call.release();
  }

  std::atomic<std::uint32_t> refs_{1};  // the caller's awaiter
  Loop* caller_ = nullptr;
  std::shared_ptr<ThreadInbox> caller_inbox_;
  std::coroutine_handle<> awaiting_;
  bool replied_ = false;      // caller's thread
  bool cancel_sent_ = false;  // caller's thread
  bool never_ran_ = false;    // written by the target before the reply
  Message request_{*this, &on_request, &on_request_discarded};
  Message cancel_request_{*this, &on_cancel_request, &on_cancel_discarded};
  Message reply_{*this, &on_reply, nullptr};  // expected by the caller: never discarded
};

// Work is a callable; with Awaits, it returns a Coro<T> that the remote task awaits, otherwise
// its result (T) is the call's.
template <class T, class Work, bool Awaits>
class CrossCall final : public CrossCallBase {
 public:
  CrossCall(CallTarget target, Work work)
      : CrossCallBase(std::move(target)), work_(std::move(work)) {}

  ResultOf<T> take_value() {
    if constexpr (std::is_void_v<T>)
      return {};
    else
      return std::move(*value_);
  }

 private:
  void start_remote() override {
    Task<void> task = create_task(*target_.loop, run_remote(this, ReplyWhenDestroyed(this)));
    // Armed only now: a frame destroyed inside create_task (which then throws) replies through
    // on_request, with the error, not through its guard, which knows no error to carry.
    armed_ = true;
    remote_ = &task.core();
  }

  void drop_work() noexcept override { work_.reset(); }

  // Replies when the remote frame goes, however it goes: after its body, without its body ever
  // running (a task cancelled before its first step ends so), or abandoned by a closing loop.
  // A parameter, not a local: a frame destroys its parameters even when its body never ran.
  // create_task schedules the task's first step and never runs it, so the frame cannot go
  // before start_remote arms the guard, except when create_task fails.
  class ReplyWhenDestroyed {
   public:
    explicit ReplyWhenDestroyed(CrossCall* call) noexcept : call_(call) {}
    ReplyWhenDestroyed(ReplyWhenDestroyed&& other) noexcept
        : call_(std::exchange(other.call_, nullptr)) {}
    ReplyWhenDestroyed& operator=(ReplyWhenDestroyed&&) = delete;
    ~ReplyWhenDestroyed() {
      if (call_ == nullptr || !call_->armed_) return;
      if (!call_->ran_) call_->error_ = std::make_exception_ptr(CancelledError());
      call_->work_.reset();  // destroyed on the target's thread, where it ran
      call_->send_reply();
    }

   private:
    CrossCall* call_;
  };

  static Coro<void> run_remote(CrossCall* call, ReplyWhenDestroyed) {
    try {
      if constexpr (Awaits && std::is_void_v<T>) {
        co_await std::invoke(std::move(*call->work_));
      } else if constexpr (Awaits) {
        T value = co_await std::invoke(std::move(*call->work_));
        call->value_.emplace(std::move(value));
      } else if constexpr (std::is_void_v<T>) {
        std::invoke(std::move(*call->work_));
      } else {
        call->value_.emplace(std::invoke(std::move(*call->work_)));
      }
    } catch (...) {
      call->error_ = std::current_exception();
    }
    call->ran_ = true;
  }

  std::optional<Work> work_;
  std::optional<ResultOf<T>> value_;
  bool ran_ = false;    // target's thread: the body ran to its end
  bool armed_ = false;  // target's thread: the remote task exists and its frame will reply
};

// co_await of a cross-loop call: a cancel point of the awaiting task.
template <class T, class Work, bool Awaits>
class [[nodiscard]] CrossCallAwaiter : CancelPoint {
  using Call = CrossCall<T, Work, Awaits>;

 public:
  CrossCallAwaiter(CallTarget target, Work work, const char* what)
      : CancelPoint(&on_cancel), call_(new Call(std::move(target), std::move(work))), what_(what) {}
  CrossCallAwaiter(CrossCallAwaiter&& other) noexcept
      : CancelPoint(&on_cancel), call_(std::exchange(other.call_, nullptr)), what_(other.what_) {}
  CrossCallAwaiter& operator=(CrossCallAwaiter&&) = delete;
  ~CrossCallAwaiter() {
    if (call_ != nullptr) call_->release();
  }

  bool await_ready() const noexcept { return false; }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    task_ = task_of(awaiting);
    if (task_ != nullptr && task_->must_cancel) {
      cancelled_early_ = true;
      return false;
    }
    call_->send(loop_for(task_, what_), awaiting, what_);
    if (task_ != nullptr) task_->suspend_on(*this);
    return true;
  }

  ResultOf<T> await_resume() {
    if (task_ != nullptr) task_->resumed();
    if (cancelled_early_) throw cancelled_error(task_);
    call_->rethrow_if_failed();
    return call_->take_value();
  }

 private:
  // The remote task is cancelled and the awaiter still waits for its end: it resumes with the
  // remote outcome (CancelledError, unless the remote swallowed the cancel).
  static bool on_cancel(CancelPoint& point) noexcept {
    return static_cast<CrossCallAwaiter&>(point).call_->cancel();
  }

  Call* call_;
  const char* what_;
  TaskCore* task_ = nullptr;
  bool cancelled_early_ = false;
};

}  // namespace ringloop::detail
