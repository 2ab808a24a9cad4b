// Coro<T>: a coroutine frame created (from the per-thread frame pool), awaited, and destroyed.
#include "bench/microbench.hpp"

namespace {

using ringloop::Coro;
using ringloop_bench::trivial;
using ringloop_bench::yield_once;

// A frame that finishes inside its awaiter's await_suspend: no trip through the ready queue.
Coro<> await_trivial(benchmark::State& state) {
  long i = 0;
  for (auto _ : state) {
    long value = co_await trivial(i++);
    benchmark::DoNotOptimize(value);
  }
}

// Three nested frames, each awaiting the next: the cost of a chain of synchronous awaits.
Coro<long> nested(long i, int depth) {
  if (depth == 0) co_return i;
  long value = co_await nested(i, depth - 1);
  co_return value;
}

Coro<> await_nested(benchmark::State& state) {
  long i = 0;
  for (auto _ : state) {
    long value = co_await nested(i++, 3);
    benchmark::DoNotOptimize(value);
  }
}

// A frame that suspends once (sleep(0), through the ready queue) before it returns.
Coro<> await_yielding(benchmark::State& state) {
  long i = 0;
  for (auto _ : state) {
    long value = co_await yield_once(i++);
    benchmark::DoNotOptimize(value);
  }
}

void BM_CoroCreateAwait(benchmark::State& state) { ringloop::run(await_trivial(state)); }
void BM_CoroCreateAwaitDepth4(benchmark::State& state) { ringloop::run(await_nested(state)); }
void BM_CoroAwaitYielding(benchmark::State& state) { ringloop::run(await_yielding(state)); }

}  // namespace

BENCHMARK(BM_CoroCreateAwait);
BENCHMARK(BM_CoroCreateAwaitDepth4);
BENCHMARK(BM_CoroAwaitYielding);

namespace {

// The misuse check every ringloop await makes (issue #19: detail::loop_for refuses a task
// resumed on another loop's thread), against reading the task's loop without it: the check's
// cost per await, side by side in one run.
Coro<> loop_for_checked(benchmark::State& state) {
  auto task = co_await ringloop::current_task();
  ringloop::detail::TaskCore* core = &task.core();
  for (auto _ : state) {
    benchmark::DoNotOptimize(core);
    ringloop::Loop* loop = &ringloop::detail::loop_for(core, "bench");
    benchmark::DoNotOptimize(loop);
  }
}

Coro<> loop_for_unchecked(benchmark::State& state) {
  auto task = co_await ringloop::current_task();
  ringloop::detail::TaskCore* core = &task.core();
  for (auto _ : state) {
    benchmark::DoNotOptimize(core);
    ringloop::Loop* loop = core->loop;
    benchmark::DoNotOptimize(loop);
  }
}

void BM_LoopForChecked(benchmark::State& state) { ringloop::run(loop_for_checked(state)); }
void BM_LoopForUnchecked(benchmark::State& state) { ringloop::run(loop_for_unchecked(state)); }

}  // namespace

BENCHMARK(BM_LoopForChecked);
BENCHMARK(BM_LoopForUnchecked);
