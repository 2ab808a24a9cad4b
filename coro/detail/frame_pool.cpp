#include <ringloop/coro/detail/frame_pool.hpp>

#include <atomic>
#include <mutex>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define RINGLOOP_FRAME_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define RINGLOOP_FRAME_POOL 0
#endif
#endif
#ifndef RINGLOOP_FRAME_POOL
#define RINGLOOP_FRAME_POOL 1
#endif

namespace ringloop::detail {
namespace {

// Frames up to this size are pooled, by 16-byte classes (malloc's own granule: a coarser class
// rounds a task's frame up, 232 bytes to 256 with 64-byte classes); larger ones go to the
// allocator. A class holds 16k+8 bytes: glibc's malloc puts an 8-byte size word before each
// block and rounds block and word together to 16, so a request of 16k+8 uses its block to the
// byte, where 16k would take 16 bytes more (a 248-byte frame took 272 as a 256-byte class).
constexpr std::size_t kGranule = 16;
constexpr std::size_t kClasses = 128;
// Each class keeps at most this many free frames, so a burst of a million frames gives its
// memory back instead of holding it for the life of the thread.
constexpr std::size_t kMaxFreePerClass = 4096;

struct FreeFrame {
  FreeFrame* next;
};

// Frames alive are counted per thread, in a counter only its thread writes (a plain add: one
// process-wide atomic cost a locked add per frame made and another per frame ended, ~13 ns of a
// wait_for on a trivial coroutine). A frame made on one thread and ended on another counts up
// on the first and down on the second; the sum over threads is right. live_frames() adds up
// the threads alive and what the threads that exited left behind.
//
// A thread's state is constant-initialised and trivially destructible, so reaching it costs one
// TLS address and no guard (a constructor or destructor makes every access call the TU's
// __tls_init: 8% of wait_for_yield). The thread registers on its first frame; ThreadExit, a
// second thread-local touched only then, gives its pool back and unregisters it.
struct ThreadFrames {
  FreeFrame* heads[kClasses] = {};
  std::size_t counts[kClasses] = {};
  std::atomic<long> alive{0};  // written by this thread only; read by live_frames()
  long allocations_until_failure = -1;
  std::size_t last_size = 0;
  enum class State : unsigned char { fresh, registered, exited } state = State::fresh;
  ThreadFrames* next = nullptr;  // the threads registered
  ThreadFrames* prev = nullptr;

  void count(long delta) noexcept {
    alive.store(alive.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }
};

std::mutex registry_mutex;
ThreadFrames* registry = nullptr;  // guarded by registry_mutex, as are the links and:
long exited_alive = 0;             // the counts the threads that exited left behind

constinit thread_local ThreadFrames pool;

struct ThreadExit {
  bool armed = false;
  ~ThreadExit() {
    if (!armed) return;
    for (FreeFrame*& head : pool.heads) {
      while (head != nullptr) {
        FreeFrame* next_free = head->next;
        ::operator delete(head);
        head = next_free;
      }
    }
    std::lock_guard lock(registry_mutex);
    exited_alive += pool.alive.load(std::memory_order_relaxed);
    pool.alive.store(0, std::memory_order_relaxed);
    (pool.prev != nullptr ? pool.prev->next : registry) = pool.next;
    if (pool.next != nullptr) pool.next->prev = pool.prev;
    pool.state = ThreadFrames::State::exited;
  }
};
thread_local ThreadExit thread_exit;

// The first frame a thread makes or ends registers it. A frame ended after the thread's exit
// hook ran (by another thread-local's destructor) is counted with the exited threads', and goes
// straight back to the allocator: the pool is gone. Returns whether the pool can be used.
[[gnu::noinline]] bool count_unregistered(long delta) noexcept {
  std::lock_guard lock(registry_mutex);
  if (pool.state == ThreadFrames::State::exited) {
    exited_alive += delta;
    return false;
  }
  thread_exit.armed = true;
  pool.next = registry;
  if (registry != nullptr) registry->prev = &pool;
  registry = &pool;
  pool.state = ThreadFrames::State::registered;
  pool.count(delta);
  return true;
}

// Counts delta frames on this thread's counter (frames is this thread's pool); returns whether
// the pool can be used.
bool count_frames(ThreadFrames& frames, long delta) noexcept {
  if (frames.state == ThreadFrames::State::registered) [[likely]] {
    frames.count(delta);
    return true;
  }
  return count_unregistered(delta);
}

// The class whose capacity, kGranule * class + 8, is the least that holds size.
std::size_t class_of(std::size_t size) noexcept { return (size + 7) / kGranule; }
std::size_t capacity_of(std::size_t cls) noexcept { return cls * kGranule + 8; }

void* take_frame(ThreadFrames& frames, std::size_t size) {
  std::size_t cls = class_of(size);
  if (!RINGLOOP_FRAME_POOL || cls >= kClasses) return ::operator new(size);
  if (FreeFrame* frame = frames.heads[cls]) {
    frames.heads[cls] = frame->next;
    --frames.counts[cls];
    return frame;
  }
  return ::operator new(capacity_of(cls));
}

}  // namespace

std::size_t live_frames() noexcept {
  std::lock_guard lock(registry_mutex);
  long sum = exited_alive;
  for (ThreadFrames* thread = registry; thread != nullptr; thread = thread->next)
    sum += thread->alive.load(std::memory_order_relaxed);
  return static_cast<std::size_t>(sum);
}

void fail_allocations_after(long count) noexcept { pool.allocations_until_failure = count; }

namespace {
// allocation_seam's body, for allocate_frame: the exported function cannot be inlined there
// (-fPIC lets another library interpose it), and a call costs a frame allocation ~2 ns.
inline void check_seam(ThreadFrames& frames) {
  if (frames.allocations_until_failure >= 0 && frames.allocations_until_failure-- == 0)
    throw std::bad_alloc();
}
}  // namespace

void allocation_seam() { check_seam(pool); }

std::size_t last_frame_size() noexcept { return pool.last_size; }

namespace {
// This thread's pool, its address found once. In a shared library a thread-local's address
// comes from a call through its TLS descriptor, and g++ recomputes it at each use rather than
// keep it in a register (three calls per allocation); the empty asm makes the address a value
// it must keep.
ThreadFrames& this_thread_frames() noexcept {
  ThreadFrames* frames = &pool;
  asm("" : "+r"(frames));
  return *frames;
}
}  // namespace

void* allocate_frame(std::size_t size) {
  ThreadFrames& frames = this_thread_frames();
  check_seam(frames);
  void* frame = take_frame(frames, size);
  frames.last_size = size;
  count_frames(frames, 1);  // after the allocation: a bad_alloc counts nothing
  return frame;
}

void deallocate_frame(void* frame, std::size_t size) noexcept {
  ThreadFrames& frames = this_thread_frames();
  bool pooled = count_frames(frames, -1);
  std::size_t cls = class_of(size);
  if (!RINGLOOP_FRAME_POOL || !pooled || cls >= kClasses ||
      frames.counts[cls] >= kMaxFreePerClass) {
    ::operator delete(frame);
    return;
  }
  auto* free_frame = static_cast<FreeFrame*>(frame);
  free_frame->next = frames.heads[cls];
  frames.heads[cls] = free_frame;
  ++frames.counts[cls];
}

}  // namespace ringloop::detail
