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
#include <vector>

#include "sealfs/format.h"
#include "util/status.h"

namespace sealfs {

struct DirLocation {
  uint64_t ino = 0;
  uint32_t block_index = 0;  // directory (file) block
  uint16_t offset = 0;       // byte offset inside the block
  uint8_t type = 0;          // DT_*
};

// A directory's names -> entry locations in DRAM, built on first use of the
// directory (FilesystemImpl::ensure_dir_index). Issue 12 counts it in the
// DRAM per cached inode: a name costs its 16-byte entry, its bytes plus
// one, and 8 bytes of hash bucket at a load just under 3/4 after a build
// (a std::unordered_map<std::string, DirLocation> node was 96 bytes with
// malloc's header, and its bucket 8 more).
//
// Entries sit in one array in the order added, each a DirLocation packed
// into 16 bytes (an inode number fits 32 bits, format::kMaxInodeCount; an
// offset in a block 12 bits and a DT_* type 4), names in one byte string
// (a length byte, then the bytes), and the buckets are open addressed with
// linear probing, each holding an entry's number and its name's hash (a
// probe compares names only on equal hashes). An erased entry leaves a
// tombstone until the next rebuild, which also drops its name's bytes;
// erase() rebuilds once erased entries outnumber live ones.
class DirIndex {
 public:
  // The location of `name`, if present.
  std::optional<DirLocation> find(std::string_view name) const;
  // Adds `name` at `loc`, or moves it there when present.
  void set(std::string_view name, const DirLocation& loc);
  // Adds `name` at `loc` unless present (true if added).
  bool add(std::string_view name, const DirLocation& loc);
  bool erase(std::string_view name);
  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }
  // Gives back what a build by add() left unused: the arrays' growth slack
  // and buckets beyond a load of 3/4.
  void shrink_to_fit();
  // Makes room for `names` names of `name_bytes` bytes in all, so that
  // adding them allocates nothing more and leaves no slack (a build from
  // the directory's blocks, which counts them first). Only on an empty index.
  void reserve(size_t names, size_t name_bytes);

  // Per directory block: the largest entry that could be inserted.
  std::vector<uint16_t> largest_free;

 private:
  struct Entry {
    uint32_t ino = 0;
    uint32_t block_index = 0;
    // In names_: the length byte, bits 0-31 here and 32-47 in name_at_high
    // (a directory's names fit its blocks: 2^32 blocks of 4 KiB, under
    // 2^48 bytes); kErased when erased.
    uint32_t name_at_low = 0;
    uint16_t name_at_high = 0;
    uint16_t offset_and_type = 0;  // offset << 4 | type
  };
  static_assert(sizeof(Entry) == 16, "a name's DRAM cost (issue 12) changed");
  struct Bucket {
    uint32_t entry = kEmpty;  // number in entries_, or kEmpty / kTombstone
    uint32_t hash = 0;
  };
  static constexpr uint32_t kEmpty = UINT32_MAX;
  static constexpr uint32_t kTombstone = UINT32_MAX - 1;
  static constexpr uint64_t kErased = (uint64_t{1} << 48) - 1;

  static Entry make_entry(const DirLocation& loc, uint64_t name_at);
  static DirLocation location_of(const Entry& e);
  static uint64_t name_at(const Entry& e) {
    return uint64_t{e.name_at_low} | uint64_t{e.name_at_high} << 32;
  }
  static void set_name_at(Entry& e, uint64_t at) {
    e.name_at_low = static_cast<uint32_t>(at);
    e.name_at_high = static_cast<uint16_t>(at >> 32);
  }

  static uint32_t hash_of(std::string_view name);
  std::string_view name_of(const Entry& e) const;
  // The bucket of `name`'s entry, or SIZE_MAX when absent.
  size_t bucket_of(std::string_view name, uint32_t hash) const;
  // Appends an entry for `name` (absent) and takes a bucket for it.
  void append(std::string_view name, uint32_t hash, const DirLocation& loc);
  // Drops erased entries and their names, and spreads the rest over
  // `bucket_count` buckets.
  void rebuild(size_t bucket_count);
  size_t slot_for(uint32_t hash) const {
    return static_cast<size_t>((static_cast<uint64_t>(hash) * buckets_.size()) >> 32);
  }

  std::vector<Entry> entries_;
  std::vector<Bucket> buckets_;
  std::string names_;
  size_t live_ = 0;
  // Erased entries beyond the live ones that trigger a rebuild (erase()).
  static constexpr size_t kErasedBeforeRebuild = 16;
  // Buckets holding an entry or a tombstone (probes end only at kEmpty).
  size_t used_buckets_ = 0;
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

// A name the daemon could have stored: not "." or "..", no '/' or NUL.
bool dir_entry_name_valid(std::string_view name);
// Whether an entry of a verified block may be served: a valid name, an
// inode number in the table other than the root's, a known DT_* type.
// dir_block_verify checks only the block's structure, so that fsck can
// remove such an entry alone instead of emptying its block.
Status dir_entry_check(const DirBlockEntry& e, uint64_t inode_count);
// Corruption naming the entry (unprintable bytes shown as '?') and `what`.
Status dir_entry_damage(const DirBlockEntry& e, const std::string& what);

}  // namespace sealfs
