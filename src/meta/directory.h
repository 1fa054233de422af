// Directory blocks (ext2-style entries tiling each block after a header) and
// the DRAM hash index (name -> entry location) built on first access.
//
// Readdir cookies: entry at byte `offset` of directory block `index` has
// cookie ((index << 12) | offset) + 3; 1 is ".", 2 is "..". Removing an entry
// folds its space into the previous entry of the block (or frees it in place
// when it is the first), so surviving entries never move and their cookies
// stay valid; readdir resumes at the first entry whose cookie is >= the one
// given. Empty blocks are kept (a directory never shrinks): simple, and
// cookies of a directory under concurrent removal never go backwards.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sealfs/format.h"
#include "util/status.h"

namespace sealfs {

struct DirLocation {
  uint64_t ino = 0;
  uint8_t type = 0;        // DT_*
  uint32_t block_index = 0;  // directory (file) block
  uint16_t offset = 0;       // byte offset inside the block
};

class DirIndex {
 public:
  std::unordered_map<std::string, DirLocation> by_name;
  // Per directory block: the largest entry that could be inserted.
  std::vector<uint16_t> largest_free;

  const DirLocation* find(std::string_view name) const {
    auto it = by_name.find(std::string(name));
    return it == by_name.end() ? nullptr : &it->second;
  }
};

inline uint64_t dir_cookie(uint32_t block_index, uint16_t offset) {
  return ((static_cast<uint64_t>(block_index) << format::kBlockShift) | offset) + 3;
}

// An empty directory block owned by `owner`.
void dir_block_init(std::byte* block, uint64_t owner);
void dir_block_seal(std::byte* block);  // recomputes the crc
// Verifies magic, crc, owner and that entries tile the block.
Status dir_block_verify(const std::byte* block, uint64_t owner);

struct DirBlockEntry {
  uint16_t offset;
  uint64_t ino;
  uint8_t type;
  std::string_view name;
};
// Calls fn for each used entry (block must be verified).
void dir_block_for_each(const std::byte* block,
                        const std::function<void(const DirBlockEntry&)>& fn);
// Inserts; returns the entry's offset, or nullopt when the block is full.
std::optional<uint16_t> dir_block_insert(std::byte* block, std::string_view name, uint64_t ino,
                                         uint8_t type);
void dir_block_remove(std::byte* block, uint16_t offset);
// Rewrites the inode number and type of the entry at `offset`.
void dir_block_retarget(std::byte* block, uint16_t offset, uint64_t ino, uint8_t type);
uint16_t dir_block_largest_free(const std::byte* block);

}  // namespace sealfs
