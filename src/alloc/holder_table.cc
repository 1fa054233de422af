#include "alloc/holder_table.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "sealfs/format.h"
#include "util/crc32c.h"

namespace sealfs {

namespace {

using format::DiskHolderBlockHeader;
using format::DiskHolderEntry;
using format::kHolderEntriesPerBlock;
using format::kHolderMagic;

constexpr size_t kCrcOffset = offsetof(DiskHolderBlockHeader, crc);

size_t entry_offset(size_t index_in_block) {
  return sizeof(DiskHolderBlockHeader) + index_in_block * sizeof(DiskHolderEntry);
}

format::DiskHolderEntry encode_entry(const QuarantineEntry& entry) {
  DiskHolderEntry disk{};
  disk.pid.set(entry.holder.pid);
  disk.flags.set(entry.pinned ? format::kHolderEntryPinned : 0);
  disk.start_time.set(entry.holder.start_time);
  disk.ino.set(entry.ino);
  disk.region_block.set(entry.extent.start);
  disk.block_count.set(entry.extent.count);
  return disk;
}

QuarantineEntry decode_entry(const DiskHolderEntry& disk) {
  QuarantineEntry entry;
  entry.pinned = (disk.flags.get() & format::kHolderEntryPinned) != 0;
  entry.holder = Holder{disk.pid.get(), disk.start_time.get()};
  entry.ino = disk.ino.get();
  entry.extent = BlockExtent{disk.region_block.get(), disk.block_count.get()};
  return entry;
}

bool inside_data_area(uint64_t start, uint64_t count, uint64_t data_start, uint64_t data_blocks) {
  return start >= data_start && start - data_start < data_blocks &&
         count <= data_blocks - (start - data_start);
}

// Recomputes count and crc of a block image whose entries are in place.
void seal_block(std::byte* image) {
  uint32_t used = 0;
  for (size_t i = 0; i < kHolderEntriesPerBlock; ++i) {
    DiskHolderEntry disk;
    std::memcpy(&disk, image + entry_offset(i), sizeof(disk));
    if (disk.block_count.get() != 0) ++used;
  }
  DiskHolderBlockHeader header{};
  header.magic.set(kHolderMagic);
  header.count.set(used);
  std::memcpy(image, &header, sizeof(header));
  header.crc.set(crc32c_with_hole(image, format::kBlockSize, kCrcOffset));
  std::memcpy(image, &header, sizeof(header));
}

}  // namespace

HolderTable::HolderTable(uint64_t holder_start, uint64_t holder_blocks)
    : holder_start_(holder_start),
      slots_(holder_blocks * kHolderEntriesPerBlock),
      images_(holder_blocks * kBlock) {}

std::vector<std::byte> HolderTable::empty_block() {
  std::vector<std::byte> block(kBlock);
  DiskHolderBlockHeader header{};
  header.magic.set(kHolderMagic);
  std::memcpy(block.data(), &header, sizeof(header));
  header.crc.set(crc32c_with_hole(block.data(), kBlock, kCrcOffset));
  std::memcpy(block.data(), &header, sizeof(header));
  return block;
}

Result<HolderTable> HolderTable::load(const std::byte* area_bytes, uint64_t holder_start,
                                      uint64_t holder_blocks, uint64_t data_start,
                                      uint64_t data_blocks, DamagedBlocks damaged) {
  HolderTable table(holder_start, holder_blocks);
  std::memcpy(table.images_.data(), area_bytes, table.images_.size());
  for (uint64_t b = 0; b < holder_blocks; ++b) {
    std::byte* image = table.block_image(b);
    DiskHolderBlockHeader header;
    std::memcpy(&header, image, sizeof(header));
    bool formatted = header.magic.get() == kHolderMagic &&
                     header.crc.get() == crc32c_with_hole(image, kBlock, kCrcOffset);
    if (!formatted) {
      if (damaged == DamagedBlocks::kRefuse) {
        return Status(Code::kCorruption,
                      "holder table block " + std::to_string(holder_start + b) +
                          " has a bad magic or crc: the blocks it quarantines are unknown; run "
                          "fsck.sealfs");
      }
      ++table.unusable_blocks_;
      for (size_t i = 0; i < kHolderEntriesPerBlock; ++i) {
        table.slots_[b * kHolderEntriesPerBlock + i].state = SlotState::kUnusable;
      }
      continue;
    }
    uint32_t used = 0;
    for (size_t i = 0; i < kHolderEntriesPerBlock; ++i) {
      DiskHolderEntry disk;
      std::memcpy(&disk, image + entry_offset(i), sizeof(disk));
      if (disk.block_count.get() == 0) continue;
      uint64_t start = disk.region_block.get();
      uint64_t count = disk.block_count.get();
      if (!inside_data_area(start, count, data_start, data_blocks)) {
        return Status(Code::kCorruption,
                      "holder table block " + std::to_string(holder_start + b) + " entry " +
                          std::to_string(i) + ": extent [" + std::to_string(start) + ", +" +
                          std::to_string(count) + ") is outside the data area");
      }
      if ((disk.flags.get() & ~format::kHolderEntryFlagsKnown) != 0) {
        return Status(Code::kCorruption, "holder table block " + std::to_string(holder_start + b) +
                                             " entry " + std::to_string(i) + ": unknown flags");
      }
      Slot& slot = table.slots_[b * kHolderEntriesPerBlock + i];
      slot.state = SlotState::kLive;
      slot.entry = decode_entry(disk);
      ++used;
    }
    if (used != header.count.get()) {
      return Status(Code::kCorruption, "holder table block " + std::to_string(holder_start + b) +
                                           ": count " + std::to_string(header.count.get()) +
                                           " but " + std::to_string(used) + " entries in use");
    }
  }
  for (size_t i = table.slots_.size(); i-- > 0;) {
    if (table.slots_[i].state == SlotState::kFree) table.free_slots_.push_back(i);
  }
  return table;
}

std::vector<std::pair<size_t, QuarantineEntry>> HolderTable::salvage_entries(
    const std::byte* block, uint64_t data_start, uint64_t data_blocks) {
  std::vector<std::pair<size_t, QuarantineEntry>> out;
  for (size_t i = 0; i < kHolderEntriesPerBlock; ++i) {
    DiskHolderEntry disk;
    std::memcpy(&disk, block + entry_offset(i), sizeof(disk));
    if (disk.block_count.get() == 0 || disk.pid.get() == 0 ||
        (disk.flags.get() & ~format::kHolderEntryFlagsKnown) != 0 ||
        !inside_data_area(disk.region_block.get(), disk.block_count.get(), data_start,
                          data_blocks)) {
      continue;
    }
    out.emplace_back(i, decode_entry(disk));
  }
  return out;
}

std::vector<std::byte> HolderTable::encode_block(
    const std::vector<std::pair<size_t, QuarantineEntry>>& entries) {
  std::vector<std::byte> block(kBlock);
  for (const auto& [index, entry] : entries) {
    DiskHolderEntry disk = encode_entry(entry);
    std::memcpy(block.data() + entry_offset(index), &disk, sizeof(disk));
  }
  seal_block(block.data());
  return block;
}

std::optional<size_t> HolderTable::reserve(const QuarantineEntry& entry) {
  if (free_slots_.empty()) return std::nullopt;
  size_t i = free_slots_.back();
  free_slots_.pop_back();
  slots_[i].state = SlotState::kLive;
  slots_[i].entry = entry;
  return i;
}

void HolderTable::release_slot(size_t i) {
  slots_[i].state = SlotState::kFree;
  slots_[i].entry = QuarantineEntry{};
  free_slots_.push_back(i);
}

void HolderTable::commit_set(size_t i, const QuarantineEntry& entry) {
  size_t block = i / kHolderEntriesPerBlock;
  DiskHolderEntry disk = encode_entry(entry);
  std::memcpy(block_image(block) + entry_offset(i % kHolderEntriesPerBlock), &disk, sizeof(disk));
  reseal(block);
}

void HolderTable::commit_clear(size_t i) {
  size_t block = i / kHolderEntriesPerBlock;
  std::memset(block_image(block) + entry_offset(i % kHolderEntriesPerBlock), 0,
              sizeof(DiskHolderEntry));
  reseal(block);
}

void HolderTable::reseal(size_t block) { seal_block(block_image(block)); }

namespace {
// The distinct blocks of `slots`, in order.
std::vector<size_t> blocks_of(const std::vector<size_t>& slots) {
  std::vector<size_t> blocks;
  blocks.reserve(slots.size());
  for (size_t i : slots) blocks.push_back(i / kHolderEntriesPerBlock);
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  return blocks;
}
}  // namespace

void HolderTable::commit_set_many(const std::vector<std::pair<size_t, QuarantineEntry>>& entries) {
  std::vector<size_t> slots;
  slots.reserve(entries.size());
  for (const auto& [i, entry] : entries) {
    DiskHolderEntry disk = encode_entry(entry);
    std::memcpy(block_image(i / kHolderEntriesPerBlock) + entry_offset(i % kHolderEntriesPerBlock),
                &disk, sizeof(disk));
    slots.push_back(i);
  }
  for (size_t block : blocks_of(slots)) reseal(block);
}

void HolderTable::commit_clear_many(const std::vector<size_t>& slots) {
  for (size_t i : slots) {
    std::memset(block_image(i / kHolderEntriesPerBlock) + entry_offset(i % kHolderEntriesPerBlock),
                0, sizeof(DiskHolderEntry));
  }
  for (size_t block : blocks_of(slots)) reseal(block);
}

void HolderTable::stage_slots(Transaction& txn, const std::vector<size_t>& slots) const {
  for (size_t block : blocks_of(slots)) {
    txn.write((holder_start_ + block) * kBlock, images_.data() + block * kBlock,
              sizeof(DiskHolderBlockHeader));
  }
  for (size_t i : slots) {
    const size_t block = i / kHolderEntriesPerBlock;
    const size_t entry = entry_offset(i % kHolderEntriesPerBlock);
    txn.write((holder_start_ + block) * kBlock + entry, images_.data() + block * kBlock + entry,
              sizeof(DiskHolderEntry));
  }
}

void HolderTable::stage_slot(Transaction& txn, size_t slot_index) const {
  // The media block equals the committed image except where the image
  // changed, and a change touches one entry plus the header (count, crc).
  size_t block = slot_index / kHolderEntriesPerBlock;
  size_t entry = entry_offset(slot_index % kHolderEntriesPerBlock);
  const std::byte* image = images_.data() + block * kBlock;
  uint64_t home = (holder_start_ + block) * kBlock;
  txn.write(home, image, sizeof(DiskHolderBlockHeader));
  txn.write(home + entry, image + entry, sizeof(DiskHolderEntry));
}

}  // namespace sealfs
