// The ring owner: sets up an io_uring instance with the best flags this kernel accepts, hands
// out SQEs, submits batches (retrying EINTR) and walks completions, overflow included. It knows
// nothing of coroutines or operation records.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <ringloop/loop/probe.hpp>

namespace ringloop {

// How the io_uring instance is set up (LoopOptions::ring).
struct RingOptions {
  // SQ size: how many SQEs one io_uring_enter can carry. Larger batches need no more: when the SQ
  // fills, the ring submits and goes on.
  unsigned sq_entries = 1024;
  // CQ size: bounds how many completions may be owed at once (the loop keeps its in-flight
  // total within it). Large, since a sleeping timer costs a CQ slot and nothing else.
  unsigned cq_entries = 65536;
  // Try IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (fall back when refused).
  bool defer_taskrun = true;
  // Register the ring's fd with the loop's thread (io_uring_register_ring_fd, Linux 5.18), so
  // that each io_uring_enter skips the fd lookup; skipped quietly where the kernel refuses.
  bool register_ring_fd = true;
};

// One io_uring instance, owned: set up with the best flags the kernel accepts, torn down in the
// destructor. The loop is its only user; its thread the only one that submits.
class Ring {
 public:
  // Sets up the ring; throws std::system_error naming the cause (ENOMEM, EPERM, ENOSYS...) when
  // the kernel refuses every set of flags.
  explicit Ring(const RingOptions& options = {});
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring();

  // An SQE ready to fill, or null when the SQ is full (the loop then submits and reaps).
  io_uring_sqe* try_get_sqe() noexcept { return io_uring_get_sqe(&ring_); }
  // Submits queued SQEs without waiting. Returns how many the kernel took.
  unsigned submit();
  // Submits queued SQEs and waits until at least one CQE is available.
  void submit_and_wait_one();
  // Moves the CQEs waiting on the kernel's overflow list into the CQ, as far as they fit.
  void flush_overflow();

  // Calls fn(const io_uring_cqe&) on up to max_cqes available CQEs, each marked seen first.
  // Also drains the kernel's overflow list (IORING_FEAT_NODROP). Returns how many were handled.
  template <class Fn>
  unsigned reap(Fn&& fn, unsigned max_cqes);

  // liburing's ring, for registering resources with it (buffer rings: coro/io/buffer_ring.hpp)
  // and probing opcodes. Loop thread only; never submit or reap through it.
  io_uring& native() noexcept { return ring_; }
  // The SQ's size as the kernel set it up.
  unsigned sq_entries() const noexcept { return ring_.sq.ring_entries; }
  // The CQ's size as the kernel set it up.
  unsigned cq_entries() const noexcept { return ring_.cq.ring_entries; }
  // SQEs filled and not yet handed to the kernel.
  unsigned queued_sqes() const noexcept { return io_uring_sq_ready(&ring_); }
  // SQEs that can still be filled before the SQ is full.
  unsigned sq_space_left() const noexcept { return io_uring_sq_space_left(&ring_); }
  // What the kernel offers (opcodes, IORING_FEAT_*), probed once when the ring was set up.
  const Probe& probe() const noexcept { return probe_; }
  // Whether io_uring_enter goes through the registered ring fd (RingOptions::register_ring_fd).
  bool ring_fd_registered() const noexcept { return ring_fd_registered_; }
  // The raw liburing ring, for registrations (buffers, files) owned by types built on the ring.
  io_uring& raw() noexcept { return ring_; }
  // The IORING_SETUP_* flags the kernel accepted.
  unsigned setup_flags() const noexcept { return ring_.flags; }
  // Whether the ring runs with IORING_SETUP_DEFER_TASKRUN.
  bool defers_taskrun() const noexcept { return (ring_.flags & IORING_SETUP_DEFER_TASKRUN) != 0; }
  // Whether an enter could bring completions that the CQ does not show yet: deferred task work
  // (the kernel raises IORING_SQ_TASKRUN for it when set up with IORING_SETUP_TASKRUN_FLAG) or
  // an overflow. Without TASKRUN_FLAG, always assumed under DEFER_TASKRUN.
  bool completions_pending_in_kernel() const noexcept {
    unsigned flags = IO_URING_READ_ONCE(*ring_.sq.kflags);
    if ((flags & IORING_SQ_CQ_OVERFLOW) != 0) return true;
    if ((ring_.flags & IORING_SETUP_TASKRUN_FLAG) != 0) return (flags & IORING_SQ_TASKRUN) != 0;
    return defers_taskrun();
  }
  // CQEs the kernel lost: with IORING_FEAT_NODROP only when it could not allocate an entry of
  // its overflow list (GFP_ATOMIC). An operation whose CQE is lost never completes.
  unsigned dropped_cqes() const noexcept { return IO_URING_READ_ONCE(*ring_.cq.koverflow); }
  // Whether CQEs wait on the kernel's overflow list (the CQ was full when they were posted).
  bool cq_has_overflow() const noexcept { return io_uring_cq_has_overflow(&ring_); }
  // How many io_uring_enter calls this ring made (tests count batching with it).
  std::uint64_t enter_calls() const noexcept { return enter_calls_; }
  // How many of them handed the kernel at least one SQE. Batching is counted with this one: a
  // kernel that runs an operation in a worker (Linux 6.1 writes to a pipe in io-wq) makes the
  // loop enter again to wait for its CQE, which says nothing of how the SQEs were sent.
  std::uint64_t submitting_enter_calls() const noexcept { return submitting_enter_calls_; }

  // Test seam: the next `count` submissions without waiting on this thread act as if the
  // kernel had answered EBUSY (it wants CQEs reaped first), without entering.
  static void inject_busy_submits_for_tests(unsigned count) noexcept;
  // Test seam: the next setup attempts on this thread fail with these errnos, in order, without
  // reaching the kernel (at most kMaxInjectedSetupErrors). Read only when a Ring is set up.
  static constexpr unsigned kMaxInjectedSetupErrors = 4;
  static void inject_setup_errors_for_tests(std::initializer_list<int> errors) noexcept;
  // Test seam: while on, each reap on this thread hands its batch of CQEs over in reverse order
  // (as a kernel may post completions that became ready together: Linux 6.1 did so for timers).
  static void reverse_cqe_order_for_tests(bool on) noexcept { reverse_cqe_order_ = on; }

 private:
  void check_floor();
  int enter_until_accepted(unsigned wait_nr);
  template <class Fn>
  unsigned reap_reversed(Fn& fn, unsigned max_cqes);

  inline static thread_local bool reverse_cqe_order_ = false;

  io_uring ring_{};
  Probe probe_;
  bool ring_fd_registered_ = false;
  std::uint64_t enter_calls_ = 0;
  std::uint64_t submitting_enter_calls_ = 0;
};

template <class Fn>
unsigned Ring::reap(Fn&& fn, unsigned max_cqes) {
  if (reverse_cqe_order_) [[unlikely]]
    return reap_reversed(fn, max_cqes);
  unsigned handled = 0;
  while (handled < max_cqes) {
    if (io_uring_cq_ready(&ring_) == 0) {
      // Completions that did not fit wait on the kernel's overflow list and come back only
      // when asked (liburing #1063: without this, a saturated ring stalls).
      if (!io_uring_cq_has_overflow(&ring_)) break;
      flush_overflow();
      if (io_uring_cq_ready(&ring_) == 0) break;
    }
    // Each CQE is marked seen before fn sees it: fn may cancel an operation, which may flush a
    // full SQ and, if the kernel answers EBUSY, reap again from inside this loop. Consumed one
    // at a time, no CQE can be handled twice. (Only this thread moves the head.)
    const io_uring_cqe copy = ring_.cq.cqes[*ring_.cq.khead & ring_.cq.ring_mask];
    io_uring_cq_advance(&ring_, 1);
    fn(copy);
    ++handled;
  }
  return handled;
}

template <class Fn>
unsigned Ring::reap_reversed(Fn& fn, unsigned max_cqes) {
  if (io_uring_cq_has_overflow(&ring_)) flush_overflow();
  std::vector<io_uring_cqe> batch;
  while (batch.size() < max_cqes && io_uring_cq_ready(&ring_) != 0) {
    batch.push_back(ring_.cq.cqes[*ring_.cq.khead & ring_.cq.ring_mask]);
    io_uring_cq_advance(&ring_, 1);
  }
  for (auto it = batch.rbegin(); it != batch.rend(); ++it) fn(*it);
  return static_cast<unsigned>(batch.size());
}

}  // namespace ringloop
