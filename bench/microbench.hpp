// What the Google Benchmark files share: each benchmark body is a coroutine that runs the
// benchmark's timed loop (`for (auto _ : state)`) inside ringloop::run(), so every iteration
// measures the awaits themselves, on a running loop, with the loop's set-up outside the timing
// only to the extent Google Benchmark amortises it over its iterations.
#pragma once

#include <benchmark/benchmark.h>

#include <ringloop/ringloop.hpp>

namespace ringloop_bench {

inline ringloop::Coro<long> trivial(long i) { co_return i; }

inline ringloop::Coro<long> yield_once(long i) {
  using namespace std::chrono_literals;
  co_await ringloop::sleep(0s);
  co_return i;
}

inline ringloop::Coro<> sleep_an_hour() {
  using namespace std::chrono_literals;
  co_await ringloop::sleep(1h);
}

}  // namespace ringloop_bench
