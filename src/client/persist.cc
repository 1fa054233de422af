// sealfs_persist: make stores durable with the granularity the daemon reported.
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "client/client_internal.h"
#include "client/persist_stats.h"
#include "client/write_tracking.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace {

enum class FlushKind { kClwb, kClflushopt, kClflush, kNone };

FlushKind detect_flush() {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    if (b & (1u << 24)) return FlushKind::kClwb;
    if (b & (1u << 23)) return FlushKind::kClflushopt;
  }
  return FlushKind::kClflush;
#else
  return FlushKind::kNone;
#endif
}

constexpr uintptr_t kLine = 64;

// Writes the lines of [addr, +len) back; the caller fences.
void write_back_lines(const void* addr, size_t len) {
  uintptr_t p = reinterpret_cast<uintptr_t>(addr) & ~(kLine - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(addr) + len;
  sealfs::client::persist_stats().lines.fetch_add((end - p + kLine - 1) / kLine,
                                                  std::memory_order_relaxed);
#if defined(__x86_64__)
  static const FlushKind kind = detect_flush();
  for (; p < end; p += kLine) {
    char* line = reinterpret_cast<char*>(p);
    switch (kind) {
      case FlushKind::kClwb: asm volatile("clwb %0" : "+m"(*line)); break;
      case FlushKind::kClflushopt: asm volatile("clflushopt %0" : "+m"(*line)); break;
      default: asm volatile("clflush %0" : "+m"(*line)); break;
    }
  }
#else
  (void)p;
#endif
}

void fence() {
#if defined(__x86_64__)
  asm volatile("sfence" ::: "memory");
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

bool inside(const struct sealfs_map* m, const void* addr, size_t len) {
  const auto base = reinterpret_cast<uintptr_t>(m->addr);
  const auto p = reinterpret_cast<uintptr_t>(addr);
  return p >= base && len <= m->length && p - base <= m->length - len;
}

int msync_range(const void* addr, size_t len) {
  const auto p = reinterpret_cast<uintptr_t>(addr);
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t start = p & ~(page - 1);
  if (msync(reinterpret_cast<void*>(start), p + len - start, MS_SYNC) != 0) {
    return sealfs::client::fail(errno, "msync failed");
  }
  return 0;
}

std::atomic<sealfs::client::WrittenRunObserver> g_observer{nullptr};

void flush_written_run(uintptr_t start, uintptr_t end, void*) {
  write_back_lines(reinterpret_cast<const void*>(start), end - start);
  if (auto observe = g_observer.load(std::memory_order_acquire)) {
    observe(reinterpret_cast<const void*>(start), end - start);
  }
}

// Below this a range is flushed line by line without asking the kernel:
// the scan's system call costs more than the flushes. Its pages stay
// "written" and are flushed again by the next scan that covers them.
constexpr size_t kScanAtLeast = 64 * 1024;

// Cache-line granularity: the lines of every range written back, then one
// fence. A large range of a map whose writes are tracked is flushed by the
// pages written since it was last scanned (docs/protocol.md "Persisting
// only what was written" says why no store is missed). Whole pages, even
// where a range starts or ends inside one: the scan write-protects whole
// pages, so a store beside the range would be forgotten otherwise.
void persist_lines(const struct sealfs_map* m, const struct sealfs_range* ranges, size_t count) {
  auto& stats = sealfs::client::persist_stats();
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  std::unique_lock<std::mutex> scanning;  // m->persist_mu, from the first scan to the fence
  for (size_t i = 0; i < count; ++i) {
    if (ranges[i].len == 0) continue;
    if (m->tracks_writes && ranges[i].len >= kScanAtLeast) {
      if (!scanning.owns_lock()) scanning = std::unique_lock(m->persist_mu);
      const auto p = reinterpret_cast<uintptr_t>(ranges[i].addr);
      const uintptr_t start = p & ~(page - 1), end = (p + ranges[i].len + page - 1) & ~(page - 1);
      if (sealfs::client::for_each_written_run(start, end, flush_written_run, nullptr) == 0) {
        stats.scanned.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      stats.fallbacks.fetch_add(1, std::memory_order_relaxed);
    }
    stats.whole.fetch_add(1, std::memory_order_relaxed);
    write_back_lines(ranges[i].addr, ranges[i].len);
  }
  fence();  // one for all of them
}

}  // namespace

namespace sealfs::client {

PersistStats& persist_stats() {
  static PersistStats stats;
  return stats;
}

void set_written_run_observer(WrittenRunObserver observer) {
  g_observer.store(observer, std::memory_order_release);
}

}  // namespace sealfs::client

extern "C" int sealfs_persist(const struct sealfs_map* m, const void* addr, size_t len) {
  const struct sealfs_range range{addr, len};
  return sealfs_persist_ranges(m, &range, 1);
}

extern "C" int sealfs_persist_ranges(const struct sealfs_map* m, const struct sealfs_range* ranges,
                                     size_t count) {
  using sealfs::client::fail;
  if (m == nullptr) return fail(EINVAL, "map is NULL");
  if (ranges == nullptr && count > 0) return fail(EINVAL, "ranges is NULL");
  for (size_t i = 0; i < count; ++i) {
    if (!inside(m, ranges[i].addr, ranges[i].len)) {
      return fail(EINVAL, "range " + std::to_string(i) + " is outside the mapping");
    }
  }
  switch (m->granularity) {
    case sealfs::wire::kGranularityByte:
      __atomic_thread_fence(__ATOMIC_SEQ_CST);  // eADR: caches are persistent
      asm volatile("" ::: "memory");
      return 0;
    case sealfs::wire::kGranularityCacheLine:
      persist_lines(m, ranges, count);
      return 0;
    default:
      for (size_t i = 0; i < count; ++i) {
        if (ranges[i].len == 0) continue;
        if (int r = msync_range(ranges[i].addr, ranges[i].len); r != 0) return r;
      }
      return 0;
  }
}
