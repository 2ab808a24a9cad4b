// CPython 3.11's Lib/test/test_asyncio/test_pep492.py, ported where it is about behaviour rather
// than Python's coroutine machinery: one case per test, on virtual time. PORTED.md lists every
// test of the file.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include <ringloop/ringloop.hpp>
#include "tests/cpython/port.hpp"

using namespace std::chrono_literals;
using ringloop::Coro;

namespace {

// test(lock) of test_context_manager_async_with, for any of the four primitives.
template <class Primitive>
Coro<> hold_in_scope(Primitive& lock) {
  co_await ringloop::sleep(10ms);
  CHECK_FALSE(lock.locked());
  {
    auto guard = co_await lock.scoped();  // async with lock
    CHECK(lock.locked());
    co_await ringloop::sleep(10ms);
    CHECK(lock.locked());
  }
  CHECK_FALSE(lock.locked());
}

}  // namespace

TEST_CASE(
    "LockTests test_context_manager_async_with: Lock, Condition, Semaphore and "
    "BoundedSemaphore are held in their scope and released after",
    "[cpython][cpython_pep492]") {
  cpython_port::run_virtual([]() -> Coro<> {
    ringloop::Lock lock;
    ringloop::Condition condition;
    ringloop::Semaphore semaphore;
    ringloop::BoundedSemaphore bounded;
    co_await hold_in_scope(lock);
    co_await hold_in_scope(condition);
    co_await hold_in_scope(semaphore);
    co_await hold_in_scope(bounded);
    CHECK_FALSE(lock.locked());
    CHECK_FALSE(condition.locked());
    CHECK_FALSE(semaphore.locked());
    CHECK_FALSE(bounded.locked());
  });
}

TEST_CASE(
    "CoroutineTests test_async_def_coroutines: a coroutine awaiting another returns its "
    "value, in debug mode too",
    "[cpython][cpython_pep492]") {
  auto bar = []() -> Coro<std::string> { co_return "spam"; };
  auto foo = [&]() -> Coro<std::string> { co_return co_await bar(); };
  std::string data = ringloop::run(foo(), cpython_port::kVirtual);
  CHECK(data == "spam");
  ringloop::LoopOptions debug = cpython_port::kVirtual;
  debug.debug = true;
  data = ringloop::run(foo(), debug);
  CHECK(data == "spam");
}

TEST_CASE("CoroutineTests test_double_await: awaiting a coroutine a second time is an error",
          "[cpython][cpython_pep492]") {
  // Python: a coroutine object run by a task and awaited directly raises RuntimeError. A Coro
  // moved into a task is gone from the caller; the C++ form of the misuse is a second await.
  cpython_port::run_virtual([]() -> Coro<> {
    auto afunc = []() -> Coro<> { co_await ringloop::sleep(100ms); };
    Coro<> coro = afunc();
    co_await coro;
    CHECK_THROWS_AS(co_await coro, std::logic_error);
  });
}
