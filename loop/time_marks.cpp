#include <ringloop/loop/detail/time_marks.hpp>

#include <ringloop/loop/detail/env_flag.hpp>

#include <algorithm>
#include <fstream>
#include <string>

namespace ringloop::detail {
namespace {

// The rate is trusted once it spans 1 ms, and a pair is then reused for as long around it as
// the rate spans, up to 10 ms: a mark placed at the rate is off by its pair's error plus, at
// most, twice a pair's error (the rate's, over its span) times the reuse over the span.
constexpr std::int64_t kRateWindowNs = 1'000'000;
constexpr std::int64_t kMaxReuseNs = 10'000'000;
constexpr std::int64_t kMaxPairSpreadNs = 2'000;  // a pair whose reads straddle more: read again

// The TSC is used only where the kernel itself keeps CLOCK_MONOTONIC with it: then it has a
// constant rate and is in step across CPUs (the kernel leaves a TSC it finds otherwise).
bool kernel_keeps_time_with_tsc() {
#if defined(__x86_64__)
  std::ifstream file("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string source;
  return file >> source && source == "tsc";
#else
  return false;
#endif
}

}  // namespace

TimeMarks::TimeMarks() noexcept {
  static const bool tsc_ok = [] {
    try {
      return kernel_keeps_time_with_tsc();
    } catch (...) {
      return false;
    }
  }();
  tsc_ = tsc_ok && !env_flag("RINGLOOP_NO_TSC");
  if (tsc_) first_ = latest_ = read_pair();
}

TimeMarks::Pair TimeMarks::read_pair() noexcept {
  Pair pair;
#if defined(__x86_64__)
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::int64_t before = clock_ns();
    pair.tsc = static_cast<std::int64_t>(__builtin_ia32_rdtsc());
    std::int64_t after = clock_ns();
    pair.ns = before + (after - before) / 2;
    if (after - before <= kMaxPairSpreadNs) break;  // else the thread was interrupted
  }
#endif
  return pair;
}

std::int64_t TimeMarks::ns_at_from_fresh_pair(TimeMark mark) noexcept {
  Pair now = read_pair();
  // The mark lies between two pairs (the latest, or the first for one older than the latest):
  // placed between them, its error is theirs, however long ago it was taken.
  const Pair& before = mark.value >= latest_.tsc ? latest_ : first_;
  std::int64_t ns = now.ns;
  if (now.tsc > before.tsc) {
    double fraction =
        static_cast<double>(now.tsc - mark.value) / static_cast<double>(now.tsc - before.tsc);
    ns = now.ns - static_cast<std::int64_t>(fraction * static_cast<double>(now.ns - before.ns));
  }
  if (now.ns - first_.ns >= kRateWindowNs && now.tsc > first_.tsc) {
    ns_per_tick_ =
        static_cast<double>(now.ns - first_.ns) / static_cast<double>(now.tsc - first_.tsc);
    std::int64_t reuse_ns = std::min(now.ns - first_.ns, kMaxReuseNs);
    refresh_ticks_ = static_cast<std::int64_t>(static_cast<double>(reuse_ns) / ns_per_tick_);
  }
  latest_ = now;
  return std::clamp(ns, first_.ns, now.ns);
}

}  // namespace ringloop::detail
