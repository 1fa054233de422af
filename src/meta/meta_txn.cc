#include "meta/meta_txn.h"

#include <cstring>

#include "meta/filesystem_impl.h"
#include "util/crc32c.h"
#include "util/log.h"

namespace sealfs {

namespace {
// Gaps of equal bytes shorter than this are staged anyway: a record header
// costs 16 bytes.
constexpr size_t kDiffGap = 32;
}  // namespace

MetaTxn::MetaTxn(FilesystemImpl& fs) : fs_(fs), txn_(fs.journal_->begin()) {}

std::byte* MetaTxn::block(uint64_t region_block) {
  auto it = blocks_.find(region_block);
  if (it != blocks_.end()) return it->second.bytes.data();
  Block b;
  b.bytes.resize(format::kBlockSize);
  std::memcpy(b.bytes.data(), fs_.region_->data() + block_offset(region_block),
              format::kBlockSize);
  return blocks_.emplace(region_block, std::move(b)).first->second.bytes.data();
}

std::byte* MetaTxn::fresh_block(uint64_t region_block) {
  Block b;
  b.bytes.assign(format::kBlockSize, std::byte{0});
  b.fresh = true;
  auto& slot = blocks_[region_block];
  slot = std::move(b);
  return slot.bytes.data();
}

void MetaTxn::drop_block(uint64_t region_block) { blocks_.erase(region_block); }

void MetaTxn::dirty(Inode* inode) {
  for (Inode* i : dirty_) {
    if (i == inode) return;
  }
  dirty_.push_back(inode);
}

void MetaTxn::orphan_add(Inode* inode) { orphan_ops_.emplace_back(OrphanOp::kAdd, inode); }
void MetaTxn::orphan_remove(Inode* inode) { orphan_ops_.emplace_back(OrphanOp::kRemove, inode); }
void MetaTxn::edit_superblock(std::function<void(Superblock&)> edit) {
  sb_edits_.push_back(std::move(edit));
}

uint64_t MetaTxn::estimated_bytes() const {
  uint64_t bytes = txn_.log_bytes() + 64;
  bytes += blocks_.size() * (format::kBlockSize + 16);
  bytes += (dirty_.size() + 2 * orphan_ops_.size()) * (format::kInodeSize + 16);
  if (!sb_edits_.empty() || !orphan_ops_.empty()) bytes += sizeof(format::DiskSuperblock) + 16;
  return bytes;
}

void MetaTxn::stage_block(uint64_t region_block, Block& b) {
  std::byte* bytes = b.bytes.data();
  // Every metadata block type keeps a whole-block crc32c at offset 4.
  std::memset(bytes + 4, 0, 4);
  format::le32 crc(crc32c_with_hole(bytes, format::kBlockSize, 4));
  std::memcpy(bytes + 4, &crc, 4);
  uint64_t base = block_offset(region_block);
  if (b.fresh) {
    txn_.write(base, bytes, format::kBlockSize);
    return;
  }
  const std::byte* home = fs_.region_->data() + base;
  size_t i = 0;
  while (i < format::kBlockSize) {
    if (bytes[i] == home[i]) {
      ++i;
      continue;
    }
    size_t start = i;
    size_t last = i;
    while (i < format::kBlockSize) {
      if (bytes[i] != home[i]) {
        last = i;
      } else if (i - last > kDiffGap) {
        break;
      }
      ++i;
    }
    txn_.write(base + start, bytes + start, last - start + 1);
    i = last + 1;
  }
}

void MetaTxn::stage_locked(Transaction& t) {
  // Runs under the journal mutex, which also covers the journal's home
  // writes: here an inode's home slot holds exactly what the last committed
  // transaction staged for it, so slots are built from home, not from a DRAM
  // copy (locking.h says why a neighbour's DRAM fields cannot be used).
  struct Working {
    uint64_t ino;
    format::DiskInode slot;
  };
  std::vector<Working> working;
  auto slot_of = [&](uint64_t ino) -> format::DiskInode& {
    for (Working& w : working) {
      if (w.ino == ino) return w.slot;
    }
    working.push_back({ino, {}});
    std::memcpy(&working.back().slot, fs_.region_->data() + inode_offset(fs_.geo_, ino),
                sizeof(format::DiskInode));
    return working.back().slot;
  };
  auto saved_sb = std::make_shared<Superblock>(fs_.sb_staged_);
  Superblock& sb = fs_.sb_staged_;
  bool sb_changed = !sb_edits_.empty();
  // Orphan edits first, each on the working slot, so that a later edit in
  // the same transaction sees an earlier one.
  working.reserve(dirty_.size() + 2 * orphan_ops_.size());
  for (auto& [op, inode] : orphan_ops_) {
    sb_changed = true;
    format::DiskInode& mine = slot_of(inode->ino);
    if (op == OrphanOp::kAdd) {
      mine.orphan_next.set(sb.orphan_head);
      sb.orphan_head = inode->ino;
      continue;
    }
    uint64_t next = mine.orphan_next.get();
    mine.orphan_next.set(0);
    if (sb.orphan_head == inode->ino) {
      sb.orphan_head = next;
      continue;
    }
    // Walk the list for the predecessor (lists are short: open unlinked
    // files). The loop is bounded by the inode count.
    uint64_t cur = sb.orphan_head;
    bool found = false;
    for (uint64_t steps = 0; cur != 0 && cur <= fs_.geo_.inode_count &&
                             steps <= fs_.geo_.inode_count;
         ++steps) {
      format::DiskInode& c = slot_of(cur);
      if (c.orphan_next.get() == inode->ino) {
        c.orphan_next.set(next);
        found = true;
        break;
      }
      cur = c.orphan_next.get();
    }
    if (!found) {
      log().critical("orphan list: inode {} is not on the list", inode->ino);
      std::abort();
    }
  }
  for (Inode* inode : dirty_) {
    format::DiskInode& mine = slot_of(inode->ino);
    mine = encode_inode(*inode, mine.orphan_next.get());
  }
  // The walk may have read slots it did not change: stage only the changed.
  for (Working& w : working) {
    const std::byte* home = fs_.region_->data() + inode_offset(fs_.geo_, w.ino);
    seal_inode_crc(w.slot);
    if (std::memcmp(home, &w.slot, sizeof(w.slot)) == 0) continue;
    t.write_struct(inode_offset(fs_.geo_, w.ino), w.slot);
  }
  for (auto& edit : sb_edits_) edit(sb);
  if (sb_changed) {
    t.write_struct(block_offset(format::kSuperblockBlock), encode_superblock(sb));
  }
  FilesystemImpl* fs = &fs_;
  t.on_abort([fs, saved_sb]() { fs->sb_staged_ = *saved_sb; });
}

Status MetaTxn::commit() {
  // A media fault in the data copies (DataWriter) fails the commit: nothing
  // may expose blocks whose bytes did not land.
  if (data_written_) RETURN_IF_ERROR(fs_.data_->drain());
  for (auto& [block, b] : blocks_) stage_block(block, b);
  if (!dirty_.empty() || !orphan_ops_.empty() || !sb_edits_.empty()) {
    txn_.on_prepare([this](Transaction& t) { stage_locked(t); });
  }
  if (!txn_.empty()) {
    RETURN_IF_ERROR(fs_.journal_->commit(std::move(txn_)));
    if (freed_metadata_) fs_.metadata_frees_.fetch_add(1);
  }
  // Committed: each inode's block map now equals its on-media form, and its
  // timestamps are on media too (the whole slot was staged).
  for (Inode* inode : dirty_) {
    inode->extents.forget_changes();
    inode->chain.forget_changes();
    inode->times_dirty = false;
  }
  return Status::ok();
}

}  // namespace sealfs
