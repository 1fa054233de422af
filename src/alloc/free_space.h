// FreeSpace: the allocator's DRAM free-space indexes and placement policy.
//
// Pure bookkeeping, no media and no locking (the Allocator holds its mutex
// around every call). Blocks are absolute region block numbers; alignment is
// checked on them too, because the data area starts on the device alignment
// and a direct mapping needs region offsets aligned.
//
// Indexes, all kept in step by add_extent_/drop_extent_:
//  - by_offset_: start -> count, for coalescing and goal lookups;
//  - by_size_: (count, start), for best fit;
//  - fragments_: (count, start) of extents that cannot hold an aligned run of
//    align blocks ("fragments"), where small requests go first;
//  - pieces_: (length, piece start) of the unaligned head [start, first
//    aligned block) and tail [last aligned block, end) of every extent that
//    does hold an aligned chunk: the second choice for small requests, so
//    aligned chunks stay whole as long as possible.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace sealfs {

class FreeSpace {
 public:
  struct Extent {
    uint64_t start = 0;
    uint64_t count = 0;
    uint64_t end() const { return start + count; }
    bool operator==(const Extent&) const = default;
  };

  explicit FreeSpace(uint64_t align_blocks);

  // Returns [start, start+count) to the free set, coalescing with
  // neighbours. Aborts if any of it is already free.
  void insert(uint64_t start, uint64_t count);
  // Appends a run that starts after every free block so far (the bitmap
  // scan at open): no coalescing search, amortised O(1) per run.
  void append_run(uint64_t start, uint64_t count);
  // Takes [start, start+count) out of the free set. Aborts unless the range
  // lies inside one free extent.
  void remove(uint64_t start, uint64_t count);

  // Where the policy would place a request (see allocator.h); does not
  // change anything. nullopt if no free extent of min_count blocks exists.
  std::optional<Extent> choose(uint64_t count, uint64_t goal, uint64_t min_count) const;

  bool is_free(uint64_t block) const;
  // True if no block of [start, start+count) is free.
  bool none_free(uint64_t start, uint64_t count) const;
  uint64_t free_blocks() const { return free_blocks_; }
  size_t extent_count() const { return by_offset_.size(); }
  std::vector<Extent> extents() const;
  uint64_t align_blocks() const { return align_; }

  // Checks that the four indexes agree; aborts otherwise (tests).
  void check_invariants() const;

 private:
  using SizeKey = std::pair<uint64_t, uint64_t>;  // (length, start)

  uint64_t align_up(uint64_t block) const { return (block + align_ - 1) & ~(align_ - 1); }
  uint64_t align_down(uint64_t block) const { return block & ~(align_ - 1); }
  // True if [start, start+count) contains an aligned run of `run` blocks.
  bool holds_aligned(uint64_t start, uint64_t count, uint64_t run) const {
    uint64_t a = align_up(start);
    return a >= start && a + run <= start + count && a + run > a;
  }
  void add_extent_(uint64_t start, uint64_t count);
  void drop_extent_(std::map<uint64_t, uint64_t>::iterator it);
  // The free extent containing `block`, or end().
  std::map<uint64_t, uint64_t>::const_iterator containing_(uint64_t block) const;

  std::optional<Extent> choose_large_(uint64_t count, uint64_t goal, uint64_t min_count) const;
  std::optional<Extent> choose_small_(uint64_t count, uint64_t goal, uint64_t min_count) const;
  std::optional<Extent> largest_piece_(uint64_t min_count) const;

  uint64_t align_;
  uint64_t free_blocks_ = 0;
  std::map<uint64_t, uint64_t> by_offset_;
  std::set<SizeKey> by_size_;
  std::set<SizeKey> fragments_;
  std::set<SizeKey> pieces_;
};

}  // namespace sealfs
