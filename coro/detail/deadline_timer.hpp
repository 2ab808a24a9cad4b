// A deadline for a combinator (wait(), as_completed): one IORING_OP_TIMEOUT with an
// absolute deadline, whose CQE is handed to its owner. The owner holds the timer, so the
// timespec the kernel reads lives until that CQE: an owner that is done early disarms it and
// waits for the CQE before it goes away (liburing #603, asio #1284).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>

#include <cerrno>
#include <cstdint>

#include <ringloop/coro/detail/deadline.hpp>
#include <ringloop/loop/loop.hpp>

namespace ringloop::detail {

class DeadlineTimer : public Operation {
 public:
  // Called from the reaping loop (it may only schedule): expired is true when the deadline
  // passed, false when the timer was disarmed first.
  using OnCqe = void (*)(DeadlineTimer& timer, bool expired) noexcept;

  DeadlineTimer(OnCqe on_cqe, void* owner) noexcept
      : Operation(&prepare, &complete, /*is_timeout_op=*/true), on_cqe_(on_cqe), owner_(owner) {}

  void arm(Loop& loop, std::int64_t deadline) {
    timespec_ = to_timespec(deadline);
    deadline_ns = deadline;  // lets the loop end it in place once it is due
    error_ = 0;
    loop_ = &loop;
    loop.submit(*this);
  }
  // Asks for an early end; the CQE still comes (expired false, unless the deadline won).
  void disarm() noexcept {
    if (armed()) loop_->cancel(*this);
  }
  bool armed() const noexcept { return state != OpState::idle; }
  // A CQE that was neither expiry nor removal: the kernel refused the timeout.
  std::int32_t error() const noexcept { return error_; }
  template <class Owner>
  Owner& owner() const noexcept {
    return *static_cast<Owner*>(owner_);
  }

 private:
  static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
    auto& self = static_cast<DeadlineTimer&>(operation);
    io_uring_prep_timeout(&sqe, &self.timespec_, 0, IORING_TIMEOUT_ABS);
  }
  static void complete(Operation& operation, std::int32_t result, std::uint32_t) noexcept {
    auto& self = static_cast<DeadlineTimer&>(operation);
    if (result != -ETIME && result != -ECANCELED && result != 0) self.error_ = result;
    self.on_cqe_(self, result == -ETIME);
  }

  __kernel_timespec timespec_{};
  OnCqe on_cqe_;
  void* owner_;
  Loop* loop_ = nullptr;
  std::int32_t error_ = 0;
};

}  // namespace ringloop::detail
