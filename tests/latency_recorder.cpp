// LatencyRecorder: percentiles within the stated relative error of the exact nearest-rank
// answer, exact min/max/mean/count, merge equal to recording both, coordinated-omission
// correction, reset.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <ringloop/coro/time/latency_recorder.hpp>

using ringloop::LatencyRecorder;
using std::chrono::nanoseconds;

namespace {

// Nearest rank, as bench/scenario_util.hpp computes it: element ceil(q*n/100)-1, sorted.
std::int64_t exact_percentile(std::vector<std::int64_t> sorted, double q) {
  std::sort(sorted.begin(), sorted.end());
  // The nudge: 99.9 is not exact in binary, and must not round a whole rank up.
  auto rank =
      static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size()) / 100.0 - 1e-6));
  return sorted[rank == 0 ? 0 : rank - 1];
}

void check_percentiles(const LatencyRecorder& recorder, const std::vector<std::int64_t>& values) {
  for (double q : {1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99}) {
    auto exact = static_cast<double>(exact_percentile(values, q));
    auto approx = static_cast<double>(recorder.percentile(q).count());
    INFO("q = " << q << ", exact " << exact << " ns, recorded " << approx << " ns");
    CHECK(std::abs(approx - exact) <= exact * LatencyRecorder::kMaxRelativeError);
  }
}

template <class Distribution>
std::vector<std::int64_t> draw(Distribution distribution, std::size_t count, unsigned seed) {
  std::mt19937_64 random(seed);
  std::vector<std::int64_t> values(count);
  for (auto& value : values)
    value = std::max<std::int64_t>(0, static_cast<std::int64_t>(distribution(random)));
  return values;
}

}  // namespace

TEST_CASE("recorder percentiles are within 0.1% of the exact nearest-rank ones", "[latency]") {
  std::vector<std::vector<std::int64_t>> data_sets = {
      draw(std::uniform_int_distribution<std::int64_t>(0, 5'000), 20'000, 1),
      draw(std::uniform_int_distribution<std::int64_t>(0, 3'000'000'000), 20'000, 2),
      // Latency-shaped: a log-normal body around 70 us with a long tail up to seconds.
      draw(std::lognormal_distribution<double>(11.2, 1.3), 50'000, 3),
      draw(std::exponential_distribution<double>(1e-6), 30'000, 4),
      {0, 1, 2, 2047, 2048, 2049, 4095, 4096, 1'000'000'007},
  };
  for (const auto& values : data_sets) {
    LatencyRecorder recorder;
    for (std::int64_t value : values) recorder.record(nanoseconds(value));
    check_percentiles(recorder, values);
    CHECK(recorder.count() == values.size());
    CHECK(recorder.min().count() == *std::min_element(values.begin(), values.end()));
    CHECK(recorder.max().count() == *std::max_element(values.begin(), values.end()));
    double sum = 0;
    for (std::int64_t value : values) sum += static_cast<double>(value);
    CHECK(recorder.mean().count() == Approx(sum / static_cast<double>(values.size())));
    CHECK(recorder.percentile(0) == recorder.min());
    CHECK(recorder.percentile(100) == recorder.max());
  }
}

TEST_CASE("recorder values below 2048 ns are exact", "[latency]") {
  LatencyRecorder recorder;
  for (int i = 1; i <= 2000; ++i) recorder.record(nanoseconds(i));
  CHECK(recorder.percentile(50).count() == 1000);
  CHECK(recorder.percentile(99).count() == 1980);  // nearest rank: ceil(0.99 * 2000)
  CHECK(recorder.percentile(99.9).count() == 1998);
}

TEST_CASE("merging recorders equals recording both streams into one", "[latency]") {
  auto first = draw(std::lognormal_distribution<double>(11.0, 1.0), 10'000, 5);
  auto second = draw(std::lognormal_distribution<double>(13.0, 0.5), 7'000, 6);
  LatencyRecorder a, b, both;
  for (std::int64_t value : first) {
    a.record(nanoseconds(value));
    both.record(nanoseconds(value));
  }
  for (std::int64_t value : second) {
    b.record(nanoseconds(value));
    both.record(nanoseconds(value));
  }
  a.merge(b);
  CHECK(a.count() == both.count());
  CHECK(a.min() == both.min());
  CHECK(a.max() == both.max());
  CHECK(a.mean().count() == Approx(both.mean().count()));
  for (double q : {0.0, 5.0, 50.0, 90.0, 99.0, 99.9, 100.0})
    CHECK(a.percentile(q) == both.percentile(q));
  auto all = first;
  all.insert(all.end(), second.begin(), second.end());
  check_percentiles(a, all);
}

TEST_CASE("record_corrected fills in the samples a stalled closed loop missed", "[latency]") {
  LatencyRecorder recorder;
  // One request every 1 ms; one of them took 10 ms: the nine that should have been sent meanwhile
  // would have waited 9, 8, ..., 1 ms.
  for (int i = 0; i < 90; ++i)
    recorder.record_corrected(nanoseconds(100'000), nanoseconds(1'000'000));
  recorder.record_corrected(nanoseconds(10'000'000), nanoseconds(1'000'000));
  CHECK(recorder.count() == 100);
  CHECK(recorder.max().count() == 10'000'000);
  CHECK(recorder.percentile(91).count() == Approx(1'000'000).epsilon(0.001));
  CHECK(recorder.percentile(99).count() == Approx(9'000'000).epsilon(0.001));
  // A latency below the interval adds nothing; an interval of 0 turns correction off.
  LatencyRecorder plain;
  plain.record_corrected(nanoseconds(500), nanoseconds(1'000));
  plain.record_corrected(nanoseconds(5'000), nanoseconds(0));
  CHECK(plain.count() == 2);
}

TEST_CASE("an empty or reset recorder reports zeros; out-of-range values are clamped",
          "[latency]") {
  LatencyRecorder recorder;
  CHECK(recorder.count() == 0);
  CHECK(recorder.percentile(99).count() == 0);
  CHECK(recorder.min().count() == 0);
  CHECK(recorder.mean().count() == 0);
  recorder.record(nanoseconds(-5));
  recorder.record(std::chrono::hours(1'000));
  CHECK(recorder.min().count() == 0);
  CHECK(recorder.max().count() == LatencyRecorder::kMaxTrackableNs);
  recorder.reset();
  CHECK(recorder.count() == 0);
  CHECK(recorder.max().count() == 0);
  recorder.record(nanoseconds(123'456));
  CHECK(recorder.percentile(50).count() == 123'456);  // clamped to [min, max]: exact
}
