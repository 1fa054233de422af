// ExtentMap: a file's logical-to-physical block map in DRAM, plus the codec
// for the on-media forms (inline extents in the inode, overflow blocks).
//
// Extents are kept sorted by file block and never overlap; adjacent extents
// that are contiguous on media and have the same flags are merged, so a file
// written sequentially with goal-directed allocation stays one extent.
//
// Every edit is also logged (the key it touched and the extent there before)
// until forget_changes(): the log is both the undo of a failed transaction
// and the list of keys whose overflow blocks must be rewritten, so neither
// costs more than the edit itself (no copy of the whole map per write).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "meta/extent_index.h"
#include "sealfs/format.h"
#include "util/status.h"

namespace sealfs {

class ExtentMap {
 public:
  using Map = ExtentIndex;  // one extent inline, more in a tree

  // The extent containing `file_block`, or nullptr.
  const Extent* find(uint64_t file_block) const;
  // The first extent that ends after `file_block` (contains it or follows).
  Map::const_iterator first_ending_after(uint64_t file_block) const;
  // The first extent whose first file block is at or after `file_block`.
  Map::const_iterator lower_bound(uint64_t file_block) const { return view().lower_bound(file_block); }
  Map::const_iterator begin() const { return view().begin(); }
  Map::const_iterator end() const { return view().end(); }

  // Adds a mapping for blocks that are currently unmapped (aborts on overlap:
  // an in-memory invariant).
  void insert(const Extent& extent);
  // The same without merging into neighbours: for loading a map that must
  // stay extent for extent what the media holds.
  void insert_as_stored(const Extent& extent);
  // Unmaps [file_block, file_block + count); returns the physical pieces
  // removed (to free), in file order.
  std::vector<Extent> punch(uint64_t file_block, uint64_t count);
  // Sets the unwritten flag on the mapped parts of the range, splitting
  // extents at the range edges.
  void set_unwritten(uint64_t file_block, uint64_t count, bool unwritten);

  // The change log. A mark is a position in it; undo_to(mark) restores the
  // map as it was at the mark. MetaTxn forgets the log of every inode whose
  // transaction committed (the map then equals its on-media form).
  struct Change {
    uint64_t key = 0;
    std::optional<Extent> before;  // nullopt: the key was absent
  };
  size_t change_mark() const { return rep_ ? rep_->changes.size() : 0; }
  std::span<const Change> changes() const {
    return rep_ ? std::span<const Change>(rep_->changes) : std::span<const Change>();
  }
  void undo_to(size_t mark);
  // Frees the log's buffer too, and all of the map's heap when it is empty:
  // a committed inode keeps no heap for either (the DRAM cost of a cached
  // inode, issue 12). Iterators into an empty map are invalidated.
  void forget_changes();

  size_t count() const { return view().size(); }
  bool empty() const { return view().empty(); }
  uint64_t mapped_blocks() const { return rep_ ? rep_->mapped_blocks : 0; }
  // One past the last mapped file block (0 when empty).
  uint64_t end_block() const;
  // Region block following the extent that precedes `file_block`: the
  // allocation goal that keeps a file contiguous.
  uint64_t goal_for(uint64_t file_block) const;
  std::vector<Extent> to_vector() const;
  // Empties the map and its change log (a slot being loaded or reused).
  void clear() { rep_.reset(); }

 private:
  void split_at(uint64_t file_block);
  void merge_around(uint64_t file_block);
  // Logs the extent at `key` (or its absence) before an edit of that key.
  void remember(uint64_t key);
  Map::iterator erase(Map::iterator it);

  // Made by the first edit: a cached inode whose map is empty and not being
  // changed (an inline file, an inline symlink, a device, an empty file)
  // pays one pointer for it (issue 12: 200 bytes of DRAM per cached inode).
  // A file with extents pays the pointer and this block (96 bytes of heap
  // with malloc's header: the lone extent inside the index, the count and
  // the log's empty vector).
  struct Rep {
    Map map;
    uint64_t mapped_blocks = 0;
    std::vector<Change> changes;
  };
  // The map, or an empty one when there is none.
  const Map& view() const;
  Rep& rep();
  std::unique_ptr<Rep> rep_;
};

format::DiskExtent encode_extent(const Extent& extent);
// Validates one decoded extent against the data area.
Result<Extent> decode_extent(const format::DiskExtent& disk, uint64_t data_start,
                             uint64_t data_end);

// Overflow block image: header + up to kExtentsPerBlock extents.
void encode_extent_block(std::byte* block, uint64_t owner_ino, uint64_t next_block,
                         std::span<const format::DiskExtent> extents);
struct ExtentBlockView {
  uint64_t next_block = 0;
  std::vector<format::DiskExtent> extents;
};
Result<ExtentBlockView> decode_extent_block(const std::byte* block, uint64_t owner_ino);

}  // namespace sealfs
