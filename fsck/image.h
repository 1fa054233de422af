// Image: fsck's view of the region with a copy-on-write overlay of whole
// blocks.
//
// Every phase reads through the overlay and repairs by editing overlay
// blocks, so later phases see the repaired state in both modes: with -y the
// overlay is committed through journal transactions at the end of each
// phase; with -n it is never written and only spares later phases from
// reporting the consequences of problems already reported. Reads of blocks
// outside the region return a zero block (callers bounds-check first; this
// is the backstop that keeps a missed check from crashing fsck).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "media/journal.h"
#include "media/region.h"
#include "media/superblock.h"
#include "sealfs/format.h"
#include "util/status.h"

namespace sealfs::fsck {

class Image {
 public:
  explicit Image(Region& region) : region_(region) {}

  const Region& region() const { return region_; }
  uint64_t region_blocks() const { return region_.size() / format::kBlockSize; }
  void set_geometry(const Geometry& g) { geo_ = g; }
  const Geometry& geo() const { return geo_; }

  const std::byte* read_block(uint64_t block) const;
  // Blocks of [first, first + count) that may hold non-zero bytes, as
  // ascending disjoint [begin, end) runs: the region's data ranges plus the
  // overlay's blocks. What lies outside them reads as zero, so a scan of a
  // sparse region's inode table or bitmap costs what was ever written.
  struct BlockRun {
    uint64_t begin = 0;
    uint64_t end = 0;
  };
  std::vector<BlockRun> nonzero_blocks(uint64_t first, uint64_t count) const;
  std::byte* edit_block(uint64_t block);

  // Inode slots (1 <= ino <= inode_count; others read as zero, writes are
  // ignored).
  format::DiskInode read_inode(uint64_t ino) const;
  void write_inode(uint64_t ino, const format::DiskInode& disk);  // seals the crc

  // Data-area block bitmap (region block numbers inside the data area).
  bool bit(uint64_t region_block) const;
  void set_bit(uint64_t region_block, bool used);
  // First data block whose bit is clear, marked used; nullopt when full.
  std::optional<uint64_t> allocate_block();

  bool in_data_area(uint64_t block, uint64_t count = 1) const {
    uint64_t end = geo_.data_start + geo_.data_blocks;
    return block >= geo_.data_start && block < end && count <= end - block && count > 0;
  }

  // Repair mode only: the journal the overlay is committed through.
  void attach_journal(Journal* journal) { journal_ = journal; }
  Journal* journal() { return journal_; }
  // Writes staged outside the overlay (holder slots) go here; committed with
  // the overlay. nullptr in check mode (nothing is ever written).
  Transaction* extra();
  bool dirty() const { return !overlay_.empty() || extra_.has_value(); }
  // Commits the overlay in as many transactions as the log needs, then drops
  // it. Without a journal (check mode) it only drops it.
  Status commit();
  void discard() {
    overlay_.clear();
    extra_.reset();
  }

 private:
  Region& region_;
  Geometry geo_;
  Journal* journal_ = nullptr;
  std::map<uint64_t, std::vector<std::byte>> overlay_;
  std::optional<Transaction> extra_;
  uint64_t alloc_hint_ = 0;
};

}  // namespace sealfs::fsck
