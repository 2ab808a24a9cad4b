// Timers run in deadline order, equal deadlines in the order they were armed, whatever order
// the kernel posts their CQEs in within one reap (asyncio's BaseEventLoop._run_once pops its
// heap of timers in (when, sequence) order). Linux 6.1 posted two 5 ms timers that fired in the
// same tick in reverse; here a test seam of the ring reverses every reaped batch, on any kernel.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Ring;

namespace {

Coro<void> note_after(std::chrono::milliseconds delay, std::vector<std::string>& log,
                      std::string name) {
  co_await ringloop::sleep(delay);
  log.push_back(std::move(name));
}

Coro<void> note_at(std::chrono::steady_clock::time_point when, std::vector<std::string>& log,
                   std::string name) {
  co_await ringloop::sleep_until(when);
  log.push_back(std::move(name));
}

// Keeps the loop's thread busy, so that every timer armed before it is due at the next reap.
void block_loop_for(std::chrono::milliseconds duration) {
  auto until = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < until) {
  }
}

struct ReversedReaps {
  ReversedReaps() { Ring::reverse_cqe_order_for_tests(true); }
  ~ReversedReaps() { Ring::reverse_cqe_order_for_tests(false); }
};

}  // namespace

TEST_CASE("timers due in one reap run in deadline order whatever order their CQEs came in",
          "[timers][conformance]") {
  std::vector<std::string> log;
  ReversedReaps reversed;
  ringloop::run([](std::vector<std::string>& out) -> Coro<> {
    auto first = ringloop::create_task(note_after(5ms, out, "first"));
    auto second = ringloop::create_task(note_after(5ms, out, "second"));
    auto third = ringloop::create_task(note_after(6ms, out, "third"));
    co_await ringloop::sleep(0ms);  // the three are armed, in this order
    block_loop_for(20ms);           // all three are due at the next reap
    co_await first;
    co_await second;
    co_await third;
  }(log));
  CHECK(log == std::vector<std::string>{"first", "second", "third"});
}

TEST_CASE("timers with equal deadlines run in the order they were armed",
          "[timers][conformance]") {
  std::vector<std::string> log;
  ReversedReaps reversed;
  ringloop::run([](std::vector<std::string>& out) -> Coro<> {
    auto when = std::chrono::steady_clock::now() + 5ms;
    auto a = ringloop::create_task(note_at(when, out, "a"));
    auto b = ringloop::create_task(note_at(when, out, "b"));
    auto c = ringloop::create_task(note_at(when, out, "c"));
    co_await ringloop::sleep(0ms);
    block_loop_for(20ms);
    co_await a;
    co_await b;
    co_await c;
  }(log));
  CHECK(log == std::vector<std::string>{"a", "b", "c"});
}
