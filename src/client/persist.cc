// sealfs_persist: make stores durable with the granularity the daemon reported.
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

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

void flush_lines(const void* addr, size_t len) {
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
  asm volatile("sfence" ::: "memory");
#else
  (void)addr;
  (void)len;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

}  // namespace

extern "C" int sealfs_persist(const struct sealfs_map* m, const void* addr, size_t len) {
  using sealfs::client::fail;
  if (m == nullptr) return fail(EINVAL, "map is NULL");
  const auto base = reinterpret_cast<uintptr_t>(m->addr);
  const auto p = reinterpret_cast<uintptr_t>(addr);
  if (p < base || len > m->length || p - base > m->length - len) {
    return fail(EINVAL, "range is outside the mapping");
  }
  if (len == 0) return 0;
  switch (m->granularity) {
    case sealfs::wire::kGranularityByte:
      __atomic_thread_fence(__ATOMIC_SEQ_CST);  // eADR: caches are persistent
      asm volatile("" ::: "memory");
      return 0;
    case sealfs::wire::kGranularityCacheLine:
      flush_lines(addr, len);
      return 0;
    default: {
      const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
      const uintptr_t start = p & ~(page - 1);
      if (msync(reinterpret_cast<void*>(start), p + len - start, MS_SYNC) != 0) {
        return fail(errno, "msync failed");
      }
      return 0;
    }
  }
}
