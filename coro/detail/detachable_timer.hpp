// A deadline whose owner may go before the timer's CQE comes (wait_for, timeout(), wait(),
// as_completed). The owner holds a pointer to a record from the frame pool, not the record
// itself, so when its work ends first it lets go of the timer and goes on at once: a timer the
// kernel holds is removed (TIMEOUT_REMOVE) and its record frees itself when that CQE comes; one
// that never reached the kernel (the loop's lazy timers, the virtual clock, the FIFO) ends in
// place. An owner that waited for the removal's CQE instead would resume a loop iteration (an
// io_uring_enter) late, after every wait_for around a read that came in time.
//
// The record is the SQE's user_data, so it outlives every CQE of its timer; the loop counts it
// in flight until then, and a closing loop drives it out before the ring goes.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>

#include <cerrno>
#include <cstdint>
#include <new>

#include <ringloop/coro/detail/deadline.hpp>
#include <ringloop/coro/detail/frame_pool.hpp>
#include <ringloop/loop/loop.hpp>

namespace ringloop::detail {

class DetachableTimer final : Operation {
 public:
  // Called from the reaping loop while the owner holds the timer (it may only schedule):
  // result is -ETIME when the deadline passed, else the kernel's refusal (a negative errno).
  using OnExpiry = void (*)(void* owner, std::int32_t result) noexcept;

  // A record from the frame pool, not armed yet (throws bad_alloc): made before the work it
  // times starts, so that arming it after cannot fail. The owner arms it or releases it.
  static DetachableTimer& make() {
    void* memory = allocate_frame(sizeof(DetachableTimer));
    return *::new (memory) DetachableTimer;
  }

  // Arms the timer for an absolute CLOCK_MONOTONIC deadline (ns) on loop; on_expiry(owner, ...)
  // is called if it passes before release().
  void arm(Loop& loop, std::int64_t deadline, OnExpiry on_expiry, void* owner) {
    timespec_ = to_timespec(deadline);
    deadline_ns = deadline;  // lets the loop end it in place once it is due
    on_expiry_ = on_expiry;
    owner_ = owner;
    loop_ = &loop;
    loop.submit(*this);
  }

  DetachableTimer(const DetachableTimer&) = delete;
  DetachableTimer& operator=(const DetachableTimer&) = delete;

  // The owner is done with the timer (its work ended, or it is going away): no callback comes
  // after this. The record frees itself now, or when the kernel's last CQE for it comes.
  void release() noexcept {
    on_expiry_ = nullptr;
    if (state == OpState::idle) {
      free();
      return;
    }
    loop_->cancel(*this);  // ends it in place (and frees it) unless the kernel holds it
  }

 private:
  DetachableTimer() noexcept : Operation(&prepare, &complete, /*is_timeout_op=*/true) {}
  ~DetachableTimer() = default;

  void free() noexcept {
    this->~DetachableTimer();
    deallocate_frame(this, sizeof(DetachableTimer));
  }

  static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
    auto& self = static_cast<DetachableTimer&>(operation);
    io_uring_prep_timeout(&sqe, &self.timespec_, 0, IORING_TIMEOUT_ABS);
  }

  static void complete(Operation& operation, std::int32_t result, std::uint32_t) noexcept {
    auto& self = static_cast<DetachableTimer&>(operation);
    if (self.on_expiry_ == nullptr) {  // released: this was the CQE it waited for
      self.free();
      return;
    }
    // -ECANCELED only comes after release(); 0 (a count-based completion) is not asked for.
    if (result == -ECANCELED || result == 0) return;
    self.on_expiry_(self.owner_, result);
  }

  __kernel_timespec timespec_{};
  OnExpiry on_expiry_ = nullptr;
  void* owner_ = nullptr;
  Loop* loop_ = nullptr;
};

}  // namespace ringloop::detail
