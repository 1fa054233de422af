// Mount-time cross-check of the block bitmap against everything that
// references data blocks (issue 8, item 5).
//
// The bitmap is what the allocator hands blocks out from, so a bit cleared
// by damage under a live file would give that file's blocks to the next
// writer. The check rebuilds, in DRAM, one bit per data block from the
// referents (file and directory extents, extent overflow blocks, xattr
// blocks, quarantined extents of the holder table) and compares it with the
// allocator's bitmap 64 blocks at a time:
//  - a referenced block whose bit is clear, or a block referenced twice
//    (cross-linked), is kCorruption naming the referent and the blocks;
//  - a set bit with no referent is a leak: counted, harmless for safety.
//
// Kept apart from the mount code so that a lazy mount can run it elsewhere.
// The referents are enumerated through a callback rather than collected, so
// the check costs one bit per data block plus a pass over the extent maps
// the mount has already decoded; the callback runs again only on failure,
// to name the other side of a cross-link.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "alloc/allocator.h"
#include "util/sparse_bits.h"
#include "util/status.h"

namespace sealfs {

// One thing that owns data blocks.
struct BlockReferent {
  enum class Kind { kExtent, kExtentBlock, kXattrBlock, kQuarantine };
  Kind kind = Kind::kExtent;
  uint64_t ino = 0;  // owning inode; for a quarantine, the file it came from
  uint32_t holder_pid = 0;  // kQuarantine only
  BlockExtent blocks;
  std::string describe() const;
};

// Calls `emit` once per referent.
using BlockReferentSource =
    std::function<void(const std::function<void(const BlockReferent&)>& emit)>;

struct BlockCheckCounts {
  uint64_t referenced_blocks = 0;
  uint64_t leaked_blocks = 0;  // set in the bitmap, referenced by nothing
};

// `allocated`: the allocator's bitmap, bit i <=> block data_start + i.
Result<BlockCheckCounts> cross_check_block_bitmap(uint64_t data_start, uint64_t data_blocks,
                                                  const SparseBits& allocated,
                                                  const BlockReferentSource& referents);

}  // namespace sealfs
