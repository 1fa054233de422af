// The daemon's in-DRAM inodes by number: a two-level table whose leaves are
// made when an inode in them is first touched, so its cost follows the
// inodes in use, not the region's inode count (an empty 1 TiB region has
// tens of millions of slots; issue 12).
//
// Every metadata operation finds its inodes here, from many FUSE threads at
// once: finding an inode already made takes no lock (two acquire loads).
// Inodes and leaves live until the table is reset or destroyed, so inodes
// are placed in arrays of kChunkInodes made as needed, not allocated one by
// one: malloc's header and size-class rounding would add 16 bytes to each
// (issue 12: 200 bytes of DRAM per cached inode).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "meta/inode.h"
#include "util/thread_annotations.h"

namespace sealfs {

class InodeTable {
 public:
  InodeTable() = default;
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;
  ~InodeTable();

  // Numbers 1..count; 0 and larger numbers are never in it. Not concurrent
  // with any other call (the mount calls it before serving). `loader` fills
  // an inode when it is first made, under the table's lock and before any
  // other thread can see it, so an inode is read from media exactly once;
  // it takes no lock and never calls back into the table.
  void reset(uint64_t count, std::function<void(Inode&)> loader = {});

  // The inode numbered `ino`, made on first use; nullptr when `ino` is out
  // of range.
  Inode* get_or_make(uint64_t ino);

 private:
  static constexpr uint64_t kLeafBits = 12;
  static constexpr uint64_t kLeafSlots = uint64_t{1} << kLeafBits;
  struct Leaf {
    std::array<std::atomic<Inode*>, kLeafSlots> slots{};  // into chunks_
  };
  static constexpr size_t kChunkInodes = 256;
  struct Chunk {
    alignas(Inode) std::byte bytes[kChunkInodes * sizeof(Inode)];
  };
  Inode* make(uint64_t ino) EXCLUDES(mu_);
  // Constructs an inode in the current chunk (a new one when it is full).
  Inode* place(uint64_t ino) REQUIRES(mu_);
  void clear() REQUIRES(mu_);

  Mutex mu_;  // makes leaves and inodes; a leaf lock (meta/locking.h)
  // count_ and leaves_ are set by reset() alone, which no other call runs
  // beside: get_or_make() reads them without the lock.
  uint64_t count_ = 0;
  std::unique_ptr<std::atomic<Leaf*>[]> leaves_;  // owned; count_ / kLeafSlots + 1
  uint64_t leaf_count_ GUARDED_BY(mu_) = 0;
  std::function<void(Inode&)> loader_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Chunk>> chunks_ GUARDED_BY(mu_);
  size_t placed_in_last_chunk_ GUARDED_BY(mu_) = kChunkInodes;
};

}  // namespace sealfs
