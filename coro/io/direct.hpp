// Direct descriptors (registered files): sockets and files that live in the ring's own file
// table instead of the process's, so that each operation on them skips the fd lookup and its
// reference count (IOSQE_FIXED_FILE). Opt-in: a DirectFileTable registers a sparse table with the
// loop's ring (Linux 5.19), io::accept_direct / socket_direct / openat_direct let the kernel
// pick a free slot (IORING_FILE_INDEX_ALLOC), and the DirectFd they return carries the slot, so
// that a direct descriptor cannot be passed where an fd is meant. Closed exactly once:
// io::install_direct(fd) puts an fd opened the usual way into a slot too. Closed exactly once:
// `co_await direct.close()` (IORING_OP_CLOSE on the slot), or on destruction (the slot cleared
// with io_uring_register_files_update, a register call that does not block).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <ringloop/coro/io/io.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/loop/loop.hpp>
#include <ringloop/loop/probe.hpp>

namespace ringloop {

class DirectFd;

namespace detail {

// Clears a slot of the running loop's table: the kernel closes the file it held.
inline void clear_direct_slot(Loop* loop, int index) noexcept {
  if (loop == nullptr || loop->is_closed() || index < 0) return;
  int none = -1;
  io_uring_register_files_update(&loop->ring().raw(), static_cast<unsigned>(index), &none, 1);
}

// The result of an operation that allocates a slot: the slot, as a DirectFd. One that completed
// although its awaiter was cancelled is cleared, as a new fd would be closed (tokio #7979).
struct NewDirectFdResult : ResultPolicy {
  static DirectFd convert(std::int32_t result) noexcept;
  static void discard(std::int32_t result) noexcept {
    if (result >= 0) clear_direct_slot(Loop::current(), result);
  }
};

// Any prep, on a direct descriptor: its fd field holds the slot, and the SQE says so.
template <class Inner>
struct FixedFile : Inner {
  void operator()(io_uring_sqe& sqe) const noexcept {
    Inner::operator()(sqe);
    sqe.flags |= IOSQE_FIXED_FILE;
  }
};

// IORING_FILE_INDEX_ALLOC: liburing's helpers add one to the slot they are given (0 means "no
// slot"), hence the - 1.
inline constexpr unsigned kAllocSlot = IORING_FILE_INDEX_ALLOC - 1;

struct AcceptDirectPrep {
  using Result = NewDirectFdResult;
  static constexpr const char* name = "accept_direct";
  static constexpr unsigned opcode = IORING_OP_SOCKET;  // slot allocation came with it, in 5.19
  int fd;
  int flags;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_accept_direct(&sqe, fd, nullptr, nullptr, flags, kAllocSlot);
  }
};

struct SocketDirectPrep {
  using Result = NewDirectFdResult;
  static constexpr const char* name = "socket_direct";
  static constexpr unsigned opcode = IORING_OP_SOCKET;
  int domain;
  int type;
  int protocol;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_socket_direct_alloc(&sqe, domain, type, protocol, 0);
  }
};

struct OpenatDirectPrep {
  using Result = NewDirectFdResult;
  static constexpr const char* name = "openat_direct";
  static constexpr unsigned opcode = IORING_OP_SOCKET;  // slot allocation: 5.19
  int directory_fd;
  const char* path;
  int flags;
  mode_t mode;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_openat_direct(&sqe, directory_fd, path, flags, mode, kAllocSlot);
  }
  std::string describe() const { return std::string(name) + " " + path; }
};

// IORING_OP_CLOSE on a slot (a NOP for an owner closed already, as OwnedFd's close).
struct CloseDirectPrep {
  using Result = NoResult;
  static constexpr const char* name = "close_direct";
  int index;
  void operator()(io_uring_sqe& sqe) const noexcept {
    if (index < 0)
      io_uring_prep_nop(&sqe);
    else
      io_uring_prep_close_direct(&sqe, static_cast<unsigned>(index));
  }
};

}  // namespace detail

// The loop's table of direct descriptors: `slots` empty slots registered with its ring (one
// table per loop: a second is EBUSY, said so). Unregistering it (destruction) closes every
// direct descriptor still in it. It must not outlive its loop.
class DirectFileTable {
 public:
  DirectFileTable(Loop& loop, unsigned slots) : loop_(&loop) {
    if (slots == 0) throw std::invalid_argument("DirectFileTable: slots must be positive");
    int result = io_uring_register_files_sparse(&loop.ring().raw(), slots);
    if (result == -EBUSY)
      throw std::system_error(EBUSY, std::system_category(),
                              "DirectFileTable: the loop has a file table already (one per loop)");
    if (result == -EINVAL && !loop.ring().probe().has(IORING_OP_SOCKET))
      throw std::system_error(ENOSYS, std::system_category(),
                              "DirectFileTable: sparse file tables and slot allocation need Linux "
                              "5.19; this kernel is " +
                                  kernel_version());
    if (result < 0)
      throw std::system_error(-result, std::system_category(),
                              "DirectFileTable: io_uring_register_files_sparse(" +
                                  std::to_string(slots) + ")" +
                                  (result == -EMFILE ? " (more slots than RLIMIT_NOFILE)" : ""));
    slots_ = slots;
  }
  DirectFileTable(const DirectFileTable&) = delete;
  DirectFileTable& operator=(const DirectFileTable&) = delete;
  ~DirectFileTable() {
    if (!loop_->is_closed()) io_uring_unregister_files(&loop_->ring().raw());
  }
  unsigned slots() const noexcept { return slots_; }

 private:
  Loop* loop_;
  unsigned slots_ = 0;
};

// A direct descriptor, owned: move-only, its slot cleared exactly once (see the top of this
// header). Its operations are the plain ones with IOSQE_FIXED_FILE.
class DirectFd {
 public:
  DirectFd() noexcept = default;
  DirectFd(Loop* loop, int index) noexcept : loop_(loop), index_(index) {}
  DirectFd(DirectFd&& other) noexcept
      : loop_(other.loop_), index_(std::exchange(other.index_, -1)) {}
  DirectFd& operator=(DirectFd&& other) noexcept {
    if (this != &other) {
      detail::clear_direct_slot(loop_, index_);
      loop_ = other.loop_;
      index_ = std::exchange(other.index_, -1);
    }
    return *this;
  }
  ~DirectFd() { detail::clear_direct_slot(loop_, index_); }

  // The slot in the loop's table (not an fd: no system call outside the ring knows it).
  int index() const noexcept { return index_; }
  bool valid() const noexcept { return index_ >= 0; }

  auto recv(void* data, std::size_t size, int flags = 0) const noexcept {
    return fixed<detail::RecvPrep>({index_, data, detail::transfer_length(size), flags});
  }
  auto send(const void* data, std::size_t size, int flags = MSG_NOSIGNAL) const noexcept {
    return fixed<detail::SendPrep>({index_, data, detail::transfer_length(size), flags});
  }
  auto read(void* data, std::size_t size, std::uint64_t offset = kCurrentPosition) const noexcept {
    return fixed<detail::ReadPrep>({index_, data, detail::transfer_length(size), offset});
  }
  auto write(const void* data, std::size_t size,
             std::uint64_t offset = kCurrentPosition) const noexcept {
    return fixed<detail::WritePrep>({index_, data, detail::transfer_length(size), offset});
  }
  auto connect(const sockaddr* address, socklen_t length) const {
    if (length > sizeof(sockaddr_storage))
      throw std::invalid_argument("connect: the address is longer than a sockaddr_storage");
    detail::ConnectPrep prep{index_, length, {}};
    std::memcpy(&prep.address, address, length);
    return fixed<detail::ConnectPrep>(prep);
  }
  auto shutdown(int how) const noexcept { return fixed<detail::ShutdownPrep>({index_, how}); }
  // IORING_OP_CLOSE on the slot; the owner is empty from now on, whatever the outcome.
  Op<detail::CloseDirectPrep> close() noexcept {
    return Op<detail::CloseDirectPrep>({std::exchange(index_, -1)});
  }

 private:
  template <class Prep>
  static Op<detail::FixedFile<Prep>> fixed(Prep prep) noexcept {
    return Op<detail::FixedFile<Prep>>(detail::FixedFile<Prep>{prep});
  }

  Loop* loop_ = nullptr;
  int index_ = -1;
};

inline DirectFd detail::NewDirectFdResult::convert(std::int32_t result) noexcept {
  return DirectFd(Loop::current(), result);
}

namespace io {

// Accepts a connection into a free slot of the loop's DirectFileTable (Linux 5.19).
inline Op<detail::AcceptDirectPrep> accept_direct(int listener_fd, int flags = 0) noexcept {
  return Op<detail::AcceptDirectPrep>({listener_fd, flags & ~SOCK_CLOEXEC});
}
// A socket in a free slot (the kernel refuses SOCK_CLOEXEC there: a slot is never inherited).
inline Op<detail::SocketDirectPrep> socket_direct(int domain, int type, int protocol = 0) noexcept {
  return Op<detail::SocketDirectPrep>({domain, type & ~SOCK_CLOEXEC, protocol});
}
// Opens path into a free slot.
inline Op<detail::OpenatDirectPrep> openat_direct(int directory_fd, const char* path, int flags,
                                                  mode_t mode = 0644) noexcept {
  return Op<detail::OpenatDirectPrep>({directory_fd, path, flags & ~O_CLOEXEC, mode});
}

// Puts an open fd into a free slot as well (IORING_OP_FILES_UPDATE with IORING_FILE_INDEX_ALLOC,
// Linux 5.19): for a socket set up with system calls first (setsockopt). The fd stays open and
// the caller's: closing it does not close the slot's reference, nor the other way round.
inline Coro<DirectFd> install_direct(int fd) {
  Loop::running("io::install_direct")
      .ring()
      .probe()
      .require(IORING_OP_SOCKET, "install_direct (slot allocation)");
  int slot = fd;  // the kernel writes the slot it picked here; the frame keeps it alive
  std::int32_t result = co_await submit([&slot](io_uring_sqe& sqe) {
    // liburing takes the offset as an int; the kernel reads it back as a u32 (~0U).
    io_uring_prep_files_update(&sqe, &slot, 1, static_cast<int>(IORING_FILE_INDEX_ALLOC));
  });
  if (result < 0)
    throw std::system_error(-result, std::system_category(),
                            "install_direct (fd " + std::to_string(fd) + ")");
  co_return DirectFd(Loop::current(), slot);
}

}  // namespace io
}  // namespace ringloop
