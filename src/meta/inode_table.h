// The daemon's in-DRAM inodes by number: a two-level table whose leaves are
// made when an inode in them is first touched, so its cost follows the
// inodes in use, not the region's inode count (an empty 1 TiB region has
// tens of millions of slots; issue 12).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "meta/inode.h"

namespace sealfs {

class InodeTable {
 public:
  // Numbers 1..count; 0 and larger numbers are never in it.
  void reset(uint64_t count);

  // The inode numbered `ino`, made (and `fill` called on it, under the
  // table's lock) on first use; nullptr when `ino` is out of range.
  Inode* get_or_make(uint64_t ino, const std::function<void(Inode&)>& fill);

  // Every inode made so far, in number order (a snapshot: the table's lock
  // is not held while the caller uses them).
  std::vector<Inode*> made();

 private:
  static constexpr uint64_t kLeafBits = 12;
  static constexpr uint64_t kLeafSlots = uint64_t{1} << kLeafBits;
  using Leaf = std::array<std::unique_ptr<Inode>, kLeafSlots>;

  std::mutex mu_;  // a leaf (meta/locking.h)
  uint64_t count_ = 0;
  std::vector<std::unique_ptr<Leaf>> leaves_;
};

}  // namespace sealfs
