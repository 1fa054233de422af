#include <sys/mman.h>

#include <algorithm>
#include <cstdint>

#include "phases.h"

namespace dbench {
namespace {
constexpr uint64_t kHugePage = 2ull << 20;
}

bool on_2m_boundary(const void* addr) { return reinterpret_cast<uintptr_t>(addr) % kHugePage == 0; }

char* map_raw(int region_fd, const sealfs_extent* extents, size_t count, size_t length,
              bool align_2m) {
  // Same shape as libsealfs's reservation: over-reserve, trim to 2 MiB.
  const size_t align = align_2m ? kHugePage : 0;
  const size_t total = length + align;
  void* p = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  auto base = reinterpret_cast<uintptr_t>(p);
  if (align != 0) {
    const uintptr_t aligned = (base + align - 1) & ~(align - 1);
    if (aligned > base) munmap(p, aligned - base);
    const uintptr_t end = base + total, want_end = aligned + length;
    if (end > want_end) munmap(reinterpret_cast<void*>(want_end), end - want_end);
    base = aligned;
  }
  char* range = reinterpret_cast<char*>(base);
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
