// The ready queue: coroutines that can run now, in FIFO order. A growable ring buffer of
// handles: pushing and popping never allocate once it has grown to the program's high-water
// mark, and it never shrinks (a loop that once had 100k ready tasks will again).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <coroutine>
#include <cstddef>
#include <memory>

#include <ringloop/loop/assert.hpp>

namespace ringloop::detail {

class ReadyQueue {
 public:
  ReadyQueue() : slots_(std::make_unique<std::coroutine_handle<>[]>(kInitialCapacity)) {}

  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }

  void push(std::coroutine_handle<> handle) {
    RINGLOOP_ASSERT(handle, "scheduling a null coroutine handle");
    if (size() == capacity_) grow();
    slots_[tail_++ & (capacity_ - 1)] = handle;
  }

  std::coroutine_handle<> pop() noexcept {
    RINGLOOP_ASSERT(!empty(), "pop() from an empty ready queue");
    return slots_[head_++ & (capacity_ - 1)];
  }

 private:
  static constexpr std::size_t kInitialCapacity = 1024;
  static_assert((kInitialCapacity & (kInitialCapacity - 1)) == 0, "capacity is a power of two");

  void grow() {
    auto bigger = std::make_unique<std::coroutine_handle<>[]>(capacity_ * 2);
    for (std::size_t i = 0; i < capacity_; ++i) bigger[i] = slots_[(head_ + i) & (capacity_ - 1)];
    tail_ = capacity_;
    head_ = 0;
    capacity_ *= 2;
    slots_ = std::move(bigger);
  }

  std::unique_ptr<std::coroutine_handle<>[]> slots_;
  std::size_t capacity_ = kInitialCapacity;
  std::size_t head_ = 0;  // both count up forever; masked on use
  std::size_t tail_ = 0;
};

}  // namespace ringloop::detail
