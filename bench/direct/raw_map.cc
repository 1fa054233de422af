#include <sys/mman.h>

#include <algorithm>
#include <cstdint>

#include "phases.h"

namespace dbench {
namespace {
constexpr uint64_t kHugePage = 2ull << 20;
}

char* map_raw(int region_fd, const sealfs_extent* extents, size_t count, size_t length) {
  // Same shape as libsealfs's reservation: over-reserve, trim to 2 MiB.
  const size_t total = length + kHugePage;
  void* p = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (base + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > base) munmap(p, aligned - base);
  const uintptr_t end = base + total, want_end = aligned + length;
  if (end > want_end) munmap(reinterpret_cast<void*>(want_end), end - want_end);
  char* range = reinterpret_cast<char*>(aligned);
  uint64_t at = 0;
  for (size_t i = 0; i < count; ++i) {
    void* got = mmap(range + at, extents[i].length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                     region_fd, static_cast<off_t>(extents[i].region_offset));
    if (got == MAP_FAILED) {
      munmap(range, length);
      return nullptr;
    }
    at += extents[i].length;
  }
  madvise(range, length, MADV_DONTFORK);
  if (length >= kHugePage) madvise(range, length, MADV_HUGEPAGE);
  return range;
}

void unmap_raw(char* addr, size_t length) { munmap(addr, length); }

}  // namespace dbench
