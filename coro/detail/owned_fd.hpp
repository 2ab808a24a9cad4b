// OwnedFd: a move-only file descriptor that is closed exactly once. close() hands the fd to an
// awaitable IORING_OP_CLOSE; the destructor closes it through the running loop's ring without
// waiting (it cannot await), or with ::close when no loop runs on this thread or the loop's CQ
// budget is full.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <unistd.h>

#include <utility>

#include <ringloop/coro/io/io.hpp>

namespace ringloop::detail {

// OwnedFd::close()'s operation: a NOP for an owner closed already, so that closing twice is a
// no-op (asyncio's close() is idempotent) rather than EBADF.
struct OwnedClosePrep {
  using Result = NoResult;
  static constexpr const char* name = "close";
  int fd;
  void operator()(io_uring_sqe& sqe) const noexcept {
    if (fd < 0)
      io_uring_prep_nop(&sqe);
    else
      io_uring_prep_close(&sqe, fd);
  }
};

class OwnedFd {
 public:
  OwnedFd() noexcept = default;
  explicit OwnedFd(int fd) noexcept : fd_(fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept {
    if (this != &other) {
      close_detached();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~OwnedFd() { close_detached(); }

  int fd() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  // Gives up ownership: the caller closes the fd.
  int release() noexcept { return std::exchange(fd_, -1); }

  // Closes the fd through the ring; the owner is empty from now on, whatever the outcome (as
  // close(2), a failed close must not be retried: the fd may be reused already). Closing an
  // empty owner (closed already, or moved from) does nothing.
  Op<OwnedClosePrep> close() noexcept { return Op<OwnedClosePrep>({release()}); }

 private:
  void close_detached() noexcept {
    if (fd_ < 0) return;
    int fd = std::exchange(fd_, -1);
    Loop* loop = Loop::current();
    bool queued = false;
    try {
      queued = loop != nullptr && loop->try_close_detached(fd);
    } catch (...) {  // io_uring_enter failed making SQ room: the fd is still ours to close
    }
    if (!queued) ::close(fd);
  }

  int fd_ = -1;
};

}  // namespace ringloop::detail
