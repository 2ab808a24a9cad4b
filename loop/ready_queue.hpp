// The ready queue: coroutines (and tasks' first steps) that can run now, in FIFO order. A
// growable ring buffer of one-word entries: pushing and popping never allocate once it has grown to
// the program's high-water mark, and it never shrinks (a loop that once had 100k ready tasks will
// again).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <ringloop/loop/assert.hpp>

namespace ringloop::detail {

struct TaskHook;

// An entry of the ready queue: a coroutine to resume, or a task's first step, which the loop
// runs through the task's TaskHook (so it can end a task cancelled before it started without
// resuming it). One word: a TaskHook is at least 8-aligned, so its low bit tags it.
class ReadyStep {
 public:
  ReadyStep() noexcept = default;
  // NOLINTNEXTLINE(google-explicit-constructor): a handle is the common entry
  ReadyStep(std::coroutine_handle<> handle) noexcept
      : word_(reinterpret_cast<std::uintptr_t>(handle.address())) {}
  static ReadyStep first_step_of(TaskHook& task) noexcept {
    ReadyStep step;
    step.word_ = reinterpret_cast<std::uintptr_t>(&task) | kFirstStepTag;
    return step;
  }

  bool is_first_step() const noexcept { return (word_ & kFirstStepTag) != 0; }
  TaskHook& task() const noexcept { return *reinterpret_cast<TaskHook*>(word_ & ~kFirstStepTag); }
  std::coroutine_handle<> handle() const noexcept {
    return std::coroutine_handle<>::from_address(reinterpret_cast<void*>(word_));
  }
  // For reports: the frame or the task record.
  const void* address() const noexcept {
    return reinterpret_cast<const void*>(word_ & ~kFirstStepTag);
  }
  explicit operator bool() const noexcept { return word_ != 0; }

 private:
  static constexpr std::uintptr_t kFirstStepTag = 1;
  std::uintptr_t word_ = 0;
};

class ReadyQueue {
 public:
  ReadyQueue() : slots_(std::make_unique<ReadyStep[]>(kInitialCapacity)) {}

  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }

  void push(ReadyStep step) {
    RINGLOOP_ASSERT(static_cast<bool>(step), "scheduling a null coroutine handle");
    if (size() == capacity_) grow();
    slots_[tail_++ & (capacity_ - 1)] = step;
  }

  ReadyStep pop() noexcept {
    RINGLOOP_ASSERT(!empty(), "pop() from an empty ready queue");
    return slots_[head_++ & (capacity_ - 1)];
  }

 private:
  static constexpr std::size_t kInitialCapacity = 1024;
  static_assert((kInitialCapacity & (kInitialCapacity - 1)) == 0, "capacity is a power of two");

  void grow() {
    auto bigger = std::make_unique<ReadyStep[]>(capacity_ * 2);
    for (std::size_t i = 0; i < capacity_; ++i) bigger[i] = slots_[(head_ + i) & (capacity_ - 1)];
    tail_ = capacity_;
    head_ = 0;
    capacity_ *= 2;
    slots_ = std::move(bigger);
  }

  std::unique_ptr<ReadyStep[]> slots_;
  std::size_t capacity_ = kInitialCapacity;
  std::size_t head_ = 0;  // both count up forever; masked on use
  std::size_t tail_ = 0;
};

}  // namespace ringloop::detail
