#include "meta/meta_txn.h"

#include <algorithm>
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
  // transaction staged for it. A slot whose inode's DRAM fields may not be
  // used (locking.h: an orphan-list neighbour, or an inode on the list that
  // this transaction does not otherwise change) is rebuilt from home with
  // only orphan_next changed. Such a slot was committed before (the inode
  // went on the list in an earlier transaction), so its page exists: this
  // never reads a hole of a sparse inode table.
  struct Relinked {
    Inode* inode;
    uint64_t old_next;
  };
  auto relinked = std::make_shared<std::vector<Relinked>>();
  std::vector<Inode*> from_home;  // slots rebuilt from home (deduplicated)
  auto relink = [&](Inode* inode, uint64_t next) {
    relinked->push_back({inode, fs_.orphan_links_.next(inode->ino)});
    fs_.orphan_links_.set(inode->ino, next);
    if (std::find(from_home.begin(), from_home.end(), inode) == from_home.end()) {
      from_home.push_back(inode);
    }
  };
  auto saved_sb = std::make_shared<Superblock>(fs_.sb_staged_);
  Superblock& sb = fs_.sb_staged_;
  bool sb_changed = !sb_edits_.empty();
  for (auto& [op, inode] : orphan_ops_) {
    sb_changed = true;
    if (op == OrphanOp::kAdd) {
      relink(inode, sb.orphan_head);
      sb.orphan_head = inode->ino;
      continue;
    }
    const uint64_t next = fs_.orphan_links_.next(inode->ino);
    relink(inode, 0);
    if (sb.orphan_head == inode->ino) {
      sb.orphan_head = next;
      continue;
    }
    // Walk the list for the predecessor (lists are short: open unlinked
    // files). The loop is bounded by the inode count.
    uint64_t cur = sb.orphan_head;
    bool found = false;
    for (uint64_t steps = 0; cur != 0 && steps <= fs_.geo_.inode_count; ++steps) {
      Inode* c = fs_.slot(cur);
      if (c == nullptr) break;
      const uint64_t after = fs_.orphan_links_.next(cur);
      if (after == inode->ino) {
        relink(c, next);
        found = true;
        break;
      }
      cur = after;
    }
    if (!found) {
      log().critical("orphan list: inode {} is not on the list", inode->ino);
      std::abort();
    }
  }
  for (Inode* inode : dirty_) {
    assert_inode_locked(inode);  // dirty(): by this thread, until commit returns
    format::DiskInode slot = encode_inode(*inode, fs_.orphan_links_.next(inode->ino),
                                          fs_.birth_time_of(*inode), fs_.inline_data_of(*inode));
    seal_inode_crc(slot);
    t.write_struct(inode_offset(fs_.geo_, inode->ino), slot);
  }
  for (Inode* inode : from_home) {
    if (std::find(dirty_.begin(), dirty_.end(), inode) != dirty_.end()) continue;  // staged above
    const uint64_t at = inode_offset(fs_.geo_, inode->ino);
    format::DiskInode slot{};
    std::memcpy(&slot, fs_.region_->data() + at, sizeof(slot));
    // Resealing a slot damaged while mounted would make it valid: stop
    // instead, and let the next mount or fsck see the damage.
    auto decoded = decode_inode(slot, inode->ino, fs_.geo_.inode_count);
    if (!decoded.is_ok()) {
      log().critical("orphan list: the slot of inode {} is damaged on the media: {}", inode->ino,
                     decoded.status().to_string());
      std::abort();
    }
    slot.orphan_next.set(fs_.orphan_links_.next(inode->ino));
    seal_inode_crc(slot);
    t.write_struct(at, slot);
  }
  for (auto& edit : sb_edits_) edit(sb);
  if (sb_changed) {
    t.write_struct(block_offset(format::kSuperblockBlock), encode_superblock(sb));
  }
  // Undone under the journal mutex if the commit fails from here on: run
  // after the mutex is released, the undo would overwrite the orphan links
  // and superblock edits of a transaction that committed in between.
  FilesystemImpl* fs = &fs_;
  t.on_prepare_undo([fs, saved_sb, relinked]() {
    for (auto it = relinked->rbegin(); it != relinked->rend(); ++it) {
      fs->orphan_links_.set(it->inode->ino, it->old_next);
    }
    fs->sb_staged_ = *saved_sb;
  });
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
    assert_inode_locked(inode);  // dirty(): by this thread, until commit returns
    inode->extents.forget_changes();
    inode->chain.forget_changes();
    inode->times_dirty = false;
    inode->unborn = false;
  }
  for (auto& f : on_commit_) f();
  return Status::ok();
}

}  // namespace sealfs
