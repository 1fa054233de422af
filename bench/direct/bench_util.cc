#include "bench_util.h"

#include <sealfs/sealfs.h>

#include <chrono>
#include <cstdarg>
#include <thread>

namespace dbench {
namespace {
double g_ns_per_tick = 0;
}

void die_sealfs(const std::string& what, int r) {
  die(what + ": " + std::strerror(-r) + " (" + sealfs_last_error() + ")");
}

void calibrate_ticks() {
  using Clock = std::chrono::steady_clock;
  // Best of three 50 ms windows: a preemption inside one only makes it longer.
  double best = 0;
  for (int i = 0; i < 3; ++i) {
    auto w0 = Clock::now();
    uint64_t t0 = ticks_begin();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    uint64_t t1 = ticks_end();
    auto w1 = Clock::now();
    double ns = std::chrono::duration<double, std::nano>(w1 - w0).count();
    double rate = ns / static_cast<double>(t1 - t0);
    if (best == 0 || rate < best) best = rate;
  }
  g_ns_per_tick = best;
}

double ns_per_tick() { return g_ns_per_tick; }

void note(const char* fmt, ...) {
  std::va_list args;
  va_start(args, fmt);
  std::fputs("# ", stderr);
  std::vfprintf(stderr, fmt, args);
  std::fputc('\n', stderr);
  va_end(args);
}

}  // namespace dbench
