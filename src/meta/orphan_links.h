// The orphan list's links in DRAM: for each inode on the list but the
// last, the next one, as last staged (the slot's orphan_next, format.md).
// Only inodes whose last name went while they were open are on the list
// (and, until the mount's pass over it, whatever a crash left there), so a
// map by number costs nothing for the millions of inodes that never are; as a field of every Inode it cost 8 bytes each
// (issue 12: 200 bytes of DRAM per cached inode).
//
// Who writes it (the rule is stated once, in meta/locking.h): the mount
// loads it from the slots before it serves (FilesystemImpl::load_orphan_links),
// and after that only a transaction's staging changes it, under the journal
// mutex (MetaTxn::stage_locked, whose undo restores it there too). Its own
// leaf mutex lets the walks of the list outside the journal mutex (the
// verifier's and the unmount's, orphan_list()) read it safely.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "util/thread_annotations.h"

namespace sealfs {

class OrphanLinks {
 public:
  // The inode after `ino` on the list; 0 for the last one and for an inode
  // not on the list.
  uint64_t next(uint64_t ino) const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto it = next_.find(static_cast<uint32_t>(ino));
    return it == next_.end() ? 0 : it->second;
  }
  // Inode numbers fit 32 bits (format::kMaxInodeCount).
  void set(uint64_t ino, uint64_t next) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    if (next == 0) {
      next_.erase(static_cast<uint32_t>(ino));
    } else {
      next_[static_cast<uint32_t>(ino)] = static_cast<uint32_t>(next);
    }
  }
  void clear() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    next_.clear();
  }

 private:
  mutable Mutex mu_;  // leaf (meta/locking.h)
  std::unordered_map<uint32_t, uint32_t> next_ GUARDED_BY(mu_);
};

}  // namespace sealfs
