// HolderTable: the persistent table of quarantined extents (format.h,
// DiskHolderBlockHeader + DiskHolderEntry) and its DRAM views.
//
// Slots are sparse: an entry with block_count 0 is free, and a block's
// `count` is the number of entries in use in it, so concurrent transactions
// can own different slots of one block without moving entries around.
//
// Two views, like the bitmap: the live slot states (reserved at once by
// quarantine(), freed only when a release commits) and the committed block
// images, changed only from prepare hooks, which stage the changed entry and
// the header (count, crc over the whole block) from the image, so a
// transaction never persists another one's uncommitted slot.
//
// Not thread-safe: the Allocator's mutex guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "alloc/allocator.h"
#include "media/journal.h"
#include "util/status.h"

namespace sealfs {

class HolderTable {
 public:
  enum class SlotState : uint8_t {
    kFree,
    kLive,       // quarantined (committed or not yet)
    kReleasing,  // in a release transaction that has not committed
    kUnusable,   // in a block that failed its crc/magic at open
  };
  struct Slot {
    SlotState state = SlotState::kFree;
    QuarantineEntry entry;
  };

  // What load does with a block that fails its magic or crc check (an
  // all-zero block too: mkfs and Allocator::format write every block
  // formatted, so zeros are damage).
  enum class DamagedBlocks {
    // kCorruption naming the block: its entries may quarantine blocks that
    // a living holder still maps, and nothing at mount can tell which, so
    // the mount is refused until fsck has looked (the daemon).
    kRefuse,
    // The block's slots become kUnusable and its entries are ignored: for
    // fsck, which reports and repairs the block itself.
    kMarkUnusable,
  };

  // Parses the table at `area_bytes` (holder_blocks blocks). An entry
  // outside the data area, or a count that does not match the entries, is
  // kCorruption (a valid crc over nonsense).
  static Result<HolderTable> load(const std::byte* area_bytes, uint64_t holder_start,
                                  uint64_t holder_blocks, uint64_t data_start,
                                  uint64_t data_blocks,
                                  DamagedBlocks damaged = DamagedBlocks::kRefuse);
  // The entries of a damaged block that still look like entries (extent
  // inside the data area, known flags, a pid), by slot index in the block.
  // Nothing vouches for them: fsck keeps only those of living holders.
  static std::vector<std::pair<size_t, QuarantineEntry>> salvage_entries(
      const std::byte* block, uint64_t data_start, uint64_t data_blocks);
  // A formatted block holding `entries` (slot index in the block, entry).
  static std::vector<std::byte> encode_block(
      const std::vector<std::pair<size_t, QuarantineEntry>>& entries);
  // The bytes of one empty formatted block.
  static std::vector<std::byte> empty_block();

  size_t slot_count() const { return slots_.size(); }
  const Slot& slot(size_t i) const { return slots_[i]; }
  Slot& slot(size_t i) { return slots_[i]; }
  uint64_t unusable_blocks() const { return unusable_blocks_; }

  // Live view.
  std::optional<size_t> reserve(const QuarantineEntry& entry);
  void release_slot(size_t i);

  // Committed view (prepare hooks).
  void commit_set(size_t i, const QuarantineEntry& entry);
  void commit_clear(size_t i);
  void stage_slot(Transaction& txn, size_t slot_index) const;
  // The same for many slots at once (one lease's extents): each block
  // they touch is sealed (crc) and its header staged once, not once per
  // entry.
  void commit_set_many(const std::vector<std::pair<size_t, QuarantineEntry>>& entries);
  void commit_clear_many(const std::vector<size_t>& slots);
  void stage_slots(Transaction& txn, const std::vector<size_t>& slots) const;

 private:
  HolderTable(uint64_t holder_start, uint64_t holder_blocks);
  std::byte* block_image(size_t block) { return images_.data() + block * kBlock; }
  void reseal(size_t block);

  static constexpr size_t kBlock = 4096;
  uint64_t holder_start_ = 0;
  std::vector<Slot> slots_;
  std::vector<size_t> free_slots_;  // stack, lowest index on top
  std::vector<std::byte> images_;   // committed block images
  uint64_t unusable_blocks_ = 0;
};

}  // namespace sealfs
