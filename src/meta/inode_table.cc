#include "meta/inode_table.h"

#include <cstdlib>
#include <new>

#include "util/log.h"

namespace sealfs {

InodeTable::~InodeTable() {
  MutexLock lock(mu_);
  clear();
}

void InodeTable::clear() {
  for (uint64_t i = 0; i < leaf_count_; ++i) {
    Leaf* leaf = leaves_[i].load(std::memory_order_relaxed);
    if (leaf == nullptr) continue;
    for (auto& slot : leaf->slots) {
      if (Inode* inode = slot.load(std::memory_order_relaxed)) inode->~Inode();
    }
    delete leaf;
  }
  leaves_.reset();
  leaf_count_ = 0;
  chunks_.clear();
  chunks_with_room_.clear();
  evicted_parents_.clear();
  resident_.store(0, std::memory_order_relaxed);
}

Inode* InodeTable::place(uint64_t ino) {
  if (chunks_with_room_.empty()) {
    auto chunk = std::unique_ptr<Chunk>(new Chunk);  // default-initialised: not zeroed
    const std::byte* start = chunk->bytes;
    chunks_[start].chunk = std::move(chunk);
    chunks_with_room_.insert(start);
  }
  const std::byte* start = *chunks_with_room_.begin();
  ChunkUse& use = chunks_[start];
  uint16_t index;
  if (!use.returned.empty()) {
    index = use.returned.back();
    use.returned.pop_back();
  } else {
    index = use.fresh++;
  }
  ++use.live;
  if (use.returned.empty() && use.fresh == kChunkInodes) chunks_with_room_.erase(start);
  resident_.fetch_add(1, std::memory_order_relaxed);
  return new (use.chunk->bytes + index * sizeof(Inode)) Inode(ino);
}

void InodeTable::reset(uint64_t count, Loader loader) {
  // Inode::ino keeps numbers in 32 bits; the superblock's check refuses an
  // image with more inodes, so more here is a bug.
  if (count > format::kMaxInodeCount) {
    log().critical("inode table: {} inodes, more than an image may have", count);
    std::abort();
  }
  MutexLock lock(mu_);
  clear();
  loader_ = std::move(loader);
  count_ = count;
  leaf_count_ = (count >> kLeafBits) + 1;
  leaves_ = std::make_unique<std::atomic<Leaf*>[]>(leaf_count_);
}

Inode* InodeTable::get_or_make(uint64_t ino) {
  if (ino == 0 || ino > count_) return nullptr;
  if (Inode* inode = find(ino)) return inode;
  return make(ino);
}

Inode* InodeTable::make(uint64_t ino) {
  MutexLock lock(mu_);
  std::atomic<Leaf*>& leaf_slot = leaves_[ino >> kLeafBits];
  Leaf* leaf = leaf_slot.load(std::memory_order_relaxed);
  if (leaf == nullptr) {
    leaf = new Leaf();
    leaf_slot.store(leaf, std::memory_order_release);
  }
  const uint64_t at = ino & (kLeafSlots - 1);
  std::atomic<Inode*>& slot = leaf->slots[at];
  Inode* inode = slot.load(std::memory_order_relaxed);
  if (inode == nullptr) {
    inode = place(ino);
    const bool evicted = (leaf->evicted[at / 64] >> (at % 64)) & 1;
    if (loader_) loader_(*inode, evicted);
    if (evicted) {
      auto parent = evicted_parents_.find(ino);
      if (parent != evicted_parents_.end()) {
        inode->parent = parent->second;
        evicted_parents_.erase(parent);
      }
    }
    slot.store(inode, std::memory_order_release);
  }
  return inode;
}

void InodeTable::evict(Inode& inode) {
  MutexLock lock(mu_);
  const uint64_t ino = inode.ino;
  Leaf* leaf = leaves_[ino >> kLeafBits].load(std::memory_order_relaxed);
  const uint64_t at = ino & (kLeafSlots - 1);
  leaf->slots[at].store(nullptr, std::memory_order_release);
  leaf->evicted[at / 64] |= uint64_t{1} << (at % 64);
  if (const uint64_t parent = inode.parent.load(std::memory_order_relaxed); parent != 0) {
    evicted_parents_[ino] = parent;
  }
  const auto* place_of = reinterpret_cast<const std::byte*>(&inode);
  auto chunk = std::prev(chunks_.upper_bound(place_of));
  ChunkUse& use = chunk->second;
  const auto index = static_cast<uint16_t>((place_of - chunk->first) / sizeof(Inode));
  inode.~Inode();
  resident_.fetch_sub(1, std::memory_order_relaxed);
  if (--use.live == 0) {
    chunks_with_room_.erase(chunk->first);
    chunks_.erase(chunk);
    freed_chunks_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  use.returned.push_back(index);
  chunks_with_room_.insert(chunk->first);
}

Inode* InodeTable::find(uint64_t ino) const {
  if (ino == 0 || ino > count_) return nullptr;
  // Release stores in make() publish a fully built leaf and inode.
  const Leaf* leaf = leaves_[ino >> kLeafBits].load(std::memory_order_acquire);
  if (leaf == nullptr) return nullptr;
  return leaf->slots[ino & (kLeafSlots - 1)].load(std::memory_order_acquire);
}

}  // namespace sealfs
