// Task::cancel(): a task sleeping an hour is cancelled (TIMEOUT_REMOVE) and awaited until it
// has ended with CancelledError. Batches of state.range(0) tasks; their spawning is not timed.
// The same batch waiting on an Event instead (a wait that is a list entry in user space, so its
// cancel reaches no kernel) and a bare C++ throw and catch split a cancel's cost into the
// kernel's part, the unwind's and the task bookkeeping's (bench/report.py quotes them).
#include <chrono>
#include <vector>

#include "bench/microbench.hpp"

namespace {

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Task;
using ringloop_bench::sleep_an_hour;

// Batches of state.range(0) tasks made by make_task (untimed), then cancelled and gathered.
template <class MakeTask>
Coro<> cancel_batches(benchmark::State& state, MakeTask make_task) {
  const long batch = state.range(0);
  std::vector<Task<>> tasks;
  for (auto _ : state) {
    state.PauseTiming();
    tasks.reserve(static_cast<std::size_t>(batch));
    for (long i = 0; i < batch; ++i) tasks.push_back(ringloop::create_task(make_task()));
    co_await ringloop::sleep(0s);  // every task has reached its wait (a sleep's timeout submitted)
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

Coro<> wait_for_event(ringloop::Event& event) { co_await event.wait(); }

[[gnu::noinline]] void throw_cancelled() { throw ringloop::CancelledError(); }

// The unwind alone: CancelledError thrown one call deep and caught, as a cancelled task's
// coroutine throws it from its await and its promise catches it.
void BM_ThrowCatchCancelledError(benchmark::State& state) {
  for (auto _ : state) {
    try {
      throw_cancelled();
    } catch (const ringloop::CancelledError& error) {
      benchmark::DoNotOptimize(&error);
    }
  }
}

void BM_CancelBatch(benchmark::State& state) {
  ringloop::run(cancel_batches(state, [] { return sleep_an_hour(); }));
}
// Every task waits on an Event: the cancel unlinks the waiter and the task unwinds with
// CancelledError, with no SQE and no CQE.
void BM_CancelEventBatch(benchmark::State& state) {
  ringloop::Event event;
  ringloop::run(cancel_batches(state, [&event] { return wait_for_event(event); }));
}
void BM_SpawnSleepCancelAwait(benchmark::State& state) { ringloop::run(cancel_one(state)); }

}  // namespace

BENCHMARK(BM_CancelBatch)->Arg(1000)->Arg(10000);
BENCHMARK(BM_CancelEventBatch)->Arg(1000)->Arg(10000);
BENCHMARK(BM_ThrowCatchCancelledError);
BENCHMARK(BM_SpawnSleepCancelAwait);
