// The side-by-side scenarios of shared/BENCH.md, on ringloop. Same command line and same output
// as the peers in bench/peers/ (`ringloop_scenarios <scenario> <n> [conns] [secs]`, exactly one
// `key=value` line on stdout), so scripts/bench runs ringloop as one more peer. Only the public
// API is used: run, create_task, gather, sleep, wait_for, Task::cancel, and the one-SQE
// operations of coro/io/io.hpp (nop, accept, recv, send) for wait_for_io and echo;
// create_subprocess_exec and Process::wait for spawn_process; sleep_precise,
// Pacer and LatencyRecorder for the timer scenarios of issue #7 (ringloop only: lateness_precise
// is compared with the floor's lateness, the kernel timer it improves on).
//
// Each scenario is timed from inside the coroutine that run() drives: the loop's set-up (the
// ring's mmap) is excluded, as the peers exclude their runtime's start-up.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "bench/scenario_cross_loop.hpp"
#include "bench/scenario_file.hpp"
#include "bench/scenario_io.hpp"
#include "bench/scenario_udp.hpp"
#include "bench/scenario_util.hpp"

namespace {

using namespace std::chrono_literals;
using namespace ringloop_bench;
using echo_detail::EchoServer;
using ringloop::Coro;
using ringloop::Task;

// ------------------------------------------------------------------------------- sleep_many

Coro<> sleep_100ms() { co_await ringloop::sleep(100ms); }

// N tasks each sleeping 100 ms, all gathered: gather(range of Coros) starts them as tasks in
// one step, so their timeouts reach the kernel in SQ-sized batches.
Coro<std::string> sleep_many(long n) {
  Meter meter;
  std::vector<Coro<>> sleepers;
  sleepers.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) sleepers.push_back(sleep_100ms());
  co_await ringloop::gather(std::move(sleepers));
  co_return meter.line("sleep_many", n);
}

// ---------------------------------------------------------------------------- lateness(_loaded)

struct LatenessFigures {
  ringloop::LatencyRecorder lateness;
  double loop_wall_s = 0;  // the N sleeps only (not the 10k sleepers' set-up or teardown)
  double loop_cpu_s = 0;

  std::string keys() const {
    char text[256];
    std::snprintf(text, sizeof text,
                  " p50_us=%.1f p99_us=%.1f max_us=%.1f loop_wall_s=%.3f loop_cpu_s=%.3f "
                  "busy_pct=%.1f",
                  us(lateness.percentile(50)), us(lateness.percentile(99)), us(lateness.max()),
                  loop_wall_s, loop_cpu_s, 100 * loop_cpu_s / loop_wall_s);
    return text;
  }
};

// N sequential sleep(1 ms) (or sleep_precise(1 ms)), each timed alone; with `loaded`, 10k
// tasks sleeping an hour are pending in the same loop (their timeouts are in the kernel's list)
// and torn down at the end. The precise variant calibrates its spin margin first, untimed.
Coro<std::string> lateness(const char* scenario, long n, bool loaded, bool precise) {
  std::int64_t margin_ns = 0;
  if (precise) margin_ns = (co_await ringloop::calibrate_spin_margin()).count();
  Meter meter;
  std::vector<Task<>> pending;
  if (loaded) pending = co_await start_hour_sleepers(10'000);
  LatenessFigures figures;
  auto loop_start = Clock::now();
  double loop_start_cpu_s = cpu_s();
  for (long i = 0; i < n; ++i) {
    auto start = Clock::now();
    if (precise)
      co_await ringloop::sleep_precise(1ms);
    else
      co_await ringloop::sleep(1ms);
    figures.lateness.record(Clock::now() - start - 1ms);
  }
  figures.loop_cpu_s = cpu_s() - loop_start_cpu_s;
  figures.loop_wall_s = std::chrono::duration<double>(Clock::now() - loop_start).count();
  co_await cancel_and_wait(pending);
  std::string line = meter.line(scenario, n) + figures.keys();
  if (precise) {
    char text[96];
    std::snprintf(text, sizeof text, " margin_us=%.1f final_margin_us=%.1f", margin_ns / 1e3,
                  us(ringloop::spin_margin()));
    line += text;
  }
  co_return line;
}

// ---------------------------------------------------------------------------- pacer_drift

// N ticks of a 1 ms Pacer (kernel or spin precision). Drift would show as lateness growing
// with the tick index: the line gives the first and last tick's lateness, the medians of the
// first and last 100, and the least-squares slope of lateness against the index.
Coro<std::string> pacer_drift(const char* scenario, long n, ringloop::Precision precision) {
  if (precision == ringloop::Precision::spin) co_await ringloop::calibrate_spin_margin();
  Meter meter;
  ringloop::Pacer pacer(1ms, ringloop::MissedTick::burst, precision);
  std::vector<double> lateness_us;
  lateness_us.reserve(static_cast<std::size_t>(n));
  ringloop::LatencyRecorder recorder;
  for (long i = 0; i < n; ++i) {
    ringloop::Tick tick = co_await pacer.next();
    recorder.record(tick.lateness);
    lateness_us.push_back(us(tick.lateness));
  }
  DriftFigures drift = drift_of(lateness_us);
  char text[320];
  std::snprintf(text, sizeof text,
                " first_us=%.1f last_us=%.1f first100_p50_us=%.1f last100_p50_us=%.1f "
                "slope_us_per_1k=%.3f p50_us=%.1f p99_us=%.1f max_us=%.1f",
                lateness_us.front(), lateness_us.back(), drift.first_p50_us, drift.last_p50_us,
                drift.slope_us_per_1k, us(recorder.percentile(50)), us(recorder.percentile(99)),
                us(recorder.max()));
  std::string keys = text;
  if (precision == ringloop::Precision::spin) {
    std::snprintf(text, sizeof text, " final_margin_us=%.1f", us(ringloop::spin_margin()));
    keys += text;
  }
  keys += " tenths_p50_us=";
  for (double median_us : drift.tenths_p50_us) {
    std::snprintf(text, sizeof text, "%s%.1f", keys.back() == '=' ? "" : ",", median_us);
    keys += text;
  }
  co_return meter.line(scenario, n) + keys;
}

// ---------------------------------------------------------------------------- spawn_gather

Coro<long> trivial(long i) { co_return i; }

// create_task N trivial coroutines, then gather the tasks; timed: spawn + gather.
Coro<std::string> spawn_gather(long n) {
  Meter meter;
  auto start = Clock::now();
  std::vector<Task<long>> tasks;
  tasks.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) tasks.push_back(ringloop::create_task(trivial(i)));
  std::vector<long> results = co_await ringloop::gather(std::move(tasks));
  auto elapsed = Clock::now() - start;
  long sum = 0;
  for (long r : results) sum += r;
  check_sum("spawn_gather", sum, n);
  co_return meter.line("spawn_gather", n) + ns_per_op(elapsed, n);
}

// ---------------------------------------------------------------------------- wait_for_*

// wait_for on a coroutine that finishes without suspending: ringloop arms no timer.
Coro<std::string> wait_for_fast(long n) {
  Meter meter;
  auto start = Clock::now();
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await ringloop::wait_for(trivial(i), 1s);
  auto elapsed = Clock::now() - start;
  check_sum("wait_for_fast", sum, n);
  co_return meter.line("wait_for_fast", n) + ns_per_op(elapsed, n);
}

Coro<long> yield_once(long i) {
  co_await ringloop::sleep(0s);
  co_return i;
}

// wait_for on a coroutine that suspends once: the timer is armed; the coroutine finishes within
// the next iteration, before the loop gives the timer an SQE, so it is removed in user space
// (a timer still pending at the submit point would go to the kernel, and a TIMEOUT_REMOVE after).
Coro<std::string> wait_for_yield(long n) {
  Meter meter;
  auto start = Clock::now();
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await ringloop::wait_for(yield_once(i), 1s);
  auto elapsed = Clock::now() - start;
  check_sum("wait_for_yield", sum, n);
  co_return meter.line("wait_for_yield", n) + ns_per_op(elapsed, n);
}

// ---------------------------------------------------------------------------- cancel_many

// N tasks sleeping an hour (started untimed), then every one cancelled and awaited; timed:
// the cancels and the wait.
Coro<std::string> cancel_many(long n) {
  Meter meter;
  std::vector<Task<>> sleepers = co_await start_hour_sleepers(n);
  auto start = Clock::now();
  co_await cancel_and_wait(sleepers);
  auto elapsed = Clock::now() - start;
  co_return meter.line("cancel_many", n) + ns_per_op(elapsed, n);
}

// ---------------------------------------------------------------------------- spawn_process

// N sequential create_subprocess_exec("/bin/true") + wait, stdio inherited (every peer's
// default but Node's, which the Node peer sets to inherit too).
Coro<std::string> spawn_process(long n) {
  Meter meter;
  auto start = Clock::now();
  for (long i = 0; i < n; ++i) {
    ringloop::Process child = co_await ringloop::create_subprocess_exec("/bin/true");
    int code = co_await child.wait();
    if (code != 0) {
      std::fprintf(stderr, "spawn_process: /bin/true exited %d\n", code);
      std::exit(1);
    }
  }
  auto elapsed = Clock::now() - start;
  double secs = std::chrono::duration<double>(elapsed).count();
  char text[96];
  std::snprintf(text, sizeof text, " procs_per_s=%.0f us_per_op=%.1f", n / secs, secs * 1e6 / n);
  co_return meter.line("spawn_process", n) + text;
}

// ---------------------------------------------------------------------------- driver

struct Args {
  std::string scenario;
  long n = 0;
  long conns = 0;
  double secs = 2.0;
};

Coro<std::string> scenario_coro(const Args& args) {
  const std::string& s = args.scenario;
  if (s == "sleep_many") return sleep_many(args.n);
  if (s == "lateness") return lateness("lateness", args.n, false, false);
  if (s == "lateness_loaded") return lateness("lateness_loaded", args.n, true, false);
  if (s == "lateness_precise") return lateness("lateness_precise", args.n, false, true);
  if (s == "lateness_precise_loaded")
    return lateness("lateness_precise_loaded", args.n, true, true);
  if (s == "pacer_drift") return pacer_drift("pacer_drift", args.n, ringloop::Precision::kernel);
  if (s == "pacer_drift_precise")
    return pacer_drift("pacer_drift_precise", args.n, ringloop::Precision::spin);
  if (s == "spawn_gather") return spawn_gather(args.n);
  if (s == "wait_for_fast") return wait_for_fast(args.n);
  if (s == "wait_for_yield") return wait_for_yield(args.n);
  if (s == "cancel_many") return cancel_many(args.n);
  if (s == "wait_for_io") return wait_for_io(args.n);
  if (s == "echo") return echo("echo", args.conns, args.secs);
  if (s == "spawn_process") return spawn_process(args.n);
  if (s == "echo_direct") return echo("echo_direct", args.conns, args.secs, EchoServer::direct);
  if (s == "echo_multishot")
    return echo("echo_multishot", args.conns, args.secs, EchoServer::multishot);
  if (s == "echo_bulk") return echo<echo_detail::kBulkBytes>("echo_bulk", args.conns, args.secs);
  if (s == "echo_bulk_multishot")
    return echo<echo_detail::kBulkBytes>("echo_bulk_multishot", args.conns, args.secs,
                                         EchoServer::multishot);
  if (s == "file_read") return file_read("file_read", args.n, args.conns, false);
  if (s == "file_read_fixed") return file_read("file_read_fixed", args.n, args.conns, true);
  if (s == "udp_echo") return udp_echo(args.n, args.conns, args.secs);  // n: payload bytes
  if (s == "unix_echo") return unix_echo(args.conns, args.secs);
  return {};
}

// The loop's options: the library's defaults, as a user gets them. The admission budget is
// 4 x CQ = 262,144 CQEs owed: up to that many timeouts reach the kernel, and the CQEs beyond the
// CQ wait on its overflow list, as the floor's do. Past it (sleep_many 1M) the rest wait in
// ringloop's FIFO, and those that leave it with their deadline passed complete there without an
// SQE (bench/PROPOSALS.md, P1). RINGLOOP_BENCH_MAX_IN_FLIGHT overrides the budget (0 = the
// library's default): with 2N, every timeout reaches the kernel.
ringloop::LoopOptions loop_options(const Args&) {
  ringloop::LoopOptions options;
  if (const char* value = std::getenv("RINGLOOP_BENCH_MAX_IN_FLIGHT"))
    options.max_in_flight = static_cast<unsigned>(std::strtoul(value, nullptr, 10));
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <scenario> <n> [conns] [secs]\n", argv[0]);
    return 2;
  }
  Args args{argv[1], std::atol(argv[2])};
  args.conns = argc > 3 ? std::atol(argv[3]) : args.n;
  if (argc > 4) args.secs = std::atof(argv[4]);
  if (args.n <= 0 || args.conns <= 0 || args.secs <= 0) {
    std::fprintf(stderr, "ringloop_scenarios: n, conns and secs must be > 0\n");
    return 2;
  }
  // A group of loops runs its own loops, outside run().
  if (args.scenario == "cross_loop") {
    std::printf("%s\n", ringloop_bench::cross_loop(args.n).c_str());
    return 0;
  }
  Coro<std::string> coro = scenario_coro(args);
  if (!coro.valid()) {
    std::fprintf(stderr, "ringloop_scenarios: unknown scenario %s\n", args.scenario.c_str());
    return 2;
  }
  ringloop::LoopOptions options = loop_options(args);
  std::string line = ringloop::run(std::move(coro), options);
  // Like the floor's setup=: the one loop setting the scenarios may change, for the report.
  unsigned max_in_flight = options.max_in_flight != 0
                               ? options.max_in_flight
                               : options.ring.cq_entries * 4;  // loop.cpp's default
  if (line.find(" skipped=") == std::string::npos)
    line += " max_in_flight=" + std::to_string(max_in_flight);
  std::printf("%s\n", line.c_str());
  return 0;
}
