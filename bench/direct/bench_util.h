// Shared pieces of direct_bench: the TSC timer, sample statistics, error
// exits and the "key side value" output the driver (run.sh) collects.
#pragma once

#include <x86intrin.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace dbench {

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "direct_bench: %s\n", what.c_str());
  std::exit(1);
}
[[noreturn]] inline void die_errno(const std::string& what) {
  die(what + ": " + std::strerror(errno));
}
// For libsealfs calls, which return -errno and keep a per-thread text.
[[noreturn]] void die_sealfs(const std::string& what, int r);

// Reads the time stamp counter so that the timed work can neither start
// before the first read nor finish after the second (lfence on both sides;
// rdtscp waits for earlier loads). Ticks become nanoseconds through a rate
// measured against CLOCK_MONOTONIC at start-up.
inline uint64_t ticks_begin() {
  _mm_lfence();
  uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}
inline uint64_t ticks_end() {
  unsigned aux;
  uint64_t t = __rdtscp(&aux);
  _mm_lfence();
  return t;
}
void calibrate_ticks();
double ns_per_tick();
inline double ticks_to_ns(uint64_t ticks) { return static_cast<double>(ticks) * ns_per_tick(); }

// Latency samples in ticks; percentiles in nanoseconds.
class Samples {
 public:
  void reserve(size_t n) { ticks_.reserve(n); }
  void add(uint64_t ticks) { ticks_.push_back(ticks); }
  size_t size() const { return ticks_.size(); }
  // p in [0, 100]; nearest-rank on the sorted samples.
  double percentile_ns(double p) {
    if (ticks_.empty()) return 0;
    if (!sorted_) {
      std::sort(ticks_.begin(), ticks_.end());
      sorted_ = true;
    }
    size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(ticks_.size()));
    return ticks_to_ns(ticks_[std::min(rank, ticks_.size() - 1)]);
  }
  double median_ns() { return percentile_ns(50); }
  double mean_ns() const {
    if (ticks_.empty()) return 0;
    long double sum = 0;
    for (uint64_t t : ticks_) sum += static_cast<long double>(t);
    return ticks_to_ns(1) * static_cast<double>(sum / static_cast<long double>(ticks_.size()));
  }
  double p99_ns() { return percentile_ns(99); }

 private:
  std::vector<uint64_t> ticks_;
  bool sorted_ = false;
};

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One result line for run.sh: "key side value".
inline void report(const std::string& key, const std::string& side, double value) {
  std::printf("%s %s %.6g\n", key.c_str(), side.c_str(), value);
  std::fflush(stdout);
}
// Context for the human reading stderr (extent counts, where the raw peer maps).
void note(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace dbench
