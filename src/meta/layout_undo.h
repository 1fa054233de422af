// LayoutUndo: puts an inode's DRAM block map back (attributes, extent map,
// overflow chain, the bytes of an inline file) when the transaction that changed it does not commit.
//
// It replays the change logs of ExtentMap and ExtentChain back to where they
// stood at construction, so it costs what the edits cost, not the size of
// the map. MetaTxn clears those logs when a transaction of the inode commits
// (the map then equals its on-media form), so an undo never reaches back
// past a committed transaction.
#pragma once

#include <string>

#include "meta/inode.h"

namespace sealfs {

class LayoutUndo {
 public:
  explicit LayoutUndo(Inode& inode) REQUIRES(inode.mu)
      : inode_(&inode),
        core_(inode.core),
        extents_mark_(inode.extents.change_mark()),
        chain_mark_(inode.chain.change_mark()),
        inline_bytes_(inode.inline_bytes.str()) {}

  Inode* inode() const { return inode_; }
  // Under the lock the constructor was called with, still held.
  void restore() const {
    assert_inode_locked(inode_);
    inode_->core = core_;
    inode_->extents.undo_to(extents_mark_);
    inode_->chain.undo_to(chain_mark_);
    inode_->inline_bytes.assign(inline_bytes_);
  }

 private:
  Inode* inode_;
  InodeCore core_;
  size_t extents_mark_;
  size_t chain_mark_;
  // At most kInlineDataMax bytes (empty for a file in extents).
  std::string inline_bytes_;
};

}  // namespace sealfs
