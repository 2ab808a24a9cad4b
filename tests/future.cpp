// Future<T>: set from a callback, awaited by several coroutines, cancelled (by hand or through an
// awaiting task, as asyncio does), move-only results, done callbacks; wrap_future of a
// std::future set on another thread.
#include <catch2/catch.hpp>

#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Future;
using ringloop::InvalidStateError;

namespace {
template <class T>
Coro<T> await_future(Future<T> future) {
  co_return co_await future;
}
}  // namespace

TEST_CASE("a Future set from a callback wakes every awaiter with its result", "[api][future]") {
  ringloop::run([]() -> Coro<> {
    Future<int> future;
    CHECK_FALSE(future.done());
    CHECK_THROWS_AS(future.result(), InvalidStateError);
    // A callback API's completion, as a C library or a driver would call it.
    ringloop::call_later(1ms, [future]() mutable { future.set_result(42); });
    auto [a, b] = co_await ringloop::gather(await_future(future), await_future(future));
    CHECK(a == 42);
    CHECK(b == 42);
    CHECK(future.done());
    CHECK(future.result() == 42);
    CHECK(future.exception() == nullptr);
    CHECK_THROWS_AS(future.set_result(1), InvalidStateError);
    CHECK_FALSE(future.cancel());
    int again = co_await future;  // a done future is awaited at once
    CHECK(again == 42);
  }());
}

TEST_CASE("a Future's exception reaches its awaiters; setting it twice is InvalidStateError",
          "[api][future]") {
  ringloop::run([]() -> Coro<> {
    Future<> future;
    auto waiter = ringloop::create_task(await_future(future));
    co_await ringloop::sleep(0s);
    future.set_exception(std::make_exception_ptr(std::runtime_error("driver failed")));
    CHECK_THROWS_AS(future.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                    InvalidStateError);
    CHECK_THROWS_AS(future.set_result(), InvalidStateError);
    CHECK_THROWS_WITH(co_await waiter, "driver failed");
    CHECK(future.exception() != nullptr);
    CHECK_THROWS_WITH(future.result(), "driver failed");
  }());
}

TEST_CASE("cancel(msg) on a Future ends its awaiters with CancelledError carrying msg",
          "[api][future]") {
  ringloop::run([]() -> Coro<> {
    Future<int> future;
    auto waiter = ringloop::create_task(await_future(future));
    co_await ringloop::sleep(0s);
    CHECK(future.cancel("no answer"));
    CHECK(future.cancelled());
    CHECK_THROWS_WITH(co_await waiter, "no answer");
    CHECK_THROWS_WITH(future.result(), "no answer");
    CHECK_THROWS_AS(future.exception(), CancelledError);
    CHECK_THROWS_AS(future.set_result(1), InvalidStateError);
  }());
}

// asyncio: a task awaiting a future is cancelled with "bye" -> the future is cancelled too, and
// another awaiter of it gets CancelledError('bye').
TEST_CASE("cancelling a task that awaits a Future cancels the Future, as in asyncio",
          "[api][future]") {
  ringloop::run([]() -> Coro<> {
    Future<int> future;
    auto first = ringloop::create_task(await_future(future));
    auto second = ringloop::create_task(await_future(future));
    co_await ringloop::sleep(0s);
    first.cancel("bye");
    CHECK_THROWS_WITH(co_await second, "bye");
    CHECK(future.cancelled());
    CHECK_THROWS_WITH(co_await first, "bye");
  }());
}

TEST_CASE("several awaiters of a move-only Future: the first gets the value, others an error",
          "[api][future]") {
  ringloop::run([]() -> Coro<> {
    using Ptr = std::unique_ptr<int>;
    Future<Ptr> future;
    // (Awaiting a Task<unique_ptr> does not compile before issue #15's move-only fix: the
    // values come back through out-parameters.)
    auto store = [](Future<Ptr> f, Ptr& out) -> Coro<> { out = co_await f; };
    Ptr first_value;
    Ptr second_value;
    auto first = ringloop::create_task(store(future, first_value));
    auto second = ringloop::create_task(store(future, second_value));
    co_await ringloop::sleep(0s);
    future.set_result(std::make_unique<int>(5));
    co_await first;
    REQUIRE(first_value != nullptr);
    CHECK(*first_value == 5);
    CHECK_THROWS_WITH(co_await second, Catch::Contains("move-only"));
    CHECK(second_value == nullptr);
    CHECK_THROWS_AS(future.result(), InvalidStateError);
  }());
}

TEST_CASE("a Future's done callbacks run through the loop, never inside set_result",
          "[api][future]") {
  std::vector<std::string> log;
  ringloop::run([](std::vector<std::string>& out) -> Coro<> {
    Future<int> future;
    future.add_done_callback(
        [&out](Future<int>& f) { out.push_back("callback " + std::to_string(f.result())); });
    future.set_result(3);
    out.push_back("set");
    future.add_done_callback([&out](Future<int>&) { out.push_back("late"); });
    co_await ringloop::sleep(1ms);
  }(log));
  CHECK(log == std::vector<std::string>{"set", "callback 3", "late"});
}

TEST_CASE("wrap_future awaits a std::future set by another thread without blocking the loop",
          "[api][future][thread]") {
  ringloop::run([]() -> Coro<> {
    std::promise<std::string> promise;
    auto result = ringloop::create_task(ringloop::wrap_future(promise.get_future()));
    std::thread producer([&promise] {
      std::this_thread::sleep_for(30ms);
      promise.set_value("from the thread");
    });
    int ticks = 0;
    while (!result.done()) {
      co_await ringloop::sleep(1ms);
      ++ticks;
    }
    producer.join();
    CHECK(ticks >= 5);  // the loop kept running while the thread had not answered
    CHECK(result.result() == "from the thread");
  }());
}
