// A per-thread recycling pool for coroutine frames. A loop creates and ends frames at a high
// rate with a handful of sizes; recycling them by size class saves the allocator's work.
// Under AddressSanitizer the pool steps aside, so use-after-free of a frame is still caught.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cstddef>

namespace ringloop::detail {

void* allocate_frame(std::size_t size);
void deallocate_frame(void* frame, std::size_t size) noexcept;

// Coroutine frames of ringloop's types alive in the process: tests check it returns to zero.
std::size_t live_frames() noexcept;

// The size the compiler asked for in this thread's latest frame allocation (tests and benches
// print the frame of a task).
std::size_t last_frame_size() noexcept;

// Test seam: after `count` more of the allocations ringloop makes for its tasks on this thread
// (coroutine frames, gather's waiter nodes, a task's extras), the next throws std::bad_alloc.
// A negative count (the default) never fails.
void fail_allocations_after(long count) noexcept;

// Where one of those allocations is about to be made: throws std::bad_alloc when the seam says
// this one fails.
void allocation_seam();

}  // namespace ringloop::detail
