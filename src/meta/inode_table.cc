#include "meta/inode_table.h"

#include <new>

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
  placed_in_last_chunk_ = kChunkInodes;
}

Inode* InodeTable::place(uint64_t ino) {
  if (placed_in_last_chunk_ == kChunkInodes) {
    chunks_.push_back(std::unique_ptr<Chunk>(new Chunk));  // default-initialised: not zeroed
    placed_in_last_chunk_ = 0;
  }
  std::byte* at = chunks_.back()->bytes + placed_in_last_chunk_ * sizeof(Inode);
  ++placed_in_last_chunk_;
  return new (at) Inode(ino);
}

void InodeTable::reset(uint64_t count, std::function<void(Inode&)> loader) {
  MutexLock lock(mu_);
  clear();
  loader_ = std::move(loader);
  count_ = count;
  leaf_count_ = (count >> kLeafBits) + 1;
  leaves_ = std::make_unique<std::atomic<Leaf*>[]>(leaf_count_);
}

Inode* InodeTable::get_or_make(uint64_t ino) {
  if (ino == 0 || ino > count_) return nullptr;
  // Release stores in make() publish a fully built leaf and inode.
  const Leaf* leaf = leaves_[ino >> kLeafBits].load(std::memory_order_acquire);
  if (leaf != nullptr) {
    Inode* inode = leaf->slots[ino & (kLeafSlots - 1)].load(std::memory_order_acquire);
    if (inode != nullptr) return inode;
  }
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
  std::atomic<Inode*>& slot = leaf->slots[ino & (kLeafSlots - 1)];
  Inode* inode = slot.load(std::memory_order_relaxed);
  if (inode == nullptr) {
    inode = place(ino);
    if (loader_) loader_(*inode);
    slot.store(inode, std::memory_order_release);
  }
  return inode;
}

}  // namespace sealfs
