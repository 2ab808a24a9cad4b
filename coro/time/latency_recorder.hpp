// LatencyRecorder: a histogram of latencies for benchmark harnesses, in the style of
// HdrHistogram: log-linear buckets with 11 bits of precision (values below 2,048 ns are exact;
// above, a bucket is at most 1/1024 of its value wide), so every percentile is within 0.1% of
// the exact nearest-rank answer, whatever the distribution, in fixed memory and O(1) per record.
// record_corrected fills in the samples a stalled closed-loop client failed to take
// (coordinated omission). Recorders merge exactly: merging equals recording both streams.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <ringloop/loop/assert.hpp>

namespace ringloop {

class LatencyRecorder {
 public:
  using Duration = std::chrono::nanoseconds;

  // A bucket is 1/2^(kPrecisionBits - 1) of its value wide at most: 0.1%, 3 significant digits.
  static constexpr unsigned kPrecisionBits = 11;
  // Latencies above ~73 minutes count as 2^42 ns: a harness has failed well before that.
  static constexpr std::int64_t kMaxTrackableNs = (std::int64_t{1} << 42) - 1;
  static constexpr double kMaxRelativeError = 1.0 / (1u << (kPrecisionBits - 1));

  LatencyRecorder() : counts_(bucket_of(kMaxTrackableNs) + 1, 0) {}

  // Negative latencies count as 0; those above kMaxTrackableNs as kMaxTrackableNs.
  void record(Duration latency) noexcept { record_n(clamp_ns(latency.count()), 1); }

  // Records latency, then, as HdrHistogram's recordValueWithExpectedInterval does, the
  // latencies the requests that should have been sent every expected_interval during this
  // stall would have seen: latency - interval, latency - 2 * interval, ... down to interval.
  // For a closed-loop client that waits for each reply before its next request.
  void record_corrected(Duration latency, Duration expected_interval) noexcept {
    std::int64_t value_ns = clamp_ns(latency.count());
    record_n(value_ns, 1);
    std::int64_t interval_ns = expected_interval.count();
    if (interval_ns <= 0) return;
    for (std::int64_t missed_ns = value_ns - interval_ns; missed_ns >= interval_ns;
         missed_ns -= interval_ns)
      record_n(missed_ns, 1);
  }

  // Nearest rank, as bench/ computes exact percentiles: the value of rank ceil(q/100 * count)
  // in sorted order, within kMaxRelativeError. q in [0, 100]; 0 gives min(), 100 max().
  // An empty recorder gives 0.
  Duration percentile(double q) const noexcept {
    if (count_ == 0) return Duration{0};
    if (q <= 0) return min();
    if (q >= 100) return max();
    // q * count first: exact for a whole q, so 99 of 2,000 is rank 1,980, not 1,981; the
    // relative nudge keeps 99.9 (not exact in binary) from rounding up a whole rank.
    double wanted = q * static_cast<double>(count_) / 100.0 * (1 - 1e-12);
    auto rank = static_cast<std::uint64_t>(wanted);
    if (static_cast<double>(rank) < wanted) ++rank;  // ceil
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t bucket = 0; bucket < counts_.size(); ++bucket) {
      seen += counts_[bucket];
      if (seen >= rank) return Duration{std::clamp(middle_of(bucket), min_ns_, max_ns_)};
    }
    RINGLOOP_ASSERT(false, "the bucket counts do not add up to count()");
    return max();
  }

  // Exact: these are tracked beside the buckets.
  Duration min() const noexcept { return Duration{count_ == 0 ? 0 : min_ns_}; }
  Duration max() const noexcept { return Duration{max_ns_}; }
  std::chrono::duration<double, std::nano> mean() const noexcept {
    return std::chrono::duration<double, std::nano>(
        count_ == 0 ? 0.0 : sum_ns_ / static_cast<double>(count_));
  }
  std::uint64_t count() const noexcept { return count_; }

  // Adds every sample of other, as if it had been recorded here.
  void merge(const LatencyRecorder& other) noexcept {
    RINGLOOP_ASSERT(other.counts_.size() == counts_.size(), "recorders of different layouts");
    if (other.count_ == 0) return;
    for (std::size_t bucket = 0; bucket < counts_.size(); ++bucket)
      counts_[bucket] += other.counts_[bucket];
    min_ns_ = std::min(min_ns_, other.min_ns_);
    max_ns_ = std::max(max_ns_, other.max_ns_);
    count_ += other.count_;
    sum_ns_ += other.sum_ns_;
  }

  void reset() noexcept {
    std::fill(counts_.begin(), counts_.end(), 0);
    min_ns_ = std::numeric_limits<std::int64_t>::max();
    max_ns_ = 0;
    count_ = 0;
    sum_ns_ = 0;
  }

 private:
  static constexpr std::int64_t kSubBuckets = std::int64_t{1} << kPrecisionBits;
  static constexpr std::int64_t kHalfSubBuckets = kSubBuckets / 2;

  static std::int64_t clamp_ns(std::int64_t ns) noexcept {
    return std::clamp<std::int64_t>(ns, 0, kMaxTrackableNs);
  }

  // Values below kSubBuckets have a bucket each. Above, a value with b significant bits is
  // shifted right by e = b - kPrecisionBits, keeping its top kPrecisionBits bits, in
  // [kHalfSubBuckets, kSubBuckets): each doubling of the value adds kHalfSubBuckets buckets.
  static std::size_t bucket_of(std::int64_t ns) noexcept {
    auto value = static_cast<std::uint64_t>(ns);
    int bits = static_cast<int>(std::bit_width(value));
    int shift =
        bits > static_cast<int>(kPrecisionBits) ? bits - static_cast<int>(kPrecisionBits) : 0;
    return static_cast<std::size_t>(shift * kHalfSubBuckets +
                                    static_cast<std::int64_t>(value >> shift));
  }

  // The middle of a bucket's range [low, low + 2^shift): within half a bucket of any value in it.
  static std::int64_t middle_of(std::size_t bucket) noexcept {
    auto index = static_cast<std::int64_t>(bucket);
    if (index < kSubBuckets) return index;
    std::int64_t shift = index / kHalfSubBuckets - 1;
    std::int64_t top = index - shift * kHalfSubBuckets;  // in [kHalfSubBuckets, kSubBuckets)
    std::int64_t low = top << shift;
    return low + ((std::int64_t{1} << shift) - 1) / 2;
  }

  void record_n(std::int64_t ns, std::uint64_t n) noexcept {
    counts_[bucket_of(ns)] += n;
    min_ns_ = std::min(min_ns_, ns);
    max_ns_ = std::max(max_ns_, ns);
    count_ += n;
    sum_ns_ += static_cast<double>(ns) * static_cast<double>(n);
  }

  std::vector<std::uint64_t> counts_;
  std::int64_t min_ns_ = std::numeric_limits<std::int64_t>::max();
  std::int64_t max_ns_ = 0;
  std::uint64_t count_ = 0;
  double sum_ns_ = 0;
};

}  // namespace ringloop
