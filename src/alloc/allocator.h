// Extent allocator for the data area.
//
// DRAM free-space indexes (by offset, for coalescing and goals; by size, for
// best fit) are rebuilt from the block bitmap at open. The bitmap on media is
// kept in step through the journal: allocate() and free() record bit changes
// against a Transaction, and the bitmap words are staged from a prepare hook
// under the journal mutex, from a "committed" copy of the bitmap, so that
// concurrent transactions can never write each other's uncommitted bits.
//
// Safety rules:
//  - blocks freed in a transaction become allocatable only after it commits
//    (a block reused before the free is durable could be written by its new
//    owner and still belong to the old one after a crash);
//  - quarantined blocks stay marked in the bitmap and in the persistent
//    holder table until release_holder(); they are never handed out while a
//    process may still reach them through an old direct mapping.
//
// Alignment policy: a request of at least `align_blocks` starts on an
// align_blocks boundary when such space exists; smaller requests are packed
// into free extents that cannot hold an aligned chunk, so aligned space stays
// whole.
//
// Placement details (free_space.h): a request of >= align_blocks takes the
// aligned run at the goal if the goal's free extent has one, else the best
// fitting extent that holds an aligned run, else plain best fit, else the
// largest piece >= min_count. A smaller request takes the goal if its free
// extent can satisfy it there, else the best fitting fragment (an extent with
// no aligned chunk), else the end of an unaligned head or the start of an
// unaligned tail of an extent with chunks, and only then breaks one chunk.
//
// Decisions on media trouble found by open():
//  - bitmap bits set beyond data_blocks: kCorruption (the bitmap is not what
//    mkfs and the journal wrote, so none of it is trusted);
//  - a holder table block with a bad magic or crc (an all-zero block is a
//    valid empty one): logged, its entries ignored, its slots never reused.
//    The extents it listed stay marked in the bitmap, so they leak until
//    fsck rather than risk reuse under a live mapping;
//  - a holder entry with a valid crc that lies outside the data area, covers
//    blocks the bitmap marks free or overlaps another entry, or a count that
//    does not match the entries: kCorruption;
//  - an inconsistent area (overlaps, outside the region, bitmap too small,
//    data_start not aligned, align not a power of two): kInvalid.
//
// A prepare hook that changed the committed copies registers an undo
// (Transaction::on_prepare_undo) that the journal runs under its mutex if the
// commit then fails (a transaction grown too big for the log, a media
// fault), so later transactions never stage those bits. Transactions that
// used an Allocator must end (commit or drop) before it is destroyed.
//
// Thread-safe. Its mutex is a leaf of the lock order (src/meta/locking.h
// says why the prepare hooks may take it under the journal mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "media/journal.h"
#include "media/region.h"
#include "util/sparse_bits.h"
#include "util/status.h"

namespace sealfs {

struct BlockExtent {
  uint64_t start = 0;  // absolute region block
  uint64_t count = 0;
  uint64_t end() const { return start + count; }
  bool operator==(const BlockExtent&) const = default;
};

// A process that held a direct mapping: pid plus its start time (field 22 of
// /proc/PID/stat), so a reused pid is not mistaken for the holder.
struct Holder {
  uint32_t pid = 0;
  uint64_t start_time = 0;
  bool operator==(const Holder&) const = default;
};

struct AllocatorArea {
  uint64_t data_start = 0;   // first data block (region block number)
  uint64_t data_blocks = 0;
  uint64_t bitmap_start = 0;  // region block of the bitmap
  uint64_t bitmap_blocks = 0;
  uint64_t holder_start = 0;  // region block of the holder table
  uint64_t holder_blocks = 0;
  uint64_t align_blocks = 1;  // device alignment in blocks (power of two)
};

struct QuarantineEntry {
  Holder holder;
  uint64_t ino = 0;
  BlockExtent extent;
  // A pin: the blocks still belong to file `ino` and the holder was granted
  // a mapping of them. Pins change nothing in the bitmap or free space; they
  // only survive a daemon restart, so that blocks a live holder may reach
  // are quarantined when their file frees them.
  bool pinned = false;
};

class Allocator {
 public:
  // Writes an all-free bitmap and an empty holder table (mkfs).
  static Status format(Transaction& txn, const AllocatorArea& area);
  // Builds the free indexes from the bitmap. Entries in the holder table
  // whose holder is not alive (per `alive`) are freed through a journal
  // transaction; the rest stay quarantined.
  static Result<std::unique_ptr<Allocator>> open(
      const Region& region, Journal& journal, const AllocatorArea& area,
      const std::function<bool(const Holder&)>& alive);
  ~Allocator();

  // One contiguous extent of at least min_count and at most count blocks,
  // near `goal` (a region block; 0 = no preference). kNoSpace if no free
  // extent of min_count blocks exists.
  Result<BlockExtent> allocate(Transaction& txn, uint64_t count, uint64_t goal = 0,
                               uint64_t min_count = 1);
  // Frees the blocks when `txn` commits. Aborts the process if the blocks
  // are not allocated (a broken in-memory invariant).
  void free(Transaction& txn, BlockExtent extent);
  // Moves allocated blocks from their owner into quarantine against
  // `holder`, persistently (holder table). kNoSpace if the table is full.
  Status quarantine(Transaction& txn, BlockExtent extent, const Holder& holder, uint64_t ino);
  // Frees every extent quarantined against `holder` and drops its pins.
  Status release_holder(Transaction& txn, const Holder& holder);
  // Records persistently that `holder` may reach `extent` (allocated, owned
  // by file `ino`): a holder table entry flagged pinned. kNoSpace if the
  // table is full. At open, pins of holders that are gone are dropped; pins
  // of live holders stay (pinned_entries()).
  // All of one grant's extents in one call: one prepare hook, and each
  // holder-table block is sealed once however many entries it gains.
  Status pin(Transaction& txn, const std::vector<BlockExtent>& extents, const Holder& holder,
             uint64_t ino);
  // Drops one pin equal to (holder, extent) for each extent; kNotFound (and
  // nothing dropped) if one has none.
  Status unpin(Transaction& txn, const std::vector<BlockExtent>& extents, const Holder& holder);
  Status pin(Transaction& txn, BlockExtent extent, const Holder& holder, uint64_t ino) {
    return pin(txn, std::vector<BlockExtent>{extent}, holder, ino);
  }
  Status unpin(Transaction& txn, BlockExtent extent, const Holder& holder) {
    return unpin(txn, std::vector<BlockExtent>{extent}, holder);
  }

  uint64_t free_blocks() const;
  uint64_t quarantined_blocks() const;
  std::vector<QuarantineEntry> quarantine_entries() const;  // without pins
  std::vector<QuarantineEntry> pinned_entries() const;
  std::vector<BlockExtent> free_extents() const;  // sorted by start
  bool is_allocated(uint64_t block) const;
  // A copy of the allocated set: bit i <=> block data_start + i. For the
  // mount's cross-check against referents.
  SparseBits allocated_bits() const;
  const AllocatorArea& area() const;

 private:
  Allocator();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sealfs
