// File: an owning file fd (move-only) with positioned reads and writes, each one SQE as in
// coro/io/io.hpp. File::open is an awaitable IORING_OP_OPENAT. Closed exactly once:
// `co_await file.close()`, or on destruction (through the ring when a loop runs on this thread,
// else ::close).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <fcntl.h>

#include <cstddef>
#include <cstdint>

#include <ringloop/coro/detail/owned_fd.hpp>
#include <ringloop/coro/io/io.hpp>

namespace ringloop {

class File;

namespace detail {
struct OpenedFile : NewFdResult {
  static File convert(std::int32_t result) noexcept;
};
}  // namespace detail

// An open file, owned: move-only, closed exactly once (see the top of this header).
class File : public detail::OwnedFd {
 public:
  using OwnedFd::OwnedFd;

  // Opens path (relative to the working directory, or absolute). The path is read when the SQE
  // is submitted: it must live until the co_await ends.
  static detail::OpAwaiter<detail::OpenatPrep, detail::OpenedFile> open(const char* path, int flags,
                                                                        mode_t mode = 0644) {
    return detail::OpAwaiter<detail::OpenatPrep, detail::OpenedFile>(
        {AT_FDCWD, path, flags | O_CLOEXEC, mode});
  }

  // io::read on this file: up to `size` bytes at `offset`; co_await yields the count, 0 at the end.
  auto read(void* data, std::size_t size, std::uint64_t offset = kCurrentPosition) const noexcept {
    return ringloop::io::read(fd(), data, size, offset);
  }
  // io::write on this file: co_await yields how many bytes were written (maybe fewer).
  auto write(const void* data, std::size_t size,
             std::uint64_t offset = kCurrentPosition) const noexcept {
    return ringloop::io::write(fd(), data, size, offset);
  }
  // io::fsync on this file (IORING_FSYNC_DATASYNC in flags for fdatasync).
  auto fsync(unsigned flags = 0) const noexcept { return ringloop::io::fsync(fd(), flags); }
};

inline File detail::OpenedFile::convert(std::int32_t result) noexcept { return File(result); }

}  // namespace ringloop
