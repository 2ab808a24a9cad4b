// I/O operations for servers, each one SQE: read, write, recv, send, accept, connect, close,
// shutdown, poll, openat, socket, fsync, nop, and submit(prep) for any other opcode. Each
// returns an awaiter (no allocation); awaiting it gives the result or throws std::system_error
// with the errno and the operation's name. Cancelling the awaiting task cancels the SQE in the
// kernel (ASYNC_CANCEL) and ends in CancelledError; the fd stays usable.
//
// wait_for(op, timeout) links an IORING_OP_LINK_TIMEOUT to the operation: the kernel cancels it
// at the deadline, and the awaiter throws TimeoutError. Buffers and paths are the caller's: they
// must live until the co_await ends (a temporary inside the co_await expression does).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>

#include <ringloop/coro/detail/io_awaiter.hpp>
#include <ringloop/coro/task/wait_for.hpp>

namespace ringloop {

// The offset for read and write that means "the file's current position" (and the only one a
// pipe or socket accepts).
inline constexpr std::uint64_t kCurrentPosition = ~std::uint64_t{0};

namespace detail {

// One SQE moves at most this much; a larger request is a short read or write, as read(2) caps
// it at 0x7ffff000 anyway.
inline constexpr std::size_t kMaxTransferBytes = 0x7ffff000;
inline unsigned transfer_length(std::size_t size) noexcept {
  return static_cast<unsigned>(std::min(size, kMaxTransferBytes));
}

struct ReadPrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "read";
  int fd;
  void* data;
  unsigned size;
  std::uint64_t offset;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_read(&sqe, fd, data, size, offset);
  }
};

struct WritePrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "write";
  int fd;
  const void* data;
  unsigned size;
  std::uint64_t offset;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_write(&sqe, fd, data, size, offset);
  }
};

struct RecvPrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "recv";
  int fd;
  void* data;
  unsigned size;
  int flags;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_recv(&sqe, fd, data, size, flags);
  }
};

struct SendPrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "send";
  int fd;
  const void* data;
  unsigned size;
  int flags;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_send(&sqe, fd, data, size, flags);
  }
};

// The peer's address is written by the kernel at completion into the caller's storage (or
// nowhere when null).
struct AcceptPrep {
  using Result = NewFdResult;
  static constexpr const char* name = "accept";
  static constexpr bool priority = true;  // a server keeps accepting whatever its reads owe
  int fd;
  sockaddr* peer;
  socklen_t* peer_length;
  int flags;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_accept(&sqe, fd, peer, peer_length, flags);
  }
};

// The address is copied into the awaiter: the kernel reads it when the SQE is submitted.
struct ConnectPrep {
  using Result = NoResult;
  static constexpr const char* name = "connect";
  int fd;
  socklen_t length;
  sockaddr_storage address;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_connect(&sqe, fd, reinterpret_cast<const sockaddr*>(&address), length);
  }
};

struct ClosePrep {
  using Result = NoResult;
  static constexpr const char* name = "close";
  int fd;
  void operator()(io_uring_sqe& sqe) const noexcept { io_uring_prep_close(&sqe, fd); }
};

struct ShutdownPrep {
  using Result = NoResult;
  static constexpr const char* name = "shutdown";
  static constexpr unsigned opcode = IORING_OP_SHUTDOWN;  // Linux 5.11
  int fd;
  int how;
  // shutdown(2) does not block: the same effect without the ring.
  std::int32_t fallback() const noexcept { return ::shutdown(fd, how) == 0 ? 0 : -errno; }
  void operator()(io_uring_sqe& sqe) const noexcept { io_uring_prep_shutdown(&sqe, fd, how); }
};

struct PollPrep {
  using Result = EventMaskResult;
  static constexpr const char* name = "poll";
  int fd;
  unsigned events;
  void operator()(io_uring_sqe& sqe) const noexcept { io_uring_prep_poll_add(&sqe, fd, events); }
};

struct OpenatPrep {
  using Result = NewFdResult;
  static constexpr const char* name = "openat";
  int directory_fd;
  const char* path;
  int flags;
  mode_t mode;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_openat(&sqe, directory_fd, path, flags, mode);
  }
};

struct SocketPrep {
  using Result = NewFdResult;
  static constexpr const char* name = "socket";
  static constexpr unsigned opcode = IORING_OP_SOCKET;  // Linux 5.19
  int domain;
  int type;
  int protocol;
  // socket(2) does not block: the same fd without the ring.
  std::int32_t fallback() const noexcept {
    int fd = ::socket(domain, type, protocol);
    return fd >= 0 ? fd : -errno;
  }
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_socket(&sqe, domain, type, protocol, 0);
  }
};

struct FsyncPrep {
  using Result = NoResult;
  static constexpr const char* name = "fsync";
  int fd;
  unsigned flags;
  void operator()(io_uring_sqe& sqe) const noexcept { io_uring_prep_fsync(&sqe, fd, flags); }
};

struct NopPrep {
  using Result = NoResult;
  static constexpr const char* name = "nop";
  void operator()(io_uring_sqe& sqe) const noexcept { io_uring_prep_nop(&sqe); }
};

// submit(fill): the SQE the caller filled, copied in at prepare time (so the caller's code runs
// in the awaiting coroutine, where it may throw, never in the loop).
// Kept as bytes: io_uring_sqe ends in a flexible array, which may not be a member.
struct RawPrep {
  using Result = RawResult;
  static constexpr const char* name = "submit";
  alignas(io_uring_sqe) unsigned char sqe_bytes[sizeof(io_uring_sqe)];
  void operator()(io_uring_sqe& out) const noexcept {
    std::memcpy(&out, sqe_bytes, sizeof(io_uring_sqe));
  }
};

}  // namespace detail

template <class Prep>
using Op = detail::OpAwaiter<Prep>;

// The operations live in ringloop::io, not in ringloop itself: their names are libc's (read,
// write, close, socket...), and under `using namespace ringloop;` a call meant for libc must not
// resolve to an awaitable by surprise. Write `io::read(fd, buffer)`, `io::close(fd)`.
namespace io {

// Reads up to `size` bytes at `offset` (the current position by default). 0 at end of file.
inline Op<detail::ReadPrep> read(int fd, void* data, std::size_t size,
                                 std::uint64_t offset = kCurrentPosition) noexcept {
  return Op<detail::ReadPrep>({fd, data, detail::transfer_length(size), offset});
}
inline Op<detail::ReadPrep> read(int fd, std::span<std::byte> buffer,
                                 std::uint64_t offset = kCurrentPosition) noexcept {
  return read(fd, buffer.data(), buffer.size(), offset);
}

// Writes up to `size` bytes at `offset`; returns how many were written (maybe fewer).
inline Op<detail::WritePrep> write(int fd, const void* data, std::size_t size,
                                   std::uint64_t offset = kCurrentPosition) noexcept {
  return Op<detail::WritePrep>({fd, data, detail::transfer_length(size), offset});
}
inline Op<detail::WritePrep> write(int fd, std::span<const std::byte> buffer,
                                   std::uint64_t offset = kCurrentPosition) noexcept {
  return write(fd, buffer.data(), buffer.size(), offset);
}

// Receives up to `size` bytes; 0 when the peer has shut its side down.
inline Op<detail::RecvPrep> recv(int fd, void* data, std::size_t size, int flags = 0) noexcept {
  return Op<detail::RecvPrep>({fd, data, detail::transfer_length(size), flags});
}

// Sends up to `size` bytes. MSG_NOSIGNAL by default: a reset peer is an EPIPE error, not a
// SIGPIPE that kills the server.
inline Op<detail::SendPrep> send(int fd, const void* data, std::size_t size,
                                 int flags = MSG_NOSIGNAL) noexcept {
  return Op<detail::SendPrep>({fd, data, detail::transfer_length(size), flags});
}

// Accepts a connection; returns its fd (SOCK_CLOEXEC by default).
inline Op<detail::AcceptPrep> accept(int fd, int flags = SOCK_CLOEXEC) noexcept {
  return Op<detail::AcceptPrep>({fd, nullptr, nullptr, flags});
}
inline Op<detail::AcceptPrep> accept(int fd, sockaddr* peer, socklen_t* peer_length,
                                     int flags = SOCK_CLOEXEC) noexcept {
  return Op<detail::AcceptPrep>({fd, peer, peer_length, flags});
}

inline Op<detail::ConnectPrep> connect(int fd, const sockaddr* address, socklen_t length) {
  if (length > sizeof(sockaddr_storage))
    throw std::invalid_argument("connect: the address is longer than a sockaddr_storage");
  detail::ConnectPrep prep{fd, length, {}};
  std::memcpy(&prep.address, address, length);
  return Op<detail::ConnectPrep>(prep);
}

inline Op<detail::ClosePrep> close(int fd) noexcept { return Op<detail::ClosePrep>({fd}); }

// IORING_OP_SHUTDOWN (Linux 5.11), or shutdown(2) where the kernel lacks it.
inline Op<detail::ShutdownPrep> shutdown(int fd, int how) noexcept {
  return Op<detail::ShutdownPrep>({fd, how});
}

// Waits until fd is ready for `events` (POLLIN, POLLOUT...); returns the events that are.
inline Op<detail::PollPrep> poll(int fd, unsigned events) noexcept {
  return Op<detail::PollPrep>({fd, events});
}

// Opens path (relative to directory_fd); returns the new fd. O_CLOEXEC is added.
inline Op<detail::OpenatPrep> openat(int directory_fd, const char* path, int flags,
                                     mode_t mode = 0644) noexcept {
  return Op<detail::OpenatPrep>({directory_fd, path, flags | O_CLOEXEC, mode});
}

// Creates a socket; returns its fd. SOCK_CLOEXEC is added. IORING_OP_SOCKET (Linux 5.19), or
// socket(2) where the kernel lacks it.
inline Op<detail::SocketPrep> socket(int domain, int type, int protocol = 0) noexcept {
  return Op<detail::SocketPrep>({domain, type | SOCK_CLOEXEC, protocol});
}

// Flushes fd to storage; IORING_FSYNC_DATASYNC in flags for fdatasync.
inline Op<detail::FsyncPrep> fsync(int fd, unsigned flags = 0) noexcept {
  return Op<detail::FsyncPrep>({fd, flags});
}

// Does nothing in the kernel: a round trip through the ring.
inline Op<detail::NopPrep> nop() noexcept { return Op<detail::NopPrep>({}); }

// Any opcode: fill(sqe) fills a zeroed SQE (with liburing's io_uring_prep_* functions, say),
// now; awaiting returns the CQE's res, negative errno included. user_data is the loop's, and
// the link flags are refused: each operation must stay one SQE with one CQE.
template <class Fill>
requires std::invocable<Fill&, io_uring_sqe&> Op<detail::RawPrep> submit(Fill&& fill) {
  io_uring_sqe sqe{};
  fill(sqe);
  constexpr unsigned kRefusedFlags = IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
  if ((sqe.flags & kRefusedFlags) != 0)
    throw std::invalid_argument(
        "submit: IOSQE_IO_LINK, IOSQE_IO_HARDLINK and IOSQE_CQE_SKIP_SUCCESS are refused (one "
        "SQE, one CQE); use wait_for(op, timeout) for a linked timeout");
  detail::RawPrep prep;
  std::memcpy(prep.sqe_bytes, &sqe, sizeof(sqe));
  return Op<detail::RawPrep>(prep);
}

}  // namespace io

// wait_for on one operation: the operation's SQE linked to an IORING_OP_LINK_TIMEOUT with an
// absolute deadline taken now; TimeoutError when the timeout cut the operation short. More
// specialized than wait_for's generic overload, which would run the operation in a child task.
template <class Prep, class Result, class Rep, class Period>
detail::TimedOpAwaiter<Prep, Result> wait_for(detail::OpAwaiter<Prep, Result>&& op,
                                              std::chrono::duration<Rep, Period> timeout) {
  return detail::TimedOpAwaiter<Prep, Result>(op.prep(),
                                              detail::deadline_after(timeout, "wait_for"));
}
template <class Prep, class Result, class Rep, class Period>
detail::TimedOpAwaiter<Prep, Result> wait_for(detail::OpAwaiter<Prep, Result>& op,
                                              std::chrono::duration<Rep, Period> timeout) {
  return detail::TimedOpAwaiter<Prep, Result>(op.prep(),
                                              detail::deadline_after(timeout, "wait_for"));
}

}  // namespace ringloop
