// A coroutine ends with a value or an exception, never both, so its promise keeps them in one
// slot (a value that fits in an exception_ptr's room) or the value in storage of its own (a
// larger or more aligned one). These tests hold what that must not change: every value made is
// destroyed exactly once, whichever way the coroutine ends, and the outcome is the one asyncio
// gives.
#include <catch2/catch.hpp>

#include <array>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Task;

namespace {

// Counts the live objects of its kind: a value lost or destroyed twice shows as a count that is
// not back to zero.
template <std::size_t Size, std::size_t Align = alignof(long)>
struct alignas(Align) Counted {
  static inline int live = 0;
  explicit Counted(long v) : value(v) { ++live; }
  Counted(const Counted& other) : value(other.value) { ++live; }
  Counted(Counted&& other) noexcept : value(other.value) { ++live; }
  Counted& operator=(const Counted&) = default;
  ~Counted() { --live; }
  long value;
  struct NoPad {};
  [[no_unique_address]] std::conditional_t<(Size > sizeof(long)),
                                           std::array<unsigned char, Size - sizeof(long)>, NoPad>
      pad{};
};

using InSlot = Counted<8>;         // shares the exception's slot
using Large = Counted<48>;         // storage of its own
using Aligned16 = Counted<8, 16>;  // fits in size, not in alignment

template <class T>
Coro<T> make(long v) {
  co_await ringloop::sleep(0s);
  co_return T(v);
}

// A local whose destructor throws as the coroutine leaves, after co_return made the value.
struct ThrowsOnExit {
  ~ThrowsOnExit() noexcept(false) { throw std::runtime_error("thrown by a destructor"); }
};
template <class T>
Coro<T> value_then_throw(long v) {
  ThrowsOnExit guard;
  co_await ringloop::sleep(0s);
  co_return T(v);
}

// Cancels its own task and returns without another await: asyncio ends the task cancelled.
template <class T>
Coro<T> cancel_self_then_return(Task<T>& self, long v) {
  co_await ringloop::sleep(0s);
  self.cancel();
  co_return T(v);
}

template <class T>
void check_value_kind() {
  T::live = 0;
  SECTION("a task's value is handed over once and destroyed once") {
    ringloop::run([]() -> Coro<> {
      Task<T> task = ringloop::create_task(make<T>(7));
      T copied = co_await task;  // copies: the task keeps its value
      CHECK(copied.value == 7);
      CHECK(task.result().value == 7);
      T moved = co_await std::move(task);  // moves it out
      CHECK(moved.value == 7);
      // An awaited Coro (not a task) hands its value over the same way.
      T direct = co_await make<T>(8);
      CHECK(direct.value == 8);
    }());
    CHECK(T::live == 0);
  }
  SECTION("a value made before an exception is destroyed, and the exception is the result") {
    ringloop::run([]() -> Coro<> {
      Task<T> task = ringloop::create_task(value_then_throw<T>(1));
      bool thrown = false;
      try {
        (void)co_await task;
      } catch (const std::runtime_error& e) {
        thrown = std::string(e.what()) == "thrown by a destructor";
      }
      CHECK(thrown);
      CHECK(task.exception() != nullptr);
    }());
    CHECK(T::live == 0);
  }
  SECTION("a value returned with a cancel pending is destroyed, and the task ends cancelled") {
    ringloop::run([]() -> Coro<> {
      Task<T> task;
      task = ringloop::create_task(cancel_self_then_return<T>(task, 3));
      bool cancelled = false;
      try {
        (void)co_await ringloop::gather(task);
      } catch (const CancelledError&) {
        cancelled = true;
      }
      CHECK(cancelled);
      CHECK(task.cancelled());
      CHECK_THROWS_AS(task.result(), CancelledError);
      task = {};  // the frame goes here; the value went when the task ended
    }());
    CHECK(T::live == 0);
  }
}

}  // namespace

TEST_CASE("a value that shares the exception's slot is made and destroyed once", "[task]") {
  static_assert(sizeof(InSlot) == sizeof(std::exception_ptr));
  check_value_kind<InSlot>();
}

TEST_CASE("a value with storage of its own is made and destroyed once", "[task]") {
  static_assert(sizeof(Large) > sizeof(std::exception_ptr));
  check_value_kind<Large>();
}

TEST_CASE("a value aligned beyond the slot's 8 bytes gets storage of its own", "[task]") {
  static_assert(alignof(Aligned16) > alignof(std::exception_ptr));
  check_value_kind<Aligned16>();
  // A type aligned beyond 16 bytes does not compile (promise.hpp's static_assert), as
  // tests/headers/overaligned_result.cpp checks.
}

TEST_CASE("a move-only value in the slot is moved out once; a second taker is refused", "[task]") {
  ringloop::run([]() -> Coro<> {
    Task<std::unique_ptr<int>> task = ringloop::create_task(
        []() -> Coro<std::unique_ptr<int>> { co_return std::make_unique<int>(42); }());
    std::unique_ptr<int> first = co_await std::move(task);
    REQUIRE(first != nullptr);
    CHECK(*first == 42);
    CHECK_THROWS_AS(co_await std::move(task), ringloop::InvalidStateError);
  }());
}
