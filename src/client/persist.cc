// sealfs_persist: make stores durable with the granularity the daemon reported.
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "client/client_internal.h"

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

// Writes the lines of [addr, +len) back; the caller fences.
void write_back_lines(const void* addr, size_t len) {
#if defined(__x86_64__)
  static const FlushKind kind = detect_flush();
  constexpr uintptr_t kLine = 64;
  uintptr_t p = reinterpret_cast<uintptr_t>(addr) & ~(kLine - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(addr) + len;
  for (; p < end; p += kLine) {
    char* line = reinterpret_cast<char*>(p);
    switch (kind) {
      case FlushKind::kClwb: asm volatile("clwb %0" : "+m"(*line)); break;
      case FlushKind::kClflushopt: asm volatile("clflushopt %0" : "+m"(*line)); break;
      default: asm volatile("clflush %0" : "+m"(*line)); break;
    }
  }
#else
  (void)addr;
  (void)len;
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

}  // namespace

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
      for (size_t i = 0; i < count; ++i) write_back_lines(ranges[i].addr, ranges[i].len);
      fence();  // one for all of them
      return 0;
    default:
      for (size_t i = 0; i < count; ++i) {
        if (ranges[i].len == 0) continue;
        if (int r = msync_range(ranges[i].addr, ranges[i].len); r != 0) return r;
      }
      return 0;
  }
}
