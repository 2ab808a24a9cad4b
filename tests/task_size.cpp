// What a task costs in memory: the sizes of its records and of a trivial task's frame, printed
// (run with "[task_size]" -s to see them) and held to bounds, so growth is a decision, not an
// accident. A task's frame holds its promise, which holds the TaskCore; gather adds nothing per
// child that only it waits for (a pointer in the task's waiters word), a node for one that has
// other waiters.
#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <thread>
#include <type_traits>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::Coro;

namespace {

Coro<long> trivial(long i) { co_return i; }

Coro<> sleep_an_hour() { co_await ringloop::sleep(1h); }

}  // namespace

TEST_CASE("a task's records and a trivial task's frame stay within their sizes", "[task_size]") {
  namespace detail = ringloop::detail;
  std::size_t trivial_frame = 0;
  std::size_t sleep_frame = 0;
  ringloop::run([&]() -> Coro<> {
    // Handed to create_task, the frames escape: the compiler cannot elide their allocation.
    ringloop::Task<long> quick = ringloop::create_task(trivial(1));
    trivial_frame = detail::last_frame_size();
    ringloop::Task<> sleeper = ringloop::create_task(sleep_an_hour());
    sleep_frame = detail::last_frame_size();
    sleeper.cancel();
    co_await ringloop::gather(ringloop::return_exceptions, quick, sleeper);
  }());
  std::printf(
      "task_size: TaskCore %zu, Promise<long> %zu, Promise<void> %zu, frame of a trivial "
      "Coro<long> %zu, of a Coro<> awaiting sleep %zu, SleepAwaiter %zu, Operation %zu, gather "
      "per child %zu "
      "(a node, only for a child that has other waiters; else none) + %zu (Task handle)\n",
      sizeof(detail::TaskCore), sizeof(detail::Promise<long>), sizeof(detail::Promise<void>),
      trivial_frame, sleep_frame, sizeof(detail::SleepAwaiter), sizeof(ringloop::Operation),
      sizeof(detail::GatherState::ChildWaiter), sizeof(ringloop::Task<long>));
  // 88 and 96 before the loop's table of task functions left the record (one kind of task, so
  // the loop calls them directly) and created_file began to share its word with the extras.
  CHECK(sizeof(detail::TaskCore) <= 72);
  CHECK(sizeof(detail::Promise<long>) <= 80);
  CHECK(sizeof(detail::Promise<void>) <= 80);
  CHECK(sizeof(detail::GatherState::ChildWaiter) <= 40);
  CHECK(trivial_frame > 0);
  // g++ 12: 120, a 128-byte block from malloc (frame_pool.cpp). 200 before the first-step
  // record and the initial awaiter's promise pointer left the frame, and a non-root's task and
  // continuation moved into task-only fields of the record; 152 before the value and the
  // exception shared a slot and the promise's flags moved into the record's padding; 136 (a
  // 144-byte block) before the record lost its table pointer and its own created_file word.
  CHECK(trivial_frame <= 120);
  // g++ 12: 248, a 256-byte block (280, 288 and 264 before Operation's flags moved ahead of
  // its pointers, and the record shrank).
  CHECK(sleep_frame <= 248);
  CHECK(sizeof(ringloop::Operation) <= 64);
}

namespace {

struct alignas(16) Aligned16 {
  long half[2];
};
struct Large {
  char bytes[200];
};

template <class T>
Coro<T> make_value() {
  if constexpr (std::is_void_v<T>)
    co_return;
  else
    co_return T{};
}

// The loop reaches a task's frame from its record alone (PromiseBase::frame()); for that every
// Promise<T> must sit where a PromiseBase would, whatever T's size and alignment.
template <class T>
void check_frame_found_from_record() {
  auto handle = make_value<T>().release();
  auto& base =
      ringloop::detail::PromiseBase::of<ringloop::detail::PromiseBase>(handle.promise().core());
  CHECK(base.frame().address() == handle.address());
  handle.destroy();
}

}  // namespace

TEST_CASE("a task's frame is found from its record, whatever the result type", "[task_size]") {
  check_frame_found_from_record<long>();
  check_frame_found_from_record<void>();
  check_frame_found_from_record<char>();
  check_frame_found_from_record<std::string>();
  check_frame_found_from_record<Aligned16>();
  check_frame_found_from_record<Large>();
}

TEST_CASE("frames are counted across threads: made on one, ended on another, counted once",
          "[task_size]") {
  namespace detail = ringloop::detail;
  std::size_t before = detail::live_frames();
  // Made on a thread that exits before the frame ends (its count is kept for it), then ended
  // here; and made here, ended on a thread that never made one.
  Coro<long> from_thread;
  std::thread([&] { from_thread = trivial(1); }).join();
  CHECK(detail::live_frames() == before + 1);
  Coro<long> from_here = trivial(2);
  CHECK(detail::live_frames() == before + 2);
  std::thread([&] { from_here = Coro<long>(); }).join();
  CHECK(detail::live_frames() == before + 1);
  from_thread = Coro<long>();
  CHECK(detail::live_frames() == before);
}
