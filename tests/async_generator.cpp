// AsyncGenerator<T>: items in order then nullopt, awaits inside the body (virtual time, a
// stream), exceptions and cancels surfacing at next(), frames destroyed unfinished, move-only
// items, one next() at a time, aclose(), and a million synchronous items without stack growth.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>

#include "io_support.hpp"

using namespace std::chrono_literals;
using ringloop::AsyncGenerator;
using ringloop::Coro;

namespace {

const ringloop::LoopOptions kVirtual{.virtual_time = true};

// Sets a flag when destroyed: a body's RAII cleanup.
struct Cleanup {
  bool& ran;
  ~Cleanup() { ran = true; }
};

AsyncGenerator<int> count_to(int last) {
  for (int i = 1; i <= last; ++i) co_yield i;
}

template <class T>
Coro<std::vector<T>> collect(AsyncGenerator<T>& gen) {
  std::vector<T> items;
  for (;;) {
    std::optional<T> item = co_await gen.next();
    if (!item) break;
    items.push_back(std::move(*item));
  }
  co_return items;
}

AsyncGenerator<int> ticks(std::chrono::milliseconds period, int count) {
  for (int i = 0; i < count; ++i) {
    co_await ringloop::sleep(period);
    co_yield i;
  }
}

AsyncGenerator<int> fails_after(int good) {
  for (int i = 0; i < good; ++i) co_yield i;
  throw std::runtime_error("generator failed");
}

AsyncGenerator<int> sleeps_forever(bool& cleaned_up, bool& saw_cancel) {
  Cleanup cleanup{cleaned_up};
  co_yield 1;
  try {
    co_await ringloop::sleep(1h);
  } catch (const ringloop::CancelledError&) {
    saw_cancel = true;
    throw;
  }
  co_yield 2;
}

AsyncGenerator<int> yields_forever(bool& cleaned_up) {
  Cleanup cleanup{cleaned_up};
  for (int i = 0;; ++i) co_yield i;
}

AsyncGenerator<std::unique_ptr<int>> boxes(int count) {
  for (int i = 0; i < count; ++i) co_yield std::make_unique<int>(i);
}

// The example of the header: the lines of a stream, until it ends.
AsyncGenerator<std::string> lines(ringloop::Stream& stream) {
  for (;;) {
    std::string line;
    try {
      line = co_await stream.read_until("\n");
    } catch (const ringloop::IncompleteReadError& end) {
      if (end.partial.empty()) co_return;
      line = end.partial;  // a last line without its newline
    }
    co_yield std::move(line);
  }
}

// A task's coroutine takes what it uses as parameters: a capturing lambda would dangle once
// the create_task statement ends (README, "Lifetimes").
Coro<> consume_sleeper(bool& cleaned_up, bool& saw_cancel, bool& consumer_saw_cancel) {
  auto gen = sleeps_forever(cleaned_up, saw_cancel);
  std::optional<int> first = co_await gen.next();
  CHECK(first == 1);
  try {
    co_await gen.next();
  } catch (const ringloop::CancelledError&) {
    consumer_saw_cancel = true;
    CHECK(gen.finished());
    throw;
  }
}

Coro<> send_lines(ringloop::Stream& writer) {
  co_await writer.write("first\nsec");
  co_await ringloop::sleep(5ms);  // a line split across two reads
  co_await writer.write("ond\nlast");
  co_await writer.write_eof();
}

}  // namespace

TEST_CASE("an async generator hands out its items in order, then nullopt", "[async_generator]") {
  auto items = ringloop::run([]() -> Coro<std::vector<int>> {
    auto gen = count_to(3);
    auto got = co_await collect(gen);
    std::optional<int> after = co_await gen.next();
    CHECK_FALSE(after.has_value());  // still the end, not an error
    CHECK(gen.finished());
    co_return got;
  }());
  CHECK(items == std::vector<int>{1, 2, 3});
}

TEST_CASE("an async generator's body does not run before the first next()", "[async_generator]") {
  int runs = 0;
  auto body = [](int& counter) -> AsyncGenerator<int> {
    ++counter;
    co_yield 1;
  };
  ringloop::run([&]() -> Coro<> {
    auto gen = body(runs);
    co_await ringloop::sleep(1ms);
    CHECK(runs == 0);
    std::optional<int> first = co_await gen.next();
    CHECK(first == 1);
    CHECK(runs == 1);
  }());
}

TEST_CASE("an async generator may sleep between items (virtual time)", "[async_generator]") {
  ringloop::run(
      []() -> Coro<> {
        ringloop::Loop& loop = *ringloop::Loop::current();
        auto start = loop.now();
        auto gen = ticks(10s, 3);
        std::vector<long> at_seconds;
        for (;;) {
          std::optional<int> tick = co_await gen.next();
          if (!tick) break;
          at_seconds.push_back(static_cast<long>(
              std::chrono::duration_cast<std::chrono::seconds>(loop.now() - start).count()));
        }
        CHECK(at_seconds == std::vector<long>{10, 20, 30});
      }(),
      kVirtual);
}

TEST_CASE("an exception from an async generator surfaces at next(), then the end",
          "[async_generator]") {
  ringloop::run([]() -> Coro<> {
    auto gen = fails_after(2);
    std::optional<int> first = co_await gen.next();
    std::optional<int> second = co_await gen.next();
    CHECK(first == 0);
    CHECK(second == 1);
    bool threw = false;
    try {
      co_await gen.next();
    } catch (const std::runtime_error& error) {
      threw = std::string(error.what()) == "generator failed";
    }
    CHECK(threw);
    std::optional<int> after = co_await gen.next();
    CHECK_FALSE(after.has_value());
  }());
}

TEST_CASE("cancelling the consumer unwinds the generator at its await, CancelledError at next()",
          "[async_generator]") {
  bool cleaned_up = false;
  bool saw_cancel = false;
  bool consumer_saw_cancel = false;
  ringloop::run(
      [&]() -> Coro<> {
        auto consumer =
            ringloop::create_task(consume_sleeper(cleaned_up, saw_cancel, consumer_saw_cancel));
        co_await ringloop::sleep(1s);
        CHECK_FALSE(cleaned_up);
        CHECK(consumer.cancel());
        try {
          co_await consumer;
        } catch (const ringloop::CancelledError&) {
        }
        CHECK(consumer.cancelled());
      }(),
      kVirtual);
  CHECK(saw_cancel);
  CHECK(cleaned_up);
  CHECK(consumer_saw_cancel);
}

TEST_CASE("destroying an unfinished async generator runs its cleanup", "[async_generator]") {
  bool cleaned_up = false;
  ringloop::run([&]() -> Coro<> {
    {
      auto gen = yields_forever(cleaned_up);
      std::optional<int> first = co_await gen.next();
      std::optional<int> second = co_await gen.next();
      CHECK(first == 0);
      CHECK(second == 1);
      CHECK_FALSE(cleaned_up);
    }
    CHECK(cleaned_up);
  }());
}

TEST_CASE("an async generator of move-only items", "[async_generator]") {
  int sum = ringloop::run([]() -> Coro<int> {
    auto gen = boxes(4);
    auto items = co_await collect(gen);
    int total = 0;
    for (auto& box : items) total += *box;
    co_return total;
  }());
  CHECK(sum == 0 + 1 + 2 + 3);
}

TEST_CASE("a second next() while one is pending is a clear error", "[async_generator]") {
  ringloop::run(
      []() -> Coro<> {
        auto gen = ticks(1s, 2);
        auto first = ringloop::create_task([](AsyncGenerator<int>& g) -> Coro<int> {
          std::optional<int> item = co_await g.next();
          co_return item.value();
        }(gen));
        co_await ringloop::sleep(10ms);  // first is now waiting inside the generator's sleep
        std::string message;
        try {
          co_await gen.next();
        } catch (const std::logic_error& error) {
          message = error.what();
        }
        CHECK(message.find("already running") != std::string::npos);
        int value = co_await first;
        CHECK(value == 0);
        std::optional<int> second = co_await gen.next();  // fine once the first has returned
        CHECK(second == 1);
      }(),
      kVirtual);
}

TEST_CASE("next() on an empty async generator is a clear error", "[async_generator]") {
  ringloop::run([]() -> Coro<> {
    AsyncGenerator<int> gen;
    std::string message;
    try {
      co_await gen.next();
    } catch (const std::logic_error& error) {
      message = error.what();
    }
    CHECK(message.find("empty AsyncGenerator") != std::string::npos);
  }());
}

TEST_CASE("a million synchronous items do not grow the stack", "[async_generator][stack]") {
  constexpr int kItems = 1'000'000;
  auto sum = ringloop::run([]() -> Coro<std::int64_t> {
    auto gen = count_to(kItems);
    std::int64_t total = 0;
    for (;;) {
      std::optional<int> item = co_await gen.next();
      if (!item) break;
      total += *item;
    }
    co_return total;
  }());
  CHECK(sum == std::int64_t{kItems} * (kItems + 1) / 2);
}

TEST_CASE("an async generator reads the lines of a stream", "[async_generator]") {
  test_support::SocketPair pair;
  auto got = ringloop::run([&]() -> Coro<std::vector<std::string>> {
    ringloop::Stream writer(std::move(pair.a));
    ringloop::Stream reader(std::move(pair.b));
    auto send = ringloop::create_task(send_lines(writer));
    auto gen = lines(reader);
    auto items = co_await collect(gen);
    co_await send;
    co_return items;
  }());
  CHECK(got == std::vector<std::string>{"first\n", "second\n", "last"});
}

TEST_CASE("aclose() ends a generator at its co_yield; it may clean up asynchronously",
          "[async_generator]") {
  bool async_cleanup_done = false;
  bool raii_done = false;
  auto body = [](bool& cleanup_done, bool& raii) -> AsyncGenerator<int> {
    Cleanup cleanup{raii};
    bool closing = false;
    try {
      for (int i = 0;; ++i) co_yield i;
    } catch (const ringloop::GeneratorExit&) {
      closing = true;
    }
    if (closing) {
      co_await ringloop::sleep(1ms);  // asynchronous cleanup, outside the handler
      cleanup_done = true;
    }
  };
  ringloop::run([&]() -> Coro<> {
    auto gen = body(async_cleanup_done, raii_done);
    std::optional<int> first = co_await gen.next();
    CHECK(first == 0);
    co_await gen.aclose();
    CHECK(async_cleanup_done);
    CHECK(raii_done);
    CHECK(gen.finished());
    std::optional<int> after = co_await gen.next();
    CHECK_FALSE(after.has_value());
    co_await gen.aclose();  // closing again does nothing
  }());
}

TEST_CASE("aclose() of a generator that yields again is a clear error", "[async_generator]") {
  auto stubborn = []() -> AsyncGenerator<int> {
    for (int i = 0;; ++i) {
      bool closing = false;
      try {
        co_yield i;
      } catch (const ringloop::GeneratorExit&) {
        closing = true;
      }
      if (closing) co_yield -1;
    }
  };
  ringloop::run([&]() -> Coro<> {
    auto gen = stubborn();
    std::optional<int> first = co_await gen.next();
    CHECK(first == 0);
    std::string message;
    try {
      co_await gen.aclose();
    } catch (const std::logic_error& error) {
      message = error.what();
    }
    CHECK(message.find("ignored GeneratorExit") != std::string::npos);
  }());
}

TEST_CASE("aclose() of a generator that never started never runs its body", "[async_generator]") {
  int runs = 0;
  auto body = [](int& counter) -> AsyncGenerator<int> {
    ++counter;
    co_yield 1;
  };
  ringloop::run([&]() -> Coro<> {
    auto gen = body(runs);
    co_await gen.aclose();
    std::optional<int> item = co_await gen.next();
    CHECK_FALSE(item.has_value());
  }());
  CHECK(runs == 0);
}
