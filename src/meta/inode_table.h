// The daemon's in-DRAM inodes by number: a two-level table whose leaves are
// made when an inode in them is first touched, so its cost follows the
// inodes in use, not the region's inode count (an empty 1 TiB region has
// tens of millions of slots; issue 12).
//
// Every metadata operation finds its inodes here, from many FUSE threads at
// once: finding an inode already made takes no lock (two acquire loads).
// Inodes are placed in arrays of kChunkInodes made as needed, not allocated
// one by one: malloc's header and size-class rounding would add 16 bytes to
// each (issue 12: 200 bytes of DRAM per cached inode).
//
// An inode lives until the table is reset or destroyed, or until evict()
// drops it (the inode cache's bound, inode_cache.cc): its place in its chunk
// is reused, a chunk left empty is freed, and the next get_or_make() of its
// number makes it again through the loader, told that it was evicted.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <vector>

#include "meta/inode.h"
#include "util/thread_annotations.h"

namespace sealfs {

class InodeTable {
 public:
  // Fills an inode when it is made. `evicted`: an inode of this number was
  // made before and evicted, so its slot holds what it last committed.
  using Loader = std::function<void(Inode&, bool evicted)>;

  InodeTable() = default;
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;
  ~InodeTable();

  // Numbers 1..count; 0 and larger numbers are never in it. Not concurrent
  // with any other call (the mount calls it before serving). `loader` fills
  // an inode when it is made, under the table's lock and before any other
  // thread can see it, so an inode is read from media once per stay in the
  // table; it takes no lock and never calls back into the table.
  void reset(uint64_t count, Loader loader = {});

  // The inode numbered `ino`, made on first use; nullptr when `ino` is out
  // of range.
  Inode* get_or_make(uint64_t ino);

  // Destroys `inode` and takes it out of the table. The caller guarantees
  // that no other thread holds a pointer to it or can obtain one until this
  // returns (FilesystemImpl closes its CacheGate: locking.h), and that what
  // the inode holds is on the media, except its parent link, which the
  // table keeps and gives back to the inode made next for this number.
  void evict(Inode& inode) EXCLUDES(mu_);

  // The inode numbered `ino` if it is made, else nullptr (nothing is read
  // and nothing made); valid as long as get_or_make's answer would be.
  Inode* find(uint64_t ino) const;

  // Inodes made and not evicted (relaxed: for the trimmer and counters).
  uint64_t resident() const { return resident_.load(std::memory_order_relaxed); }
  // Chunks freed by evict() since the last call (the trimmer then gives the
  // memory back to the system).
  uint64_t take_freed_chunks() { return freed_chunks_.exchange(0, std::memory_order_relaxed); }

 private:
  static constexpr uint64_t kLeafBits = 12;
  static constexpr uint64_t kLeafSlots = uint64_t{1} << kLeafBits;
  struct Leaf {
    std::array<std::atomic<Inode*>, kLeafSlots> slots{};  // into chunks_
    // Set when the inode of that slot was evicted (under mu_).
    std::array<uint64_t, kLeafSlots / 64> evicted{};
  };
  static constexpr size_t kChunkInodes = 256;
  struct Chunk {
    alignas(Inode) std::byte bytes[kChunkInodes * sizeof(Inode)];
  };
  // What the table knows of one chunk: places never used (from `fresh` on)
  // and places given back by evict().
  struct ChunkUse {
    std::unique_ptr<Chunk> chunk;
    uint16_t fresh = 0;
    uint16_t live = 0;
    std::vector<uint16_t> returned;
  };
  Inode* make(uint64_t ino) EXCLUDES(mu_);
  // Constructs an inode in a chunk with room (a new one when none has).
  Inode* place(uint64_t ino) REQUIRES(mu_);
  void clear() REQUIRES(mu_);

  Mutex mu_;  // makes and evicts inodes and leaves; a leaf lock (meta/locking.h)
  // count_ and leaves_ are set by reset() alone, which no other call runs
  // beside: get_or_make() reads them without the lock.
  uint64_t count_ = 0;
  std::unique_ptr<std::atomic<Leaf*>[]> leaves_;  // owned; count_ / kLeafSlots + 1
  uint64_t leaf_count_ GUARDED_BY(mu_) = 0;
  Loader loader_ GUARDED_BY(mu_);
  // Chunks by the address of their first byte; those with room, lowest
  // address first, so that inodes made again fill the oldest chunks (a
  // chunk the trimmer empties is freed).
  std::map<const std::byte*, ChunkUse> chunks_ GUARDED_BY(mu_);
  std::set<const std::byte*> chunks_with_room_ GUARDED_BY(mu_);
  // Parent links of evicted directories (not on the media: found at mount).
  std::unordered_map<uint32_t, uint32_t> evicted_parents_ GUARDED_BY(mu_);
  std::atomic<uint64_t> resident_{0};
  std::atomic<uint64_t> freed_chunks_{0};
};

}  // namespace sealfs
