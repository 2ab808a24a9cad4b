// Provided buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19): a group of equal buffers the
// kernel picks from when a receive completes, so an idle connection holds no buffer. A
// BufferRing registers one group with its loop's ring; receive_multishot(socket, ring) is the
// stream of what a socket receives, each result a Buffer: a move-only handle that gives its
// buffer back to the ring when it is destroyed, whatever path destroys it (taken, dropped,
// queued and never taken, cancelled, the loop closing). A ring that runs dry ends the kernel's
// multishot receive with -ENOBUFS and the data stays in the socket; the stream re-arms when a
// buffer comes back, so no byte is lost.
//
// liburing 2.3 has io_uring_register_buf_ring and the io_uring_buf_ring_* helpers, not 2.4's
// io_uring_setup_buf_ring: the ring's memory is mapped here.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>
#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <ringloop/coro/io/multishot.hpp>
#include <ringloop/coro/net/socket.hpp>
#include <ringloop/loop/detail/intrusive_list.hpp>
#include <ringloop/loop/loop.hpp>

namespace ringloop {

namespace detail {

// The group behind a BufferRing: the mapped ring, the buffers' memory, and who waits for a
// buffer. Counted by hand (loop thread only): the BufferRing, each Buffer out and each stream
// hold it, so it lives until the last of them, and unregisters while its loop is open.
class BufferGroup {
 public:
  BufferGroup(Loop& loop, unsigned count, std::size_t buffer_size)
      : loop_(loop), count_(count), buffer_size_(buffer_size) {
    if (count == 0 || count > 32768 || (count & (count - 1)) != 0)
      throw std::invalid_argument(
          "BufferRing: the buffer count must be a power of two, 1 to 32768");
    if (buffer_size == 0 || buffer_size > 0xffffffffu)
      throw std::invalid_argument("BufferRing: the buffer size must be 1 byte to 4 GiB");
    std::size_t ring_bytes = count * sizeof(io_uring_buf);
    void* mapped =
        ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mapped == MAP_FAILED)
      throw std::system_error(errno, std::system_category(), "BufferRing: mmap");
    ring_ = static_cast<io_uring_buf_ring*>(mapped);
    memory_ = std::make_unique<std::byte[]>(count * buffer_size);
    group_id_ = next_group_id();
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_);
    reg.ring_entries = count;
    reg.bgid = group_id_;
    int result = io_uring_register_buf_ring(&loop.ring().native(), &reg, 0);
    if (result < 0) {
      ::munmap(ring_, ring_bytes);
      throw std::system_error(-result, std::system_category(),
                              "BufferRing: io_uring_register_buf_ring (provided buffer rings "
                              "need Linux 5.19)");
    }
    io_uring_buf_ring_init(ring_);
    for (unsigned id = 0; id < count; ++id) add(static_cast<std::uint16_t>(id), id);
    io_uring_buf_ring_advance(ring_, static_cast<int>(count));
    available_ = count;
  }
  BufferGroup(const BufferGroup&) = delete;
  BufferGroup& operator=(const BufferGroup&) = delete;

  void ref() noexcept { ++refs_; }
  void unref() noexcept {
    if (--refs_ == 0) destroy(this);
  }

  std::uint16_t group_id() const noexcept { return group_id_; }
  unsigned count() const noexcept { return count_; }
  std::size_t buffer_size() const noexcept { return buffer_size_; }
  unsigned available() const noexcept { return available_; }
  std::byte* data(std::uint16_t id) const noexcept { return memory_.get() + id * buffer_size_; }

  // A CQE took buffer id: it is out until given back.
  void taken() noexcept {
    RINGLOOP_ASSERT(available_ > 0, "the kernel used a buffer the ring did not have");
    --available_;
  }
  // Buffer id is free again: back in the ring, and the stream that waited longest for one is
  // called back. One per buffer: waking every waiter for one buffer re-armed thousands of
  // receives to fail with -ENOBUFS again (19,000 connections echoing at once took 10x longer).
  void give_back(std::uint16_t id) noexcept {
    RINGLOOP_ASSERT(id < count_ && available_ < count_, "a buffer was given back twice");
    add(id, 0);
    io_uring_buf_ring_advance(ring_, 1);
    ++available_;
    pass_turn();
  }
  // The turn a returned buffer gives goes to the stream that waited longest and arms: a woken
  // stream that does not arm (ended, closing) passes it on, and so does an armed stream whose
  // arming ends without taking a buffer (end of file, an error, a cancel). A turn lost either
  // way left streams waiting on a full ring with nothing in flight: bench's echo_multishot,
  // 1,000 connections on 16 buffers, each client's end of file taking the turns of the last
  // buffers. A stream only waits while the ring is empty, so one that goes back to waiting
  // here ends the loop.
  void pass_turn() noexcept {
    while (!waiters_.empty() && available_ > 0) {
      ArmWaiter& waiter = waiters_.pop_front();
      if (waiter.wake(waiter.context)) break;
    }
  }
  void wait_for_buffer(ArmWaiter& waiter) noexcept {
    if (!waiter.linked()) waiters_.push_back(waiter);
  }
  void forget(ArmWaiter& waiter) noexcept {
    if (waiter.linked()) waiters_.erase(waiter);
  }

 private:
  ~BufferGroup() {
    // The kernel reads the ring until it is unregistered; a closed loop's ring is gone already.
    if (Loop::exists_on_this_thread(&loop_) && !loop_.is_closed())
      io_uring_unregister_buf_ring(&loop_.ring().native(), group_id_);
    ::munmap(ring_, count_ * sizeof(io_uring_buf));
  }

  // Out of line: inlined, g++ 12 takes the count's decrement for a use after the delete.
  [[gnu::noinline]] static void destroy(BufferGroup* group) noexcept { delete group; }

  void add(std::uint16_t id, unsigned offset) noexcept {
    io_uring_buf_ring_add(ring_, data(id), static_cast<unsigned>(buffer_size_), id,
                          io_uring_buf_ring_mask(count_), static_cast<int>(offset));
  }

  static std::uint16_t next_group_id() noexcept {
    static std::atomic<std::uint16_t> next{0};  // one id space per ring; unique across rings
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  Loop& loop_;
  unsigned count_;
  std::size_t buffer_size_;
  io_uring_buf_ring* ring_ = nullptr;
  std::unique_ptr<std::byte[]> memory_;
  std::uint16_t group_id_ = 0;
  unsigned available_ = 0;
  unsigned refs_ = 1;
  IntrusiveList<ArmWaiter> waiters_;
};

}  // namespace detail

// A received buffer: its bytes (data()) until it is destroyed or release()d, which gives the
// buffer back to its ring. Move-only.
class Buffer {
 public:
  Buffer() noexcept = default;
  Buffer(detail::BufferGroup& group, std::uint16_t id, std::size_t size) noexcept
      : group_(&group), id_(id), size_(size) {
    group.ref();
  }
  Buffer(Buffer&& other) noexcept
      : group_(std::exchange(other.group_, nullptr)), id_(other.id_), size_(other.size_) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      group_ = std::exchange(other.group_, nullptr);
      id_ = other.id_;
      size_ = other.size_;
    }
    return *this;
  }
  ~Buffer() { release(); }

  std::span<const std::byte> data() const noexcept {
    return group_ == nullptr ? std::span<const std::byte>()
                             : std::span<const std::byte>(group_->data(id_), size_);
  }
  std::size_t size() const noexcept { return group_ == nullptr ? 0 : size_; }
  explicit operator bool() const noexcept { return group_ != nullptr; }
  // Gives the buffer back now.
  void release() noexcept {
    if (group_ == nullptr) return;
    detail::BufferGroup* group = std::exchange(group_, nullptr);
    group->give_back(id_);
    group->unref();
  }

 private:
  detail::BufferGroup* group_ = nullptr;
  std::uint16_t id_ = 0;
  std::size_t size_ = 0;
};

// A group of `count` buffers of `buffer_size` bytes each, registered with loop's ring (count a
// power of two, up to 32768). Size it for the receives in flight at once, not for the
// connections: an idle connection holds none. The BufferRing may go before the buffers and
// streams that use it: they keep the group alive.
class BufferRing {
 public:
  BufferRing(Loop& loop, unsigned count, std::size_t buffer_size)
      : group_(new detail::BufferGroup(loop, count, buffer_size)) {}
  BufferRing(BufferRing&& other) noexcept : group_(std::exchange(other.group_, nullptr)) {}
  BufferRing& operator=(BufferRing&&) = delete;
  ~BufferRing() {
    if (group_ != nullptr) group_->unref();
  }

  unsigned count() const noexcept { return group_->count(); }
  std::size_t buffer_size() const noexcept { return group_->buffer_size(); }
  // Buffers in the ring, ready for the kernel (count() minus those out).
  unsigned available() const noexcept { return group_->available(); }
  std::uint16_t group_id() const noexcept { return group_->group_id(); }
  detail::BufferGroup& group() const noexcept { return *group_; }

 private:
  detail::BufferGroup* group_;
};

namespace detail {

// IORING_OP_RECV with IORING_RECV_MULTISHOT and IOSQE_BUFFER_SELECT (Linux 6.0).
class RecvMultishotOp {
 public:
  static constexpr const char* name = "multishot recv";
  static constexpr bool priority = false;  // an idle read: the budget's ordinary share
  using Value = Buffer;

  RecvMultishotOp(int fd, BufferGroup& group) noexcept : fd_(fd), group_(&group) { group.ref(); }
  RecvMultishotOp(const RecvMultishotOp& other) noexcept : fd_(other.fd_), group_(other.group_) {
    group_->ref();
  }
  RecvMultishotOp& operator=(const RecvMultishotOp&) = delete;
  ~RecvMultishotOp() { group_->unref(); }

  void operator()(io_uring_sqe& sqe) const noexcept {
    io_uring_prep_recv_multishot(&sqe, fd_, nullptr, 0, 0);
    sqe.flags |= IOSQE_BUFFER_SELECT;
    sqe.buf_group = group_->group_id();
  }
  // Every CQE that carries a buffer has taken it from the ring: the handle gives it back.
  Buffer take(MultishotCqe cqe) const noexcept {
    return Buffer(*group_, buffer_id(cqe), static_cast<std::size_t>(cqe.result));
  }
  void discard(MultishotCqe cqe) const noexcept {
    if ((cqe.flags & IORING_CQE_F_BUFFER) != 0) group_->give_back(buffer_id(cqe));
  }
  bool is_end(MultishotCqe cqe) const noexcept { return cqe.result == 0; }  // end of file
  // A stream armed by its consumer while it waited leaves the waiters: a stale entry there
  // would take a returned buffer's turn and arm nothing.
  bool can_arm(ArmWaiter& waiter) const noexcept {
    if (group_->available() > 0) {
      group_->forget(waiter);
      return true;
    }
    group_->wait_for_buffer(waiter);
    return false;
  }
  void forget(ArmWaiter& waiter) const noexcept { group_->forget(waiter); }
  void pass_turn() const noexcept { group_->pass_turn(); }
  // Accounting as each CQE arrives: the buffer left the ring when the kernel filled it.
  void arrived(MultishotCqe cqe) const noexcept {
    if ((cqe.flags & IORING_CQE_F_BUFFER) != 0) group_->taken();
  }

 private:
  static std::uint16_t buffer_id(MultishotCqe cqe) noexcept {
    return static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  }

  int fd_;
  BufferGroup* group_;
};

}  // namespace detail

// The stream of what socket receives, each result a Buffer from ring; nullopt at end of file.
// One SQE serves the whole stream (re-armed when the kernel ends it). The socket and ring must
// outlive the stream's use (the ring's group is kept alive by the stream itself).
inline MultishotStream<detail::RecvMultishotOp> receive_multishot(
    const Socket& socket, const BufferRing& ring, std::size_t max_queued = kDefaultMaxQueued) {
  return MultishotStream<detail::RecvMultishotOp>(
      Loop::running("receive_multishot"), detail::RecvMultishotOp(socket.fd(), ring.group()),
      max_queued);
}

}  // namespace ringloop
