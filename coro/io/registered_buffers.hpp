// RegisteredBuffers: memory the kernel maps once (io_uring_register_buffers), so that READ_FIXED
// and WRITE_FIXED skip pinning pages on every operation. It owns the memory (page-aligned, fit
// for O_DIRECT) and the registration: one set per loop (the kernel's rule), unregistered on
// destruction. Unregistering while an operation uses a buffer is refused; it must not outlive
// its loop.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <ringloop/coro/io/io.hpp>
#include <ringloop/loop/assert.hpp>
#include <ringloop/loop/loop.hpp>

namespace ringloop {
namespace detail {

struct ReadFixedPrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "read_fixed";
  int fd;
  void* data;
  unsigned size;
  std::uint64_t offset;
  int buffer_index;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_read_fixed(&sqe, fd, data, size, offset, buffer_index);
  }
};

struct WriteFixedPrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "write_fixed";
  int fd;
  const void* data;
  unsigned size;
  std::uint64_t offset;
  int buffer_index;
  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_write_fixed(&sqe, fd, data, size, offset, buffer_index);
  }
};

// An operation on a registered buffer: counts as a use of the set from its creation to its
// destruction (after its co_await ends), so the set can refuse to go away under it.
template <class Prep>
class [[nodiscard]] FixedBufferOp : public OpAwaiter<Prep> {
 public:
  FixedBufferOp(Prep prep, unsigned& uses) noexcept : OpAwaiter<Prep>(prep), uses_(&uses) {
    ++*uses_;
  }
  FixedBufferOp(FixedBufferOp&& other) noexcept
      : OpAwaiter<Prep>(std::move(other)), uses_(std::exchange(other.uses_, nullptr)) {}
  ~FixedBufferOp() {
    if (uses_ != nullptr) --*uses_;
  }

 private:
  unsigned* uses_;
};

}  // namespace detail

class RegisteredBuffers {
 public:
  // `count` buffers of `buffer_size` bytes (rounded up to 4 KiB), registered with the loop's
  // ring. Throws std::system_error naming the cause: EBUSY (the loop has a set already), ENOMEM
  // (RLIMIT_MEMLOCK on kernels that charge it).
  RegisteredBuffers(Loop& loop, unsigned count, std::size_t buffer_size)
      : loop_(&loop), buffer_size_(round_up(buffer_size)) {
    if (count == 0 || buffer_size == 0)
      throw std::invalid_argument("RegisteredBuffers: count and buffer_size must be positive");
    memory_ = static_cast<std::byte*>(std::aligned_alloc(kAlignment, buffer_size_ * count));
    if (memory_ == nullptr) throw std::bad_alloc();
    std::memset(memory_, 0, buffer_size_ * count);
    std::vector<iovec> iovecs(count);
    for (unsigned i = 0; i < count; ++i) iovecs[i] = {memory_ + i * buffer_size_, buffer_size_};
    int result = io_uring_register_buffers(&loop.ring().raw(), iovecs.data(), count);
    if (result < 0) {
      std::free(memory_);
      throw std::system_error(-result, std::system_category(),
                              std::string("io_uring_register_buffers") +
                                  (result == -EBUSY ? " (the loop has registered buffers already: "
                                                      "one set per loop)"
                                                    : ""));
    }
    count_ = count;
  }
  RegisteredBuffers(const RegisteredBuffers&) = delete;
  RegisteredBuffers& operator=(const RegisteredBuffers&) = delete;
  ~RegisteredBuffers() {
    // An operation awaiting in another task still has the kernel writing into this memory.
    RINGLOOP_ASSERT(uses_ == 0, "RegisteredBuffers destroyed while an operation uses them");
    release();
  }

  unsigned count() const noexcept { return count_; }
  std::size_t buffer_size() const noexcept { return buffer_size_; }
  // How many operations on these buffers exist now (awaited or about to be).
  unsigned in_use() const noexcept { return uses_; }
  std::span<std::byte> buffer(unsigned index) {
    check(index, 0, "buffer");
    return {memory_ + index * buffer_size_, buffer_size_};
  }

  // IORING_OP_READ_FIXED: up to `size` bytes of fd at `offset` into buffer `index`.
  detail::FixedBufferOp<detail::ReadFixedPrep> read(int fd, unsigned index, std::size_t size,
                                                    std::uint64_t offset = kCurrentPosition) {
    check(index, size, "read");
    return {{fd, memory_ + index * buffer_size_, static_cast<unsigned>(size), offset,
             static_cast<int>(index)},
            uses_};
  }
  // IORING_OP_WRITE_FIXED: the first `size` bytes of buffer `index` to fd at `offset`.
  detail::FixedBufferOp<detail::WriteFixedPrep> write(int fd, unsigned index, std::size_t size,
                                                      std::uint64_t offset = kCurrentPosition) {
    check(index, size, "write");
    return {{fd, memory_ + index * buffer_size_, static_cast<unsigned>(size), offset,
             static_cast<int>(index)},
            uses_};
  }

  // Unregisters now and frees the memory; refused (std::logic_error) while an operation uses
  // the buffers. The destructor does the same.
  void unregister() {
    if (uses_ != 0)
      throw std::logic_error("RegisteredBuffers::unregister while " + std::to_string(uses_) +
                             " operation(s) use the buffers");
    release();
  }

 private:
  static constexpr std::size_t kAlignment = 4096;
  static std::size_t round_up(std::size_t size) {
    return (size + kAlignment - 1) / kAlignment * kAlignment;
  }

  void check(unsigned index, std::size_t size, const char* what) const {
    if (count_ == 0)
      throw std::logic_error(std::string("RegisteredBuffers::") + what + " after unregister()");
    if (index >= count_)
      throw std::out_of_range(std::string("RegisteredBuffers::") + what + ": buffer index " +
                              std::to_string(index) + " of " + std::to_string(count_));
    if (size > buffer_size_)
      throw std::out_of_range(std::string("RegisteredBuffers::") + what + ": " +
                              std::to_string(size) + " bytes do not fit a buffer of " +
                              std::to_string(buffer_size_));
  }

  void release() noexcept {
    if (count_ == 0) return;
    // A closed loop took the registration down with its ring.
    if (!loop_->is_closed()) io_uring_unregister_buffers(&loop_->ring().raw());
    std::free(memory_);
    memory_ = nullptr;
    count_ = 0;
  }

  Loop* loop_;
  std::size_t buffer_size_;
  std::byte* memory_ = nullptr;
  unsigned count_ = 0;
  unsigned uses_ = 0;
};

}  // namespace ringloop
