// Task::cancel(): a task sleeping an hour is cancelled (TIMEOUT_REMOVE) and awaited until it
// has ended with CancelledError. Batches of state.range(0) tasks; their spawning is not timed.
#include <chrono>
#include <vector>

#include "bench/microbench.hpp"

namespace {

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Task;
using ringloop_bench::sleep_an_hour;

Coro<> cancel_batches(benchmark::State& state) {
  const long batch = state.range(0);
  std::vector<Task<>> tasks;
  for (auto _ : state) {
    state.PauseTiming();
    tasks.reserve(static_cast<std::size_t>(batch));
    for (long i = 0; i < batch; ++i) tasks.push_back(ringloop::create_task(sleep_an_hour()));
    co_await ringloop::sleep(0s);  // every sleeper has submitted its timeout
    state.ResumeTiming();
    for (Task<>& task : tasks) task.cancel();
    co_await ringloop::gather(ringloop::return_exceptions, tasks);
    tasks.clear();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

// One task cancelled while it sleeps, then awaited: the CancelledError reaches the awaiter.
Coro<> cancel_one(benchmark::State& state) {
  for (auto _ : state) {
    Task<> task = ringloop::create_task(sleep_an_hour());
    co_await ringloop::sleep(0s);
    task.cancel();
    try {
      co_await task;
    } catch (const ringloop::CancelledError&) {
    }
  }
}

void BM_CancelBatch(benchmark::State& state) { ringloop::run(cancel_batches(state)); }
void BM_SpawnSleepCancelAwait(benchmark::State& state) { ringloop::run(cancel_one(state)); }

}  // namespace

BENCHMARK(BM_CancelBatch)->Arg(1000)->Arg(10000);
BENCHMARK(BM_SpawnSleepCancelAwait);
