// cross_loop N (issue #19): N round trips, one after another, between two loops of a LoopGroup:
// loop 0 awaits loop 1's call() (a request and a reply, two messages, two wake-ups per round
// trip). Figures: p50/p99 of the round trip and messages/s. cross_loop rings the other loop with
// IORING_OP_MSG_RING; cross_loop_eventfd forces the eventfd path (LoopOptions::
// msg_ring_doorbells = false), as on a kernel without MSG_RING. The loops are pinned to the
// first two CPUs with RINGLOOP_BENCH_PIN=1. Not inside run(): a group runs its own loops.
#pragma once

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "bench/scenario_util.hpp"

namespace ringloop_bench {

struct CrossLoopRun {
  std::vector<double> rtt_us;
  double wall_s = 0;
  bool rang = false;              // whether the MSG_RING doorbell was used
  double enters_per_rtt = 0;      // the caller's io_uring_enter calls per round trip
  double iterations_per_rtt = 0;  // the caller loop's iterations per round trip
};

inline void cross_loop_once(long n, bool msg_ring, CrossLoopRun& out) {
  ringloop::LoopGroupOptions options;
  options.loops = 2;
  options.loop.msg_ring_doorbells = msg_ring;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  // Pinned only when asked (RINGLOOP_BENCH_PIN=1): the peers are not, and on a shared 2-core
  // machine a pinned loop waits for its core while the other one is free.
  const char* pin = std::getenv("RINGLOOP_BENCH_PIN");
  if (pin != nullptr && pin[0] == '1' && ::sched_getaffinity(0, sizeof allowed, &allowed) == 0 &&
      CPU_COUNT(&allowed) >= 2) {
    for (int cpu = 0; cpu < CPU_SETSIZE && options.cpus.size() < 2; ++cpu)
      if (CPU_ISSET(cpu, &allowed)) options.cpus.push_back(cpu);
  }
  ringloop::LoopGroup group(options);
  long sum = 0;
  group.run([&](std::size_t i) -> ringloop::Coro<> {
    if (i == 1) co_return;  // loop 1 answers until loop 0's main is done
    auto& other = group.loop(1);
    for (long k = 0; k < 1000; ++k) {  // warm-up
      long value = co_await other.call([k] { return k; });
      sum -= value;
    }
    sum = 0;
    ringloop::Loop& here = *ringloop::Loop::current();
    std::uint64_t enters = here.ring().enter_calls(), iterations = here.stats().iterations;
    auto start = Clock::now();
    for (long k = 0; k < n; ++k) {
      auto sent = Clock::now();
      long value = co_await other.call([k] { return k; });
      out.rtt_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent).count());
      sum += value;
    }
    out.wall_s += std::chrono::duration<double>(Clock::now() - start).count();
    out.rang = here.stats().doorbells_rung > 0;
    out.enters_per_rtt = static_cast<double>(here.ring().enter_calls() - enters) / n;
    out.iterations_per_rtt = static_cast<double>(here.stats().iterations - iterations) / n;
  });
  if (sum != n * (n - 1) / 2) {
    std::fprintf(stderr, "cross_loop: wrong sum %ld\n", sum);
    std::exit(1);
  }
}

// Both wake-up paths in one process, alternating (A B A B), so their ratio is measured side by
// side: the MSG_RING figures under the common keys, the eventfd path's under eventfd_*.
inline std::string cross_loop(long n) {
  Meter meter;
  CrossLoopRun doorbell, eventfd;
  for (int round = 0; round < 2; ++round) {
    cross_loop_once(n, true, doorbell);
    cross_loop_once(n, false, eventfd);
  }
  auto keys = [](const char* prefix, CrossLoopRun& run) {
    std::sort(run.rtt_us.begin(), run.rtt_us.end());
    char text[256];
    std::snprintf(text, sizeof text,
                  " %sp50_us=%.1f %sp99_us=%.1f %smsgs_per_s=%.0f %senters_per_rtt=%.2f "
                  "%siterations_per_rtt=%.2f",
                  prefix, percentile(run.rtt_us, 50), prefix, percentile(run.rtt_us, 99), prefix,
                  2.0 * static_cast<double>(run.rtt_us.size()) / run.wall_s, prefix,
                  run.enters_per_rtt, prefix, run.iterations_per_rtt);
    return std::string(text);
  };
  return meter.line("cross_loop", n) + keys("", doorbell) + keys("eventfd_", eventfd) +
         (doorbell.rang ? " wake=msg_ring" : " wake=eventfd_only");
}

}  // namespace ringloop_bench
