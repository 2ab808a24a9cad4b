// What every scenario of bench/scenarios.cpp shares: the measurement (wall clock, CPU and
// peak RSS, printed in the peers' `key=value` format), nearest-rank percentiles, and the
// pending-sleeper tasks of lateness_loaded and cancel_many.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>

namespace ringloop_bench {

using Clock = std::chrono::steady_clock;

inline double cpu_s() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](timeval t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

inline long rss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// Wall clock and CPU from the start of a scenario; line() gives the keys every peer prints.
class Meter {
 public:
  std::string line(const char* scenario, long n) const {
    double wall_s = std::chrono::duration<double>(Clock::now() - start_).count();
    char text[256];
    std::snprintf(text, sizeof text,
                  "peer=ringloop scenario=%s n=%ld wall_s=%.3f cpu_s=%.3f rss_kb=%ld", scenario, n,
                  wall_s, cpu_s() - start_cpu_s_, rss_kb());
    return text;
  }

 private:
  Clock::time_point start_ = Clock::now();
  double start_cpu_s_ = cpu_s();
};

inline std::string skipped_line(const char* scenario, long n, const char* reason) {
  return "peer=ringloop scenario=" + std::string(scenario) + " n=" + std::to_string(n) +
         " skipped=" + reason;
}

inline std::string ns_per_op(Clock::duration elapsed, long n) {
  char text[64];
  double ns = std::chrono::duration<double, std::nano>(elapsed).count();
  std::snprintf(text, sizeof text, " ns_per_op=%.1f", ns / static_cast<double>(n));
  return text;
}

inline double us(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e3; }

// Nearest rank, as every peer computes it: element ceil(q*n/100)-1 of the sorted samples.
inline double percentile(const std::vector<double>& sorted, unsigned q) {
  std::size_t rank = (sorted.size() * q + 99) / 100;
  return sorted[rank == 0 ? 0 : rank - 1];
}

// Whether lateness grows along a run of ticks: the medians of its first and last 100 samples
// (one sample alone is noise), and the slope, in us per 1,000 ticks, of the least-squares line
// through the medians of its ten tenths (medians, so that one preemption of a few ms does not
// pass for a trend).
struct DriftFigures {
  double first_p50_us = 0;
  double last_p50_us = 0;
  double slope_us_per_1k = 0;
  std::vector<double> tenths_p50_us;  // the median of each tenth of the run, in order
};

inline double median_of(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : percentile(values, 50);
}

inline DriftFigures drift_of(const std::vector<double>& lateness_us) {
  DriftFigures figures;
  std::size_t n = lateness_us.size();
  if (n < 10) return figures;
  auto begin = lateness_us.begin();
  std::size_t window = std::min<std::size_t>(100, n);
  figures.first_p50_us = median_of({begin, begin + window});
  figures.last_p50_us = median_of({lateness_us.end() - window, lateness_us.end()});
  double sxy = 0, sxx = 0, mean_x = 0, mean_y = 0;
  std::vector<double> x, y;
  for (std::size_t part = 0; part < 10; ++part) {
    std::size_t from = n * part / 10, to = n * (part + 1) / 10;
    x.push_back((from + to - 1) / 2.0);
    y.push_back(median_of({begin + from, begin + to}));
    mean_x += x.back() / 10;
    mean_y += y.back() / 10;
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mean_x) * (y[i] - mean_y);
    sxx += (x[i] - mean_x) * (x[i] - mean_x);
  }
  figures.slope_us_per_1k = 1000 * sxy / sxx;
  figures.tenths_p50_us = y;
  return figures;
}

// The scenarios sum 0..n-1 through the coroutines, so a broken result cannot go unnoticed.
inline void check_sum(const char* scenario, long sum, long n) {
  if (sum != n * (n - 1) / 2) {
    std::fprintf(stderr, "ringloop_scenarios: %s: wrong sum %ld\n", scenario, sum);
    std::exit(1);
  }
}

inline ringloop::Coro<> sleep_an_hour() {
  using namespace std::chrono_literals;
  co_await ringloop::sleep(1h);
}

// Starts `count` tasks sleeping an hour and returns once each has submitted its timeout:
// create_task schedules them in order, so one yield of ours comes after all their first steps.
inline ringloop::Coro<std::vector<ringloop::Task<>>> start_hour_sleepers(long count) {
  using namespace std::chrono_literals;
  std::vector<ringloop::Task<>> tasks;
  tasks.reserve(static_cast<std::size_t>(count));
  for (long i = 0; i < count; ++i) tasks.push_back(ringloop::create_task(sleep_an_hour()));
  co_await ringloop::sleep(0s);
  co_return tasks;
}

// Cancels every task, then waits until each has ended (with CancelledError, by design).
inline ringloop::Coro<> cancel_and_wait(std::vector<ringloop::Task<>>& tasks) {
  for (ringloop::Task<>& task : tasks) task.cancel();
  co_await ringloop::gather(ringloop::return_exceptions, tasks);
}

}  // namespace ringloop_bench
