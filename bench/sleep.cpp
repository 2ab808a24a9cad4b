// sleep(): sleep(0) is a yield through the ready queue (no SQE); sleep(1 ns) is one full round
// trip through the kernel (an IORING_OP_TIMEOUT already expired, its CQE reaped, the coroutine
// resumed); sleep(1 ms) adds the timer wake-up itself.
#include <chrono>

#include "bench/microbench.hpp"

namespace {

using namespace std::chrono_literals;
using ringloop::Coro;

template <class Duration>
Coro<> sleep_loop(benchmark::State& state, Duration duration) {
  for (auto _ : state) co_await ringloop::sleep(duration);
}

void BM_SleepZeroYield(benchmark::State& state) { ringloop::run(sleep_loop(state, 0s)); }
void BM_SleepExpiredRoundTrip(benchmark::State& state) { ringloop::run(sleep_loop(state, 1ns)); }
void BM_Sleep1ms(benchmark::State& state) { ringloop::run(sleep_loop(state, 1ms)); }

}  // namespace

BENCHMARK(BM_SleepZeroYield);
BENCHMARK(BM_SleepExpiredRoundTrip);
BENCHMARK(BM_Sleep1ms)->UseRealTime();
