// Formatter: writes a new, empty sealfs into a region (mkfs, tests).
//
// Zeroes and persists every metadata area (a devdax device holds old bytes),
// writes an empty journal, an all-free bitmap, an empty holder table, the root
// directory inode (an empty directory without blocks: "." and ".." are
// synthesised), the superblock and its backup in the last block. The primary
// superblock is written last, so a format interrupted by power loss leaves no
// valid sealfs behind.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "media/region.h"
#include "media/superblock.h"
#include "util/status.h"

namespace sealfs {

struct FormatOptions {
  LayoutRequest layout;           // region_size 0 = the whole region
  std::string label;              // at most 63 bytes (kInvalid otherwise)
  std::array<uint8_t, 16> uuid{}; // all zero = random
  uint64_t now_ns = 0;            // 0 = current time
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
  uint32_t root_mode = 0755;      // permission bits of the root directory
  // The caller guarantees that the inode table and bitmap already read as
  // zero (a sparse file just created, or holes just punched there), so they
  // are not scanned and zeroed: on a 16 GiB file that is a 256 MiB table.
  bool metadata_zeroed = false;
  // Small regular files keep their bytes in the inode slot
  // (format::kFeatureIncompatInlineData). Off: one block per non-empty
  // file, readable by daemons that predate inline data.
  bool inline_data = true;
};

class Formatter {
 public:
  // The layout actually written (also what mkfs -n prints).
  static Result<Superblock> plan(const Region& region, const FormatOptions& options);
  static Result<Superblock> format(Region& region, const FormatOptions& options);
};

}  // namespace sealfs
