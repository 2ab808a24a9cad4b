// File-system operations, each one SQE as in coro/io/io.hpp: statx, readv/writev, fallocate,
// unlinkat, renameat, mkdirat, ftruncate. Paths and iovecs are the caller's and must live until
// the co_await ends. A failure is std::system_error whose message names the path ("statx
// /no/such/file: No such file or directory"). Opcodes newer than the floor (5.6) are probed:
// renameat and unlinkat need 5.11, mkdirat 5.15 (an older kernel gets an error naming it);
// ftruncate (IORING_OP_FTRUNCATE, 6.9) runs on a worker thread where the kernel lacks it.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>

#include <ringloop/coro/io/io.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/coro/thread/to_thread.hpp>
#include <ringloop/loop/probe.hpp>

namespace ringloop {
namespace detail {

// "statx /tmp/x", or "statx (fd 7)" for an empty path (AT_EMPTY_PATH).
inline std::string describe_path(const char* operation, int directory_fd, const char* path) {
  if (path != nullptr && path[0] != '\0') return std::string(operation) + " " + path;
  return std::string(operation) + " (fd " + std::to_string(directory_fd) + ")";
}

struct StatxPrep {
  using Result = NoResult;
  static constexpr const char* name = "statx";
  int directory_fd;
  const char* path;
  int flags;
  unsigned mask;
  struct statx* out;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_statx(&sqe, directory_fd, path, flags, mask, out);
  }
  std::string describe() const { return describe_path(name, directory_fd, path); }
};

struct ReadvPrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "readv";
  int fd;
  const iovec* buffers;
  unsigned count;
  std::uint64_t offset;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_readv(&sqe, fd, buffers, count, offset);
  }
};

struct WritevPrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "writev";
  int fd;
  const iovec* buffers;
  unsigned count;
  std::uint64_t offset;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_writev(&sqe, fd, buffers, count, offset);
  }
};

struct FallocatePrep {
  using Result = NoResult;
  static constexpr const char* name = "fallocate";
  int fd;
  int mode;
  std::uint64_t offset;
  std::uint64_t length;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_fallocate(&sqe, fd, mode, static_cast<off_t>(offset), static_cast<off_t>(length));
  }
};

struct UnlinkatPrep {
  using Result = NoResult;
  static constexpr const char* name = "unlinkat";
  static constexpr unsigned opcode = IORING_OP_UNLINKAT;  // Linux 5.11
  int directory_fd;
  const char* path;
  int flags;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_unlinkat(&sqe, directory_fd, path, flags);
  }
  std::string describe() const { return describe_path(name, directory_fd, path); }
};

struct RenameatPrep {
  using Result = NoResult;
  static constexpr const char* name = "renameat";
  static constexpr unsigned opcode = IORING_OP_RENAMEAT;  // Linux 5.11
  int old_directory_fd;
  const char* old_path;
  int new_directory_fd;
  const char* new_path;
  unsigned flags;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_renameat(&sqe, old_directory_fd, old_path, new_directory_fd, new_path, flags);
  }
  std::string describe() const { return std::string(name) + " " + old_path + " to " + new_path; }
};

struct MkdiratPrep {
  using Result = NoResult;
  static constexpr const char* name = "mkdirat";
  static constexpr unsigned opcode = IORING_OP_MKDIRAT;  // Linux 5.15
  int directory_fd;
  const char* path;
  mode_t mode;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_mkdirat(&sqe, directory_fd, path, mode);
  }
  std::string describe() const { return describe_path(name, directory_fd, path); }
};

// IORING_OP_FTRUNCATE (Linux 6.9) is newer than liburing 2.3: the SQE is filled by hand, as
// the kernel's io_ftruncate_prep reads it (the length in `off`, every other field zero).
struct FtruncatePrep {
  using Result = NoResult;
  static constexpr const char* name = "ftruncate";
  int fd;
  std::uint64_t length;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_rw(static_cast<int>(kOpFtruncate), &sqe, fd, nullptr, 0, length);
  }
};

}  // namespace detail

namespace io {

// Fills `out` with what statx(2) says of path (relative to directory_fd; AT_EMPTY_PATH with an
// empty path for directory_fd itself). `mask`: the STATX_* fields wanted.
inline Op<detail::StatxPrep> statx(int directory_fd, const char* path, int flags, unsigned mask,
                                   struct statx& out) noexcept {
  return Op<detail::StatxPrep>({directory_fd, path, flags, mask, &out});
}

// Scatter read and gather write at `offset` (the current position by default); the count of
// bytes moved, maybe fewer than asked.
inline Op<detail::ReadvPrep> readv(int fd, std::span<const iovec> buffers,
                                   std::uint64_t offset = kCurrentPosition) noexcept {
  return Op<detail::ReadvPrep>({fd, buffers.data(), static_cast<unsigned>(buffers.size()), offset});
}
inline Op<detail::WritevPrep> writev(int fd, std::span<const iovec> buffers,
                                     std::uint64_t offset = kCurrentPosition) noexcept {
  return Op<detail::WritevPrep>(
      {fd, buffers.data(), static_cast<unsigned>(buffers.size()), offset});
}

// fallocate(2): mode 0 allocates [offset, offset + length) (growing the file); FALLOC_FL_*
// for the rest (punching holes, keeping the size).
inline Op<detail::FallocatePrep> fallocate(int fd, int mode, std::uint64_t offset,
                                           std::uint64_t length) noexcept {
  return Op<detail::FallocatePrep>({fd, mode, offset, length});
}

// unlinkat(2): removes a file, or an empty directory with AT_REMOVEDIR.
inline Op<detail::UnlinkatPrep> unlinkat(int directory_fd, const char* path,
                                         int flags = 0) noexcept {
  return Op<detail::UnlinkatPrep>({directory_fd, path, flags});
}

// renameat2(2) (flags: RENAME_NOREPLACE, RENAME_EXCHANGE).
inline Op<detail::RenameatPrep> renameat(int old_directory_fd, const char* old_path,
                                         int new_directory_fd, const char* new_path,
                                         unsigned flags = 0) noexcept {
  return Op<detail::RenameatPrep>({old_directory_fd, old_path, new_directory_fd, new_path, flags});
}

inline Op<detail::MkdiratPrep> mkdirat(int directory_fd, const char* path,
                                       mode_t mode = 0755) noexcept {
  return Op<detail::MkdiratPrep>({directory_fd, path, mode});
}

// ftruncate(2): IORING_OP_FTRUNCATE where the kernel has it (6.9), else the system call on the
// default thread pool's worker (it may block on the file system), as to_thread would.
inline Coro<> ftruncate(int fd, std::uint64_t length) {
  if (Loop::running("io::ftruncate").ring().probe().has(kOpFtruncate)) {
    co_await Op<detail::FtruncatePrep>({fd, length});
    co_return;
  }
  int error = co_await to_thread(
      [fd, length] { return ::ftruncate(fd, static_cast<off_t>(length)) == 0 ? 0 : errno; });
  if (error != 0) throw std::system_error(error, std::system_category(), "ftruncate");
}

}  // namespace io
}  // namespace ringloop
