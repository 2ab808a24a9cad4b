// The way into a loop from other threads: a queue under a mutex and an eventfd whose read the
// loop keeps in flight on its ring, so a post wakes the loop through io_uring (no other thread
// touches the ring, no busy poll). Shared (std::shared_ptr) by the loop and every LoopHandle, so
// a thread holding a handle can still post after the loop has gone: the post is refused, not a
// write into freed memory.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace ringloop {

// A completion handed to the loop from another thread. on_loop runs on the loop's thread, from
// the reaping loop: like an operation's complete, it may only schedule coroutines (or start
// tasks, which only schedules them). on_discard, when set, ends one the loop will never run
// (it closed first); without it the completion is one the loop waits for (expected).
struct ThreadCompletion {
  // What runs on the loop's thread (on_loop) or ends a completion never run (on_discard).
  using Fn = void (*)(ThreadCompletion&) noexcept;
  explicit ThreadCompletion(Fn on_loop_fn, Fn on_discard_fn = nullptr) noexcept
      : on_loop(on_loop_fn), on_discard(on_discard_fn) {}
  Fn on_loop;
  Fn on_discard;
  ThreadCompletion* next = nullptr;
};

// The queue other threads post ThreadCompletions to, and the eventfd that wakes the loop: a
// mutex-guarded list, taken by the loop's thread all at once. Another loop may wake this one
// with an IORING_OP_MSG_RING doorbell instead (Loop::post_to): the inbox then also carries a
// duplicate of the loop's ring fd, which keeps the kernel's ring alive for as long as a sender
// may still name it (a doorbell to a ring whose loop has closed lands in a CQ nobody reads),
// and the doorbell's user_data.
class ThreadInbox {
 public:
  // What post_quietly did.
  enum class Posted : std::uint8_t {
    refused,     // the door is closed: nothing queued
    queued,      // queued behind others: a wake-up is on its way already
    needs_wake,  // queued in an empty inbox: the caller must wake the loop (wake() or a doorbell)
  };

  ThreadInbox();
  ThreadInbox(const ThreadInbox&) = delete;
  ThreadInbox& operator=(const ThreadInbox&) = delete;
  ~ThreadInbox();

  // Any thread. Queues completion and wakes the loop. Returns false, queuing nothing, once the
  // loop has closed its door (a completion with on_discard is then the caller's to end).
  bool post(ThreadCompletion& completion) noexcept;
  // Any thread that holds a reference to the inbox (so the eventfd outlives the call): queues
  // completion like post, but leaves the wake-up to the caller, who does it after the unlock.
  Posted post_quietly(ThreadCompletion& completion) noexcept;
  // Any thread holding a reference: wakes the loop through its eventfd.
  void wake() noexcept;

  // Set once by the loop's thread before any other loop can see the inbox: a duplicate of the
  // ring's fd (closed with the inbox) and the user_data of the loop's doorbell record.
  void set_doorbell(int ring_fd_copy, std::uint64_t doorbell_user_data) noexcept {
    ring_fd_ = ring_fd_copy;
    doorbell_ = doorbell_user_data;
  }
  // -1 when the loop takes no doorbells (the kernel lacks MSG_RING, or the loop said no).
  int ring_fd() const noexcept { return ring_fd_; }
  std::uint64_t doorbell_user_data() const noexcept { return doorbell_; }

  // While at least one keep-alive is held (a LoopHandle), the loop keeps its read in flight and
  // waits for posts rather than reporting that nothing can wake it. Dropping the last one wakes
  // the loop so it can see that.
  void add_keep_alive() noexcept { keep_alive_.fetch_add(1, std::memory_order_relaxed); }
  void drop_keep_alive() noexcept;
  // Whether any keep-alive is held.
  bool kept_alive() const noexcept { return keep_alive_.load(std::memory_order_acquire) > 0; }

  // Loop side.
  int fd() const noexcept { return eventfd_; }
  // Takes every queued completion, oldest first, as a list linked through next.
  ThreadCompletion* take_all() noexcept;
  // Refuses posts from now on; returns what was queued and not taken yet.
  ThreadCompletion* close_door() noexcept;

 private:
  void wake_locked() noexcept;

  std::mutex mutex_;
  int eventfd_ = -1;
  ThreadCompletion* head_ = nullptr;
  ThreadCompletion* tail_ = nullptr;
  bool closed_ = false;
  std::atomic<std::uint32_t> keep_alive_{0};
  int ring_fd_ = -1;
  std::uint64_t doorbell_ = 0;
};

}  // namespace ringloop
