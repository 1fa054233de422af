// (1) sequential bandwidth and (2) 4 KiB random latency, direct vs raw.
//
// Both sides run the same kernels on the same number of bytes. Bandwidth:
// each repetition runs both sides back to back and the order flips every
// repetition, so slow drift (another process, frequency) lands on both.
// Latency: the sides take turns op by op.
// Every page is touched once per side before anything is timed; the cost
// of that first pass (page faults) is measured by run_first_touch, on
// fresh mappings each time.
#include <sched.h>

#include <array>
#include <chrono>
#include <random>
#include <vector>

#include "mem_kernels.h"
#include "phases.h"

namespace dbench {
namespace {

using Clock = std::chrono::steady_clock;

volatile uint64_t g_sink;

void report_latency(const std::string& key, const char* side, Samples& samples) {
  report(key + "_median_ns", side, samples.median_ns());
  report(key + "_p99_ns", side, samples.p99_ns());
  report(key + "_mean_ns", side, samples.mean_ns());
}

double gib_per_s(size_t bytes, Clock::duration d) {
  return static_cast<double>(bytes) / static_cast<double>(1ull << 30) /
         std::chrono::duration<double>(d).count();
}

// Runs `pass` on both sides `reps` times (alternating which goes first) and
// reports the median GiB/s of each side under `key`.
template <typename Pass>
void bandwidth_row(const std::string& key, const std::array<Side, 2>& sides, size_t bytes,
                   int reps, Pass pass) {
  std::array<std::vector<double>, 2> rates;
  for (int rep = 0; rep < reps; ++rep) {
    for (int k = 0; k < 2; ++k) {
      const int s = rep % 2 == 0 ? k : 1 - k;
      auto t0 = Clock::now();
      pass(sides[s].base, rep);
      rates[s].push_back(gib_per_s(bytes, Clock::now() - t0));
    }
  }
  for (int s = 0; s < 2; ++s) {
    auto& r = rates[s];
    report(key, sides[s].name, median(r));
    note("%s %s: min %.2f max %.2f GiB/s over %d passes", key.c_str(), sides[s].name,
         *std::min_element(r.begin(), r.end()), *std::max_element(r.begin(), r.end()), reps);
  }
}

// Times one call of `op(block)` per random block, the two sides taking
// turns op by op (which side goes first alternates too), so whatever the
// machine does meanwhile lands on both alike: the distributions here are
// broad and bimodal (NT stores: modes near 290 and 500 ns), and their
// medians drift between runs by more than the 5% being judged. The sides
// walk the block list half a list apart, never the same block back to back
// (they may be the same bytes: a block one side just loaded is cached).
template <typename Op>
void latency_row(const std::string& key, const std::array<Side, 2>& sides,
                 const std::vector<uint32_t>& blocks, int reps, Op op) {
  std::array<Samples, 2> samples;
  for (auto& s : samples) s.reserve(blocks.size() * static_cast<size_t>(reps));
  const size_t n = blocks.size();
  for (int rep = 0; rep < reps; ++rep) {
    for (size_t i = 0; i < n; ++i) {
      for (int k = 0; k < 2; ++k) {
        const int s = (i + static_cast<size_t>(rep)) % 2 == 0 ? k : 1 - k;
        const uint32_t b = blocks[(i + static_cast<size_t>(s) * n / 2) % n];
        char* block = sides[s].base + static_cast<size_t>(b) * kBlock;
        uint64_t t0 = ticks_begin();
        op(block);
        samples[s].add(ticks_end() - t0);
      }
    }
  }
  for (int s = 0; s < 2; ++s) report_latency(key, sides[s].name, samples[s]);
}

// Pins the calling thread to the CPU it is on, for the duration: a
// migration in the middle of a pass costs both sides, but unequally.
class PinToCurrentCpu {
 public:
  PinToCurrentCpu() {
    sched_getaffinity(0, sizeof(saved_), &saved_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    sched_setaffinity(0, sizeof(one), &one);
  }
  ~PinToCurrentCpu() { sched_setaffinity(0, sizeof(saved_), &saved_); }
  PinToCurrentCpu(const PinToCurrentCpu&) = delete;
  PinToCurrentCpu& operator=(const PinToCurrentCpu&) = delete;

 private:
  cpu_set_t saved_;
};

}  // namespace

void run_data_path(const Config& config, Side a, Side b) {
  const size_t bytes = config.data_bytes;
  const std::array<Side, 2> sides{a, b};
  PinToCurrentCpu pin;

  // Timer overhead, for reading the latency rows: two back-to-back reads.
  Samples empty;
  for (int i = 0; i < 100000; ++i) {
    uint64_t t0 = ticks_begin();
    empty.add(ticks_end() - t0);
  }
  report("timer_overhead_ns", "both", empty.median_ns());

  // Fault every page in (timed on its own in run_first_touch).
  for (const Side& side : sides) {
    write_pass_plain(side.base, bytes, 0x1111);
    g_sink = read_pass(side.base, bytes);
  }

  bandwidth_row("seq_read_gibs", sides, bytes, config.bandwidth_reps,
                [&](char* base, int) { g_sink = read_pass(base, bytes); });
  bandwidth_row("seq_write_nt_gibs", sides, bytes, config.bandwidth_reps,
                [&](char* base, int rep) { write_pass_nt(base, bytes, 0x0101010101010101ull * rep); });
  bandwidth_row("seq_write_plain_gibs", sides, bytes, config.bandwidth_reps,
                [&](char* base, int rep) { write_pass_plain(base, bytes, 0x0202020202020202ull * rep); });

  const size_t pages = bytes / kBlock;
  std::mt19937_64 rng(config.seed);
  std::uniform_int_distribution<uint32_t> pick(0, static_cast<uint32_t>(pages - 1));
  std::vector<uint32_t> blocks(config.random_ops);
  for (auto& b : blocks) b = pick(rng);

  latency_row("rand4k_load", sides, blocks, config.random_reps,
              [](char* block) { g_sink = load_block(block); });
  latency_row("rand4k_store", sides, blocks, config.random_reps,
              [](char* block) { store_block_nt(block, 0x3333); });

  // Dependent 8-byte loads, one per random page: TLB walk plus cache miss,
  // nothing to overlap; the most sensitive row to how the range is mapped.
  // Hops alternate between the sides like the ops above; the second side
  // starts half the cycle further on, so it never follows the first one's
  // footsteps through the cache when both map the same bytes.
  std::array<uint64_t, 2> at{};
  for (int s = 0; s < 2; ++s) at[s] = build_chase(sides[s].base, pages, config.seed + 1);
  {
    Samples ignored;
    ignored.reserve(pages / 2);
    at[1] = run_chase(sides[1].base, at[1], pages / 2, &ignored);
  }
  std::array<Samples, 2> chase;
  for (auto& c : chase) c.reserve(config.random_ops * static_cast<size_t>(config.random_reps));
  for (int rep = 0; rep < config.random_reps; ++rep) {
    for (size_t i = 0; i < config.random_ops; ++i) {
      for (int k = 0; k < 2; ++k) {
        const int s = (i + static_cast<size_t>(rep)) % 2 == 0 ? k : 1 - k;
        at[s] = run_chase(sides[s].base, at[s], 1, &chase[s]);
      }
    }
  }
  for (int s = 0; s < 2; ++s) report_latency("chase", sides[s].name, chase[s]);
}

void run_first_touch(const Config& config, const std::array<MapFactory, 2>& sides) {
  const size_t bytes = config.data_bytes;
  PinToCurrentCpu pin;
  std::array<std::vector<double>, 2> rates;
  for (int rep = 0; rep < config.first_touch_reps; ++rep) {
    for (int k = 0; k < 2; ++k) {
      const int s = rep % 2 == 0 ? k : 1 - k;
      char* base = sides[s].map();
      auto t0 = Clock::now();
      write_pass_plain(base, bytes, 0x4444);
      rates[s].push_back(gib_per_s(bytes, Clock::now() - t0));
      sides[s].unmap(base);
    }
  }
  for (int s = 0; s < 2; ++s) report("first_touch_gibs", sides[s].name, median(rates[s]));
}

}  // namespace dbench
