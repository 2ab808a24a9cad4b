// What an awaiter that waits for some event or a deadline shares (wait(), AsCompleted::next()):
// the optional deadline timer, the cancel point, and the rule that the awaiter resumes once, and
// only after the timer's CQE (if one is owed) has come back, since the timer's timespec lives in
// the awaiter. The awaiter calls finish() when its event happens; the deadline and a cancel
// call it too. stop_watching, the awaiter's own, undoes whatever it registered for the event.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <cstdint>
#include <optional>
#include <system_error>

#include <ringloop/coro/detail/deadline_timer.hpp>
#include <ringloop/coro/detail/promise.hpp>

namespace ringloop::detail {

class DeadlineWait : CancelPoint {
 public:
  DeadlineWait(const DeadlineWait&) = delete;
  DeadlineWait& operator=(const DeadlineWait&) = delete;

 protected:
  using StopWatchingFn = void (*)(DeadlineWait&) noexcept;
  explicit DeadlineWait(StopWatchingFn stop_watching) noexcept
      : CancelPoint(&on_cancel), timer_(&on_timer_cqe, this), stop_watching_(stop_watching) {}

  // The loop of the awaiting coroutine, for await_suspend to call before it registers.
  template <class P>
  void begin(std::coroutine_handle<P> awaiting, const char* caller) {
    outer_ = task_of(awaiting);
    loop_ = &loop_for(outer_, caller);
    awaiting_ = awaiting;
  }
  // After registering for the event: arms the deadline and becomes the task's cancel point.
  void suspend(std::optional<std::int64_t> deadline) {
    if (deadline) timer_.arm(*loop_, *deadline);
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
    if (timer_.error() != 0) throw std::system_error(-timer_.error(), std::system_category(), what);
  }

  // Stops watching; resumes the awaiter once the timer's CQE, if one is owed, has come.
  void finish() noexcept {
    if (!finishing_) {
      finishing_ = true;
      stop_watching_(*this);
      timer_.disarm();
    }
    if (!timer_.armed() && !resume_scheduled_) {
      resume_scheduled_ = true;
      loop_->schedule(awaiting_);
    }
  }

 private:
  static void on_timer_cqe(DeadlineTimer& timer, bool) noexcept {
    timer.owner<DeadlineWait>().finish();
  }
  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<DeadlineWait&>(point);
    if (self.finishing_) return false;  // its resume is on its way: the cancel waits for it
    self.cancel_taken_ = true;
    self.finish();
    return true;
  }

  DeadlineTimer timer_;
  StopWatchingFn stop_watching_;
  Loop* loop_ = nullptr;
  TaskCore* outer_ = nullptr;
  std::coroutine_handle<> awaiting_;
  bool finishing_ = false;
  bool resume_scheduled_ = false;
  bool cancel_taken_ = false;
};

}  // namespace ringloop::detail
