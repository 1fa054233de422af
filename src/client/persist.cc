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
#include "util/cpu_flush.h"

namespace {

namespace cpu_flush = sealfs::cpu_flush;

// Writes the lines of [addr, +len) back; the caller fences.
void write_back_lines(cpu_flush::Instruction insn, const void* addr, size_t len) {
  sealfs::client::persist_stats().lines.fetch_add(cpu_flush::lines_covering(addr, len),
                                                  std::memory_order_relaxed);
  cpu_flush::write_back(insn, addr, len);
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

void flush_written_run(uintptr_t start, uintptr_t end, void* insn) {
  write_back_lines(*static_cast<const cpu_flush::Instruction*>(insn),
                   reinterpret_cast<const void*>(start), end - start);
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
void persist_lines(const struct sealfs_map* m, const struct sealfs_range* ranges, size_t count,
                   cpu_flush::Instruction insn) {
  auto& stats = sealfs::client::persist_stats();
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  std::unique_lock<std::mutex> scanning;  // m->persist_mu, from the first scan to the fence
  for (size_t i = 0; i < count; ++i) {
    if (ranges[i].len == 0) continue;
    if (m->tracks_writes && ranges[i].len >= kScanAtLeast) {
      if (!scanning.owns_lock()) scanning = std::unique_lock(m->persist_mu);
      const auto p = reinterpret_cast<uintptr_t>(ranges[i].addr);
      const uintptr_t start = p & ~(page - 1), end = (p + ranges[i].len + page - 1) & ~(page - 1);
      if (sealfs::client::for_each_written_run(start, end, flush_written_run, &insn) == 0) {
        stats.scanned.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      stats.fallbacks.fetch_add(1, std::memory_order_relaxed);
    }
    stats.whole.fetch_add(1, std::memory_order_relaxed);
    write_back_lines(insn, ranges[i].addr, ranges[i].len);
  }
  cpu_flush::store_fence();  // one for all of them
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
      // A CPU without a write-back instruction (not x86-64, or one hiding
      // clflush) persists the pages the page-granularity way instead.
      if (auto insn = sealfs::cpu_flush::best_instruction();
          insn != sealfs::cpu_flush::Instruction::kNone) {
        persist_lines(m, ranges, count, insn);
        return 0;
      }
      [[fallthrough]];
    default:
      for (size_t i = 0; i < count; ++i) {
        if (ranges[i].len == 0) continue;
        if (int r = msync_range(ranges[i].addr, ranges[i].len); r != 0) return r;
      }
      return 0;
  }
}
