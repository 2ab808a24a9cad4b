// Moving bytes between descriptors without copying them through user memory: io::splice and
// io::tee (one SQE each, IORING_OP_SPLICE, Linux 5.7, and IORING_OP_TEE, 5.8; one end of each
// must be a pipe), and sendfile(out, file, offset, count): a file to a socket or any fd, through
// a pipe of its own, one splice into the pipe and then splices out of it until it is empty.
//
// The kernel runs a splice or tee in one of its io-wq workers, blocking there until data comes.
// A cancel reaches it (the kernel interrupts the worker), and so does a timeout() scope, which
// cancels; but on Linux 6.18 (here) a link timeout on such a request is never armed, so
// wait_for(io::splice(...), t) on a source that stays silent does not time out. Put a deadline
// on a splice with timeout(t, coro), not wait_for. When the process is stopped and continued
// while a splice waits, the worker is interrupted too; the loop submits the splice again.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include <ringloop/coro/io/io.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {
namespace detail {

struct SplicePrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "splice";
  static constexpr unsigned opcode = IORING_OP_SPLICE;  // Linux 5.7
  int fd_in;
  std::int64_t offset_in;  // -1: the fd's position (a pipe or socket has no other)
  int fd_out;
  std::int64_t offset_out;
  unsigned size;
  unsigned flags;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_splice(&sqe, fd_in, offset_in, fd_out, offset_out, size, flags);
  }
};

struct TeePrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "tee";
  static constexpr unsigned opcode = IORING_OP_TEE;  // Linux 5.8
  int fd_in;
  int fd_out;
  unsigned size;
  unsigned flags;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_tee(&sqe, fd_in, fd_out, size, flags);
  }
};

// A pipe owned for one sendfile; closed with ::close (it never held an SQE of its own after
// the last splice ended).
struct OwnedPipe {
  int read_end = -1;
  int write_end = -1;
  OwnedPipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw std::system_error(errno, std::system_category(), "sendfile: pipe2");
    read_end = fds[0];
    write_end = fds[1];
  }
  OwnedPipe(const OwnedPipe&) = delete;
  OwnedPipe& operator=(const OwnedPipe&) = delete;
  ~OwnedPipe() {
    ::close(read_end);
    ::close(write_end);
  }
};

// sendfile's chunk: as much as a pipe holds when it may grow to 1 MiB (F_SETPIPE_SZ; the
// default limit of /proc/sys/fs/pipe-max-size). A smaller pipe makes splice return less, and
// the loop below goes round more often.
inline constexpr std::size_t kSendfileChunkBytes = std::size_t{1} << 20;

}  // namespace detail

namespace io {

// Offset for splice that means "the fd's current position" (the only one a pipe or socket has).
inline constexpr std::int64_t kNoOffset = -1;

// Moves up to `size` bytes from fd_in to fd_out, one of which is a pipe; returns how many moved
// (0: fd_in at its end). SPLICE_F_* flags (SPLICE_F_MOVE, SPLICE_F_NONBLOCK...).
inline Op<detail::SplicePrep> splice(int fd_in, std::int64_t offset_in, int fd_out,
                                     std::int64_t offset_out, std::size_t size,
                                     unsigned flags = 0) noexcept {
  return Op<detail::SplicePrep>(
      {fd_in, offset_in, fd_out, offset_out, detail::transfer_length(size), flags});
}
inline Op<detail::SplicePrep> splice(int fd_in, int fd_out, std::size_t size,
                                     unsigned flags = 0) noexcept {
  return splice(fd_in, kNoOffset, fd_out, kNoOffset, size, flags);
}

// Duplicates up to `size` bytes from pipe fd_in into pipe fd_out without consuming them.
inline Op<detail::TeePrep> tee(int fd_in, int fd_out, std::size_t size,
                               unsigned flags = 0) noexcept {
  return Op<detail::TeePrep>({fd_in, fd_out, detail::transfer_length(size), flags});
}

}  // namespace io

// Sends `count` bytes of file_fd from `offset` to out_fd (a socket, a pipe, a file), without
// copying them through user memory: file -> pipe -> out_fd, a chunk at a time. Returns how many
// bytes were sent: fewer than `count` only when the file ends first. Errors are splice's
// (std::system_error); a cancel or an error leaves out_fd with a prefix of the bytes.
inline Coro<std::size_t> sendfile(int out_fd, int file_fd, std::uint64_t offset,
                                  std::size_t count) {
  detail::OwnedPipe pipe;
  ::fcntl(pipe.write_end, F_SETPIPE_SZ, static_cast<int>(detail::kSendfileChunkBytes));
  std::size_t sent = 0;
  while (sent < count) {
    std::size_t want = std::min(count - sent, detail::kSendfileChunkBytes);
    std::size_t in_pipe = co_await io::splice(file_fd, static_cast<std::int64_t>(offset + sent),
                                              pipe.write_end, io::kNoOffset, want, SPLICE_F_MOVE);
    if (in_pipe == 0) break;  // the file ended
    for (std::size_t out = 0; out < in_pipe;) {
      std::size_t moved = co_await io::splice(pipe.read_end, io::kNoOffset, out_fd, io::kNoOffset,
                                              in_pipe - out, SPLICE_F_MOVE);
      if (moved == 0)
        throw std::system_error(EPIPE, std::system_category(), "sendfile: the output ended");
      out += moved;
    }
    sent += in_pipe;
  }
  co_return sent;
}

}  // namespace ringloop
