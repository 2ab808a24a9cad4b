#include <ringloop/loop/thread_inbox.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

namespace ringloop {

ThreadInbox::ThreadInbox() {
  eventfd_ = ::eventfd(0, EFD_CLOEXEC);
  if (eventfd_ < 0)
    throw std::system_error(errno, std::system_category(),
                            "ringloop: eventfd for wake-ups from other threads failed");
}

ThreadInbox::~ThreadInbox() {
  // Only completions the loop never ran can be left, and only discardable ones.
  for (ThreadCompletion* c = std::exchange(head_, nullptr); c != nullptr;) {
    ThreadCompletion* next = c->next;
    if (c->on_discard != nullptr) c->on_discard(*c);
    c = next;
  }
  ::close(eventfd_);
  if (ring_fd_ >= 0) ::close(ring_fd_);
}

void ThreadInbox::wake_locked() noexcept {
  std::uint64_t one = 1;
  (void)!::write(eventfd_, &one, sizeof(one));
}

bool ThreadInbox::post(ThreadCompletion& completion) noexcept {
  // The write stays under the lock: once the loop can see the completion it may drain it and
  // go on, so nothing may be touched after the unlock (ThreadSanitizer caught a write racing a
  // close of the eventfd when it was outside).
  std::lock_guard<std::mutex> lock(mutex_);
  // Completions the loop waits for (no on_discard) are always taken: it does not finish
  // closing before they have come.
  if (closed_ && completion.on_discard != nullptr) return false;
  completion.next = nullptr;
  bool was_empty = head_ == nullptr;
  (was_empty ? head_ : tail_->next) = &completion;
  tail_ = &completion;
  if (was_empty) wake_locked();  // a queue that was not empty has a wake-up on its way
  return true;
}

ThreadInbox::Posted ThreadInbox::post_quietly(ThreadCompletion& completion) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_ && completion.on_discard != nullptr) return Posted::refused;
  completion.next = nullptr;
  bool was_empty = head_ == nullptr;
  (was_empty ? head_ : tail_->next) = &completion;
  tail_ = &completion;
  // A loop that was rung and has not drained yet is not rung again: its drain takes this too.
  return was_empty ? Posted::needs_wake : Posted::queued;
}

void ThreadInbox::wake() noexcept {
  std::uint64_t one = 1;
  (void)!::write(eventfd_, &one, sizeof(one));
}

void ThreadInbox::drop_keep_alive() noexcept {
  if (keep_alive_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // The last one: the loop may be waiting on nothing else, so let it look again.
  std::lock_guard<std::mutex> lock(mutex_);
  if (!closed_) wake_locked();
}

ThreadCompletion* ThreadInbox::take_all() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  tail_ = nullptr;
  return std::exchange(head_, nullptr);
}

ThreadCompletion* ThreadInbox::close_door() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  tail_ = nullptr;
  return std::exchange(head_, nullptr);
}

}  // namespace ringloop
