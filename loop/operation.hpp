// The operation record: the unit of ownership between ringloop and the kernel.
//
// Every SQE ringloop submits carries in user_data the address of an Operation (or zero, for a
// cancel request whose answer nobody needs). The record, and everything the kernel reads or
// writes for it (timespecs, buffers, iovecs), lives in an awaiter, which lives in a coroutine
// frame, which is not destroyed before the last CQE of the record has been reaped. The loop
// asserts this: an Operation destroyed while the kernel still owes it a CQE aborts.
//
// An operation may carry a second record, link_timeout: the loop then submits the operation's
// SQE with IOSQE_IO_LINK followed by an IORING_OP_LINK_TIMEOUT SQE for that record, so the
// kernel itself cancels the operation at the deadline. Each record gets its own CQE, in either
// order and possibly in different reaps; the awaiter owning both waits for the two.
//
// An operation may also be answered by a stream of CQEs (multishot accept and receive, SEND_ZC's
// result before its notification): every CQE but the last carries IORING_CQE_F_MORE, and
// complete() sees each one with its flags. Until the last, the record stays `submitted` (and
// counts as one CQE owed), so the destructor's assertion covers the whole stream.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cstdint>

#include <ringloop/loop/assert.hpp>
#include <ringloop/loop/detail/intrusive_list.hpp>

struct io_uring_sqe;

namespace ringloop {

class Loop;

// Where an Operation is, from the loop's point of view.
enum class OpState : std::uint8_t {
  idle,       // not handed to the loop, or finished
  unqueued,   // waiting in the loop's FIFO for room in the completion queue
  submitted,  // its SQE is in the SQ or in the kernel; a CQE is owed
  timer,      // a timeout kept on a virtual clock by the loop (LoopOptions::virtual_time)
  due,        // a timer whose expiry was reaped; completed once the steps queued before it ran
  lazy,       // a timer not yet prepared: its SQE is made at the loop's submit point (Loop::submit)
};

// The record of one operation the kernel will answer with a CQE, whose address is the SQE's
// user_data. It lives in the awaiter, in the coroutine's frame, until that CQE is reaped.
struct Operation : detail::ListNode {
  // Fills this operation's SQE. Called by the loop when there is room for its CQE, which is at
  // once unless the ring is saturated. Must not fail and must not run user code.
  using PrepareFn = void (*)(Operation& self, io_uring_sqe& sqe) noexcept;
  // Records a result. Called from the reaping loop: it may only store the result and schedule a
  // coroutine on the ready queue, never resume one (that would recurse through the reaper).
  using CompleteFn = void (*)(Operation& self, std::int32_t result, std::uint32_t flags) noexcept;

  Operation(PrepareFn prepare_fn, CompleteFn complete_fn, bool is_timeout_op) noexcept
      : prepare(prepare_fn), complete(complete_fn), is_timeout(is_timeout_op) {}
  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;
  ~Operation() {
    RINGLOOP_ASSERT(state == OpState::idle,
                    "an operation record was destroyed while the kernel still owes it a CQE");
  }

  PrepareFn prepare;
  CompleteFn complete;
  // The state and the flags sit together, before the pointers: flags after them cost every
  // record, and so every awaiter, 8 bytes of padding.
  OpState state = OpState::idle;
  // Timeouts are cancelled with IORING_OP_TIMEOUT_REMOVE, everything else with ASYNC_CANCEL.
  bool is_timeout;
  // Set once a cancel SQE is on its way, so that repeated cancels cost nothing more.
  bool cancel_sent = false;
  // The loop's own machinery (run()'s SIGINT watch): its CQE neither keeps the loop running
  // (a program waiting only on it is deadlocked) nor is reported as the user's pending work.
  // Change it in flight through Loop::set_daemon only. Never set with a link timeout.
  bool daemon = false;
  // Admitted ahead of ordinary operations, into the budget's reserve (Loop::submit): accepts,
  // the loop's own wake-up, and every standalone timeout (is_timeout) are. Idle reads, which
  // may hold their CQE for hours, must never keep a server from accepting or a timer from
  // firing (issue #18: the echo server stopped accepting at 16,384 idle connections).
  bool priority = false;
  // A record whose CQEs this ring never asked for: the loop's doorbell, which other loops ring
  // with IORING_OP_MSG_RING. It is never submitted here and never counted in flight; complete()
  // sees each CQE. It lives as long as the loop (a doorbell's CQE lands only in a live ring).
  bool unsolicited = false;
  // Times in a row the kernel interrupted it and the loop submitted it again (Loop::restarts):
  // bounded, so an operation the kernel keeps interrupting ends with EINTR instead of spinning.
  std::uint8_t restarts_in_a_row = 0;
  // When set, the IORING_OP_LINK_TIMEOUT record linked after this operation's SQE: submitted,
  // cancelled and completed together with it (its prepare fills the LINK_TIMEOUT SQE).
  Operation* link_timeout = nullptr;
  // For a timeout with an absolute deadline: that deadline on CLOCK_MONOTONIC, in ns (0 for
  // every other operation). One that leaves the FIFO with its deadline passed completes with
  // -ETIME there and then: arming an hrtimer that has already expired costs ~14 us on this
  // kind of paravirtualised VM, against ~0.3 us for one in the future (bench/PROPOSALS.md, P1).
  std::int64_t deadline_ns = 0;
  // For such a timeout submitted on its own (not a link timeout): when it was armed, counted by
  // the loop, so timers with equal deadlines complete in the order they were armed.
  std::uint64_t arm_seq = 0;

  // How many CQEs the kernel will owe once this operation is submitted.
  unsigned cqe_cost() const noexcept { return link_timeout != nullptr ? 2u : 1u; }
};

}  // namespace ringloop
