// Task<T>: create_task (a Coro becomes a task's root in place, scheduled on the loop), then
// awaiting it; and spawning a batch of tasks gathered at once (the spawn_gather scenario).
#include <vector>

#include "bench/microbench.hpp"

namespace {

using ringloop::Coro;
using ringloop::Task;
using ringloop_bench::trivial;

Coro<> spawn_and_await(benchmark::State& state) {
  long i = 0;
  for (auto _ : state) {
    Task<long> task = ringloop::create_task(trivial(i++));
    long value = co_await task;
    benchmark::DoNotOptimize(value);
  }
}

// Per iteration: a batch of state.range(0) tasks spawned and gathered.
Coro<> spawn_gather_batches(benchmark::State& state) {
  const long batch = state.range(0);
  std::vector<Task<long>> tasks;
  for (auto _ : state) {
    tasks.reserve(static_cast<std::size_t>(batch));
    for (long i = 0; i < batch; ++i) tasks.push_back(ringloop::create_task(trivial(i)));
    std::vector<long> results = co_await ringloop::gather(std::move(tasks));
    benchmark::DoNotOptimize(results.data());
    tasks.clear();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_TaskSpawnAwait(benchmark::State& state) { ringloop::run(spawn_and_await(state)); }
void BM_TaskSpawnGather(benchmark::State& state) { ringloop::run(spawn_gather_batches(state)); }

}  // namespace

BENCHMARK(BM_TaskSpawnAwait);
BENCHMARK(BM_TaskSpawnGather)->Arg(1000)->Arg(100000);
