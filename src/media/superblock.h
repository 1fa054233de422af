// The superblock in memory: geometry, identity, state; decode with
// verification, encode, and the layout computation mkfs uses.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "media/region.h"
#include "sealfs/format.h"
#include "util/status.h"

namespace sealfs {

struct Geometry {
  uint64_t region_size = 0;       // bytes covered by the format
  uint64_t device_alignment = 0;  // bytes
  uint64_t region_blocks = 0;
  uint64_t journal_start = 0, journal_blocks = 0;
  uint64_t holder_start = 0, holder_blocks = 0;
  uint64_t inode_start = 0, inode_blocks = 0, inode_count = 0;
  uint64_t bitmap_start = 0, bitmap_blocks = 0;
  uint64_t data_start = 0, data_blocks = 0;
  uint64_t backup_block() const { return region_blocks - 1; }
};

struct LayoutRequest {
  uint64_t region_size = 0;       // bytes available
  uint64_t device_alignment = 4096;  // bytes, power of two >= 4096
  uint64_t inode_count = 0;       // 0 = one per 16 KiB of region, >= 64
  uint64_t journal_bytes = 0;     // 0 = default (16 MiB, less on tiny regions)
};

// Places the areas. kInvalid for nonsense (alignment not a power of two,
// inode count out of range), kNoSpace when the region is too small to hold
// the metadata plus a minimum data area (message says how much is needed).
Result<Geometry> compute_geometry(const LayoutRequest& request);

struct Superblock {
  Geometry geometry;
  uint32_t version = format::kFormatVersion;
  uint32_t feature_compat = 0, feature_ro_compat = 0, feature_incompat = 0;
  std::array<uint8_t, 16> uuid{};
  std::string label;  // at most 63 bytes
  uint64_t root_ino = format::kRootIno;
  uint64_t orphan_head = 0;
  uint64_t mount_count = 0;
  uint32_t state = format::kStateClean;
  uint64_t mkfs_time_ns = 0, last_mount_time_ns = 0, last_check_time_ns = 0;
  // The last mount's owner (format.h); empty strings and 0 when unknown.
  uint32_t mount_pid = 0;
  std::string mount_host;   // at most 63 bytes kept
  std::string mount_point;  // at most 127 bytes kept
  // "pid 123 on host h, mounted on /mnt/x at 2026-12-05 20:01:02 UTC", or "".
  std::string describe_last_mount() const;
};

// Verifies and decodes. Errors, in the order checked (tests assert them):
//   kCorruption "bad magic"; kUnsupportedFeature "format version N";
//   kBadCrc; kUnsupportedFeature "unknown incompat features 0x..";
//   kCorruption for any geometry that is inconsistent (block size, areas out
//   of order, overlapping or outside the region, region larger than
//   `available_size`, bitmap too small for the data area, zero inodes, ...).
// An unknown ro_compat feature is not an error here: see
// Superblock::needs_read_only().
Result<Superblock> decode_superblock(const format::DiskSuperblock& disk,
                                     uint64_t available_size);
format::DiskSuperblock encode_superblock(const Superblock& sb);
bool needs_read_only(const Superblock& sb);

// Reads the primary superblock; if it is bad, the backup in the last block of
// `available_size` (reported through used_backup). Returns the primary's
// error if both are bad.
Result<Superblock> read_superblock(const Region& region, bool* used_backup = nullptr);

uint64_t block_offset(uint64_t block);  // block * kBlockSize
// Byte offset in the region of inode `ino` (1-based: inode 1 is slot 0 of the
// inode table). The caller checks 1 <= ino <= inode_count.
uint64_t inode_offset(const Geometry& geometry, uint64_t ino);

}  // namespace sealfs
