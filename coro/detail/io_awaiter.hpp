// The awaiters behind every I/O operation of coro/io/io.hpp: one SQE, filled by a "prep" (a small
// copyable callable holding the operation's arguments), whose CQE result becomes a value or an
// exception. OpAwaiter is the plain form; TimedOpAwaiter, built by wait_for(op, timeout), links
// an IORING_OP_LINK_TIMEOUT after the SQE so the kernel enforces the deadline.
//
// Everything the kernel reads or writes (the prep's arguments, a sockaddr, the timespec) lives
// in the awaiter, in the awaiting coroutine's frame, which is not destroyed before the last CQE
// (the Operation records assert it). Awaiting an operation allocates nothing.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>

#include <ringloop/coro/detail/deadline.hpp>
#include <ringloop/coro/detail/promise.hpp>

namespace ringloop::detail {

// How an operation's non-negative CQE result becomes its value. The defaults: a negative result
// is an error (std::system_error naming the operation) and a result nobody receives (the
// awaiter threw CancelledError) needs no clean-up.
struct ResultPolicy {
  static constexpr bool errors_are_values = false;
  static void discard(std::int32_t) noexcept {}
};
struct NoResult : ResultPolicy {
  static void convert(std::int32_t) noexcept {}
};
struct ByteCountResult : ResultPolicy {
  static std::size_t convert(std::int32_t result) noexcept {
    return static_cast<std::size_t>(result);
  }
};
struct EventMaskResult : ResultPolicy {
  static unsigned convert(std::int32_t result) noexcept { return static_cast<unsigned>(result); }
};
// accept, openat, socket: the result is a new fd. One that completed although the awaiter was
// cancelled would leak, so it is closed (synchronously: a rare path, and no await is possible).
struct NewFdResult : ResultPolicy {
  static int convert(std::int32_t result) noexcept { return result; }
  static void discard(std::int32_t result) noexcept {
    if (result >= 0) ::close(result);
  }
};
// The raw form: the CQE's res as it came, negative errno included.
struct RawResult : ResultPolicy {
  static constexpr bool errors_are_values = true;
  static std::int32_t convert(std::int32_t result) noexcept { return result; }
};

// A prep that says `static constexpr bool priority = true` (accept) is admitted ahead of
// ordinary operations (Operation::priority).
template <class P>
constexpr bool prep_has_priority() noexcept {
  if constexpr (requires { P::priority; })
    return P::priority;
  else
    return false;
}

template <class P>
concept IoPrep = std::copy_constructible<P> && requires(const P& prep, io_uring_sqe& sqe) {
  { prep(sqe) }
  noexcept;
  { P::name } -> std::convertible_to<const char*>;
};

// What OpAwaiter and TimedOpAwaiter share: the operation record, the cancel point, and how the
// CQE result (and the link timeout's, when there is one) turns into an outcome.
class IoAwaiterBase : protected CancelPoint, protected Operation {
 protected:
  explicit IoAwaiterBase(PrepareFn prepare_fn) noexcept
      : CancelPoint(&on_cancel), Operation(prepare_fn, &complete, /*is_timeout_op=*/false) {}
  IoAwaiterBase(const IoAwaiterBase&) = delete;

  // The IORING_OP_LINK_TIMEOUT record of a TimedOpAwaiter. Its CQE can be -ETIME (it fired and
  // cancelled the operation), -ECANCELED (the operation ended first), or -ENOENT / -EALREADY
  // (it fired as the operation was completing: liburing #1208); it arrives before or after the
  // operation's, in the same reap or another.
  class LinkTimeout : public Operation {
   public:
    LinkTimeout(IoAwaiterBase& owner, std::int64_t due_ns) noexcept
        : Operation(&prepare, &complete, /*is_timeout_op=*/true),
          owner_(owner),
          timespec_(to_timespec(due_ns)) {
      Operation::deadline_ns = due_ns;  // where a loop with virtual time keeps it
    }

   private:
    static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
      auto& self = static_cast<LinkTimeout&>(operation);
      io_uring_prep_link_timeout(&sqe, &self.timespec_, IORING_TIMEOUT_ABS);
    }
    static void complete(Operation& operation, std::int32_t result, std::uint32_t) noexcept {
      auto& self = static_cast<LinkTimeout&>(operation);
      // -EINVAL: the LINK_TIMEOUT SQE did not follow its operation in the same submission.
      RINGLOOP_ASSERT(result != -EINVAL, "a link timeout was split from its operation");
      self.owner_.link_result_ = result;
      self.owner_.cqe_arrived();
    }

    IoAwaiterBase& owner_;
    __kernel_timespec timespec_;
  };

  // Submits the operation (and its link timeout). Returns false, submitting nothing, when the
  // task has a cancel pending: await_resume then throws CancelledError.
  template <class P>
  bool start(std::coroutine_handle<P> awaiting, const char* name) {
    task_ = task_of(awaiting);
    if (task_ != nullptr && task_->must_cancel) return false;
    loop_ = &loop_for(task_, name);
    awaiting_ = awaiting;
    cqes_owed_ = cqe_cost();
    loop_->submit(*this);
    if (task_ != nullptr) task_->suspend_on(*this);
    return true;
  }

  // start() for an operation whose opcode is newer than the floor (Prep::opcode): when the ring
  // lacks it, the prep's fallback (a system call that does not block, such as socket(2)) gives
  // the result at once, without suspending; without a fallback, the error names the kernel
  // that has the opcode. Other operations go straight to start().
  template <class Prep, class P>
  bool start_op(const Prep& prep, std::coroutine_handle<P> awaiting) {
    if constexpr (requires { Prep::opcode; }) {
      TaskCore* task = task_of(awaiting);
      if (!loop_for(task, Prep::name).ring().probe().has(Prep::opcode)) {
        if constexpr (requires { prep.fallback(); }) {
          task_ = task;  // resume_with() surfaces a pending cancel, as after a CQE
          if (task_ == nullptr || !task_->must_cancel) result_ = prep.fallback();
          return false;
        } else {
          throw_unsupported(Prep::opcode, Prep::name);
        }
      }
    }
    return start(awaiting, Prep::name);
  }

  // resume_with() for a prep that says which object it worked on (describe(): "statx
  // /no/such/file"): its errors name it, as Python's FileNotFoundError names the path.
  template <class Result, class Prep>
  auto resume_op(const Prep& prep) {
    if constexpr (requires { prep.describe(); }) {
      try {
        return resume_with<Result>(Prep::name);
      } catch (const std::system_error& error) {
        throw std::system_error(error.code(), prep.describe());
      }
    } else {
      return resume_with<Result>(Prep::name);
    }
  }

  // The outcome, once every CQE is in: the value, or one of the exceptions (after closing the
  // fd of an operation that made one nobody will receive).
  template <class Result>
  auto resume_with(const char* name) {
    try {
      throw_if_failed(name, Result::errors_are_values);
    } catch (...) {
      Result::discard(result_);
      throw;
    }
    return Result::convert(result_);
  }

 private:
  void throw_if_failed(const char* name, bool errors_are_values) {
    RINGLOOP_ASSERT(cqes_owed_ == 0, "an I/O awaiter resumed before all of its CQEs were reaped");
    if (task_ != nullptr) task_->resumed();
    // A cancel the awaiter took ends in CancelledError, even when the operation completed in a
    // race with it (asyncio's rule: the cancelled task never sees the result).
    if (cancel_taken_) throw cancelled_error(task_);
    if (result_ >= 0) return;  // a success wins over a timeout that came too late
    // The link timeout fired and cancelled the operation: -ECANCELED, even for a read that
    // may have moved data (liburing #1422), or -EINTR.
    if (link_result_ == -ETIME) throw TimeoutError(std::string(name) + ": the timeout expired");
    if (result_ == -ECANCELED) throw cancelled_error(task_);  // the loop is closing around the task
    if (!errors_are_values) throw std::system_error(-result_, std::system_category(), name);
  }

  static void complete(Operation& operation, std::int32_t result, std::uint32_t) noexcept {
    auto& self = static_cast<IoAwaiterBase&>(operation);
    self.result_ = result;
    self.cqe_arrived();
  }

  // The awaiter resumes only when the kernel owes it nothing: the link timeout reads the
  // timespec in the frame until its own CQE.
  void cqe_arrived() noexcept {
    RINGLOOP_ASSERT(cqes_owed_ > 0, "an I/O awaiter got more CQEs than it was owed");
    if (--cqes_owed_ == 0) loop_->schedule(awaiting_);
  }

  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<IoAwaiterBase&>(point);
    // Its CQE is in (only a link timeout's may still be owed): the resume is on its way, and
    // the cancel surfaces there as CancelledError (task_->resumed()).
    if (self.state == OpState::idle) return false;
    self.cancel_taken_ = true;
    self.loop_->cancel(self);  // ASYNC_CANCEL; its link timeout then ends by itself
    return true;
  }

  Loop* loop_ = nullptr;
  TaskCore* task_ = nullptr;
  std::coroutine_handle<> awaiting_;
  std::int32_t result_ = -ECANCELED;  // what a never-submitted operation ends with
  std::int32_t link_result_ = 0;
  unsigned cqes_owed_ = 0;
  bool cancel_taken_ = false;
};

template <IoPrep Prep, class Result = typename Prep::Result>
class [[nodiscard]] OpAwaiter : IoAwaiterBase {
 public:
  explicit OpAwaiter(Prep prep) noexcept : IoAwaiterBase(&prepare), prep_(std::move(prep)) {
    priority = prep_has_priority<Prep>();
  }
  // Movable until awaited, so that gather and wait_for can take operations by value.
  OpAwaiter(OpAwaiter&& other) noexcept : IoAwaiterBase(&prepare), prep_(other.prep_) {
    RINGLOOP_ASSERT(other.state == OpState::idle, "an operation was moved while in flight");
    priority = prep_has_priority<Prep>();
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    return start_op(prep_, awaiting);
  }
  auto await_resume() { return resume_op<Result>(prep_); }

  const Prep& prep() const noexcept { return prep_; }
  // The record, for the loop's own machinery to mark it (Loop::set_daemon).
  Operation& operation() noexcept { return *this; }

 private:
  static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
    static_cast<const OpAwaiter&>(static_cast<IoAwaiterBase&>(operation)).prep_(sqe);
  }

  Prep prep_;
};

// An operation with a deadline enforced by the kernel: the SQE with IOSQE_IO_LINK, then an
// IORING_OP_LINK_TIMEOUT, in one submission (the loop makes room for both). Costs two CQEs.
template <IoPrep Prep, class Result = typename Prep::Result>
class [[nodiscard]] TimedOpAwaiter : IoAwaiterBase {
 public:
  TimedOpAwaiter(Prep prep, std::int64_t due_ns) noexcept
      : IoAwaiterBase(&prepare), prep_(std::move(prep)), timeout_(*this, due_ns) {
    link_timeout = &timeout_;
    priority = prep_has_priority<Prep>();
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    return start_op(prep_, awaiting);
  }
  auto await_resume() { return resume_op<Result>(prep_); }

 private:
  static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
    static_cast<const TimedOpAwaiter&>(static_cast<IoAwaiterBase&>(operation)).prep_(sqe);
  }

  Prep prep_;
  LinkTimeout timeout_;
};

}  // namespace ringloop::detail
