// Zero-copy send (IORING_OP_SEND_ZC, Linux 6.0): the kernel sends from the caller's pages
// instead of copying them, and answers with two CQEs: the result (with IORING_CQE_F_MORE), then
// a notification (IORING_CQE_F_NOTIF) once the network stack no longer reads the buffer. The
// awaiter resumes only after the second, so the buffer, which must live until the co_await
// ends, is never reused while the kernel may still read it. The opcode is probed once per loop;
// where the kernel lacks it, send_zc is an ordinary send (one CQE).
//
// Zero copy pays only for large sends to a real NIC: over loopback the kernel copies anyway,
// and the notification costs a CQE (bench `send_zc` measures it on the machine at hand).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>
#include <sys/socket.h>

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include <ringloop/coro/detail/promise.hpp>
#include <ringloop/coro/net/socket.hpp>
#include <ringloop/loop/loop.hpp>

namespace ringloop {
namespace detail {

// Whether loop's ring has IORING_OP_SEND_ZC, probed once per loop (io_uring_get_probe_ring).
// The test seam makes it answer "no" on this thread, to prove the fallback.
inline thread_local bool send_zc_disabled_for_tests = false;
inline bool send_zc_supported(Loop& loop) {
  struct Probed {
    const Loop* loop = nullptr;
    int ring_fd = -1;
    bool supported = false;
  };
  static thread_local Probed probed;
  if (send_zc_disabled_for_tests) return false;
  io_uring& ring = loop.ring().native();
  if (probed.loop != &loop || probed.ring_fd != ring.ring_fd) {
    io_uring_probe* probe = io_uring_get_probe_ring(&ring);
    probed = {&loop, ring.ring_fd,
              probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) != 0};
    if (probe != nullptr) io_uring_free_probe(probe);
  }
  return probed.supported;
}

class [[nodiscard]] SendZcAwaiter : CancelPoint, Operation {
 public:
  SendZcAwaiter(int fd, const void* data, std::size_t size, int flags) noexcept
      : CancelPoint(&on_cancel),
        Operation(&prepare, &complete, /*is_timeout_op=*/false),
        fd_(fd),
        data_(data),
        size_(static_cast<unsigned>(size < 0x7ffff000 ? size : 0x7ffff000)),
        flags_(flags) {}
  SendZcAwaiter(SendZcAwaiter&& other) noexcept
      : SendZcAwaiter(other.fd_, other.data_, other.size_, other.flags_) {
    RINGLOOP_ASSERT(other.state == OpState::idle, "send_zc was moved while in flight");
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    task_ = task_of(awaiting);
    if (task_ != nullptr && task_->must_cancel) return false;
    loop_ = &loop_for(task_, "send_zc");
    zero_copy_ = send_zc_supported(*loop_);
    awaiting_ = awaiting;
    loop_->submit(*this);
    if (zero_copy_) loop_->count_zero_copy_send();
    if (task_ != nullptr) task_->suspend_on(*this);
    return true;
  }
  // Bytes sent (maybe fewer than asked, as with send).
  std::size_t await_resume() {
    RINGLOOP_ASSERT(state == OpState::idle, "send_zc resumed before its last CQE");
    if (task_ != nullptr) task_->resumed();
    if (cancel_taken_ || result_ == -ECANCELED) throw cancelled_error(task_);
    if (result_ < 0) throw std::system_error(-result_, std::system_category(), "send_zc");
    return static_cast<std::size_t>(result_);
  }
  // Whether the send went as SEND_ZC (false: the kernel lacks it and a plain send went).
  bool zero_copy() const noexcept { return zero_copy_; }

 private:
  static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
    auto& self = static_cast<SendZcAwaiter&>(operation);
    if (self.zero_copy_)
      io_uring_prep_send_zc(&sqe, self.fd_, self.data_, self.size_, self.flags_, 0);
    else
      io_uring_prep_send(&sqe, self.fd_, self.data_, self.size_, self.flags_);
  }
  // The result comes first (F_MORE when a notification follows); the notification (F_NOTIF)
  // is the last CQE, after which the kernel no longer reads the buffer.
  static void complete(Operation& operation, std::int32_t result, std::uint32_t flags) noexcept {
    auto& self = static_cast<SendZcAwaiter&>(operation);
    if ((flags & IORING_CQE_F_NOTIF) == 0) self.result_ = result;
    if ((flags & IORING_CQE_F_MORE) == 0) self.loop_->schedule(self.awaiting_);
  }
  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<SendZcAwaiter&>(point);
    if (self.state == OpState::idle) return false;  // the resume is on its way
    self.cancel_taken_ = true;
    self.loop_->cancel(self);
    return true;
  }

  int fd_;
  const void* data_;
  unsigned size_;
  int flags_;
  bool zero_copy_ = false;
  bool cancel_taken_ = false;
  std::int32_t result_ = -ECANCELED;
  Loop* loop_ = nullptr;
  TaskCore* task_ = nullptr;
  std::coroutine_handle<> awaiting_;
};

}  // namespace detail

// Sends up to size bytes of data on socket without copying them (SEND_ZC), or with an
// ordinary send where the kernel lacks it. data must live until the co_await ends, which is
// after the kernel's release notification.
inline detail::SendZcAwaiter send_zc(const Socket& socket, const void* data, std::size_t size,
                                     int flags = MSG_NOSIGNAL) noexcept {
  return detail::SendZcAwaiter(socket.fd(), data, size, flags);
}

}  // namespace ringloop
