// wait_for(): the fast path (the inner coroutine finishes without suspending, so no timer is
// armed) and the armed path (it yields once: timeout SQE, TIMEOUT_REMOVE, two CQEs).
#include <chrono>

#include "bench/microbench.hpp"

namespace {

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop_bench::trivial;
using ringloop_bench::yield_once;

Coro<> wait_for_trivial(benchmark::State& state) {
  long i = 0;
  for (auto _ : state) {
    long value = co_await ringloop::wait_for(trivial(i++), 1s);
    benchmark::DoNotOptimize(value);
  }
}

Coro<> wait_for_yielding(benchmark::State& state) {
  long i = 0;
  for (auto _ : state) {
    long value = co_await ringloop::wait_for(yield_once(i++), 1s);
    benchmark::DoNotOptimize(value);
  }
}

void BM_WaitForFastPath(benchmark::State& state) { ringloop::run(wait_for_trivial(state)); }
void BM_WaitForArmedTimer(benchmark::State& state) { ringloop::run(wait_for_yielding(state)); }

}  // namespace

BENCHMARK(BM_WaitForFastPath);
BENCHMARK(BM_WaitForArmedTimer);
