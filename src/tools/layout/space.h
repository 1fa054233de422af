// The region's space as free, map and their tests need it: free extents and
// quarantined extents (wire::SpaceRecord), from the daemon or an image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "wire/wire.h"
#include "util/status.h"

namespace sealfs::layout {

inline constexpr uint64_t kHugeRun = 2ull << 20;

struct Space {
  bool from_daemon = false;
  uint64_t block_size = 4096;
  uint64_t data_start = 0, data_length = 0;  // bytes
  std::vector<wire::SpaceRecord> pieces;     // free by offset, then quarantined
};

// REGION or MOUNTPOINT (resolve_target).
Result<Space> load_space(const std::string& path);

// Whole 2 MiB-aligned runs inside [offset, +length).
inline uint64_t aligned_runs(uint64_t offset, uint64_t length) {
  const uint64_t first = (offset + kHugeRun - 1) / kHugeRun * kHugeRun;
  const uint64_t end = (offset + length) / kHugeRun * kHugeRun;
  return end > first ? (end - first) / kHugeRun : 0;
}

}  // namespace sealfs::layout
