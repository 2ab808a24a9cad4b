// What an awaiter that waits for some event or a deadline shares (wait(), AsCompleted::next()):
// the optional deadline timer, the cancel point, and the rule that the awaiter resumes once.
// The awaiter calls finish() when its event happens; the deadline and a cancel call it too.
// stop_watching, the awaiter's own, undoes whatever it registered for the event.
//
// The timer is a DetachableTimer: its timespec lives in its own record, so an awaiter whose
// event comes first lets it go and resumes at once, without waiting a loop turn for the
// removal's CQE (the record frees itself then).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cerrno>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <system_error>
#include <utility>

#include <ringloop/coro/detail/detachable_timer.hpp>
#include <ringloop/coro/detail/promise.hpp>

namespace ringloop::detail {

class DeadlineWait : CancelPoint {
 public:
  DeadlineWait(const DeadlineWait&) = delete;
  DeadlineWait& operator=(const DeadlineWait&) = delete;

 protected:
  using StopWatchingFn = void (*)(DeadlineWait&) noexcept;
  explicit DeadlineWait(StopWatchingFn stop_watching) noexcept
      : CancelPoint(&on_cancel), stop_watching_(stop_watching) {}
  ~DeadlineWait() { release_timer(); }  // held only while suspended

  // The loop of the awaiting coroutine, for await_suspend to call before it registers.
  template <class P>
  void begin(std::coroutine_handle<P> awaiting, const char* caller) {
    outer_ = task_of(awaiting);
    loop_ = &loop_for(outer_, caller);
    awaiting_ = awaiting;
  }
  // After registering for the event: arms the deadline and becomes the task's cancel point.
  // With no memory for the timer (or a ring that refuses the submission), it undoes the
  // registration and throws, so the awaiter does not suspend.
  void suspend(std::optional<std::int64_t> deadline) {
    if (deadline) {
      try {
        timer_ = &DetachableTimer::make();
        timer_->arm(*loop_, *deadline, &on_expiry, this);
      } catch (...) {
        release_timer();
        stop_watching_(*this);
        throw;
      }
    }
    if (outer_ != nullptr) {
      outer_->suspend_on(*this);
      if (outer_->must_cancel) {
        outer_->must_cancel = false;
        on_cancel(*this);
      }
    }
  }
  // The first step of await_resume: CancelledError, or the kernel's refusal of the timer.
  void throw_if_cancelled_or_failed(const char* what) {
    if (outer_ != nullptr) outer_->resumed();
    if (cancel_taken_) throw cancelled_error(outer_);
    if (timer_error_ != 0) throw std::system_error(-timer_error_, std::system_category(), what);
  }

  // Stops watching, lets the timer go and resumes the awaiter (once).
  void finish() noexcept {
    if (finished_) return;
    finished_ = true;
    stop_watching_(*this);
    release_timer();
    loop_->schedule(awaiting_);
  }

 private:
  void release_timer() noexcept {
    if (timer_ != nullptr) std::exchange(timer_, nullptr)->release();
  }
  // The deadline passed (-ETIME), or the kernel refused the timer (a negative errno).
  static void on_expiry(void* owner, std::int32_t result) noexcept {
    auto& self = *static_cast<DeadlineWait*>(owner);
    if (result != -ETIME) self.timer_error_ = result;
    self.finish();
  }
  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<DeadlineWait&>(point);
    if (self.finished_) return false;  // its resume is on its way: the cancel waits for it
    self.cancel_taken_ = true;
    self.finish();
    return true;
  }

  DetachableTimer* timer_ = nullptr;  // held while suspended with a deadline
  StopWatchingFn stop_watching_;
  Loop* loop_ = nullptr;
  TaskCore* outer_ = nullptr;
  std::coroutine_handle<> awaiting_;
  std::int32_t timer_error_ = 0;
  bool finished_ = false;
  bool cancel_taken_ = false;
};

}  // namespace ringloop::detail
