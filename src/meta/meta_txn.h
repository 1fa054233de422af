// MetaTxn: one metadata transaction of the filesystem layer.
//
// Collects metadata block images (directory, extent overflow and xattr
// blocks, each with its crc at offset 4 sealed at commit), the inodes whose
// slots change, orphan-list edits and superblock edits; commit() drains file
// data written so far, then stages everything and commits the journal
// transaction. Inode slots, the orphan list and the superblock are staged in
// a prepare hook, under the journal mutex (see locking.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "media/journal.h"
#include "media/superblock.h"
#include "meta/inode.h"

namespace sealfs {

class FilesystemImpl;

class MetaTxn {
 public:
  explicit MetaTxn(FilesystemImpl& fs);
  MetaTxn(const MetaTxn&) = delete;
  MetaTxn& operator=(const MetaTxn&) = delete;

  Transaction& txn() { return txn_; }
  // An existing metadata block, loaded from the region on first use.
  std::byte* block(uint64_t region_block);
  // A newly allocated metadata block: zero-filled, staged whole.
  std::byte* fresh_block(uint64_t region_block);
  // Forgets a block staged here (it is being freed in this transaction).
  void drop_block(uint64_t region_block);

  // The caller holds inode->mu exclusively until commit() returns.
  void dirty(Inode* inode) REQUIRES(inode->mu);
  void orphan_add(Inode* inode);
  void orphan_remove(Inode* inode);
  void edit_superblock(std::function<void(Superblock&)> edit);
  void data_written() { data_written_ = true; }
  // This transaction frees a block that held journaled metadata (see
  // FilesystemImpl::settle_freed_metadata).
  void freed_metadata() { freed_metadata_ = true; }
  // Runs after a successful commit (DRAM state that must not run ahead of
  // the media).
  void on_commit(std::function<void()> f) { on_commit_.push_back(std::move(f)); }

  // Rough bytes this transaction will take in the log.
  uint64_t estimated_bytes() const;
  Status commit();

 private:
  struct Block {
    std::vector<std::byte> bytes;
    bool fresh = false;
  };
  void stage_locked(Transaction& t);
  void stage_block(uint64_t region_block, Block& b);

  FilesystemImpl& fs_;
  std::map<uint64_t, Block> blocks_;
  std::vector<Inode*> dirty_;
  enum class OrphanOp { kAdd, kRemove };
  std::vector<std::pair<OrphanOp, Inode*>> orphan_ops_;
  std::vector<std::function<void(Superblock&)>> sb_edits_;
  bool data_written_ = false;
  bool freed_metadata_ = false;
  std::vector<std::function<void()>> on_commit_;
  // Last: destroyed first, so its abort hooks run while the rest is alive.
  Transaction txn_;
};

}  // namespace sealfs
