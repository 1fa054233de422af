// Real sealfs images for the image fuzz target to mutate: formatted by the
// Formatter (what mkfs.sealfs runs) and populated through the meta layer, on
// a 1 MiB DRAM region so that one execution stays cheap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "media/superblock.h"

namespace sealfs::fuzz {

struct BaseImage {
  const char* name;
  std::vector<std::byte> bytes;
  Geometry geo;
  // Blocks that hold something (metadata areas, written data, the backup
  // superblock): where a mutation lands. Ascending.
  std::vector<uint64_t> blocks;
};

// Built once per process. In order:
//   0 "empty":     freshly formatted, never mounted
//   1 "populated": directories, files, a sparse file with an extent block,
//                  xattrs, symlinks, a hard link, a 100-entry directory of several blocks;
//                  cleanly unmounted
//   2 "crashed":   the populated image plus more changes, taken while still
//                  mounted: committed transactions wait in the journal, an
//                  unlinked open file is on the orphan list
const std::vector<BaseImage>& base_images();

}  // namespace sealfs::fuzz
