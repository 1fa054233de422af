#include "meta/inode_table.h"

namespace sealfs {

InodeTable::~InodeTable() {
  MutexLock lock(mu_);
  clear();
}

void InodeTable::clear() {
  for (uint64_t i = 0; i < leaf_count_; ++i) {
    Leaf* leaf = leaves_[i].load(std::memory_order_relaxed);
    if (leaf == nullptr) continue;
    for (auto& slot : leaf->slots) delete slot.load(std::memory_order_relaxed);
    delete leaf;
  }
  leaves_.reset();
  leaf_count_ = 0;
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
    inode = new Inode(ino);
    if (loader_) loader_(*inode);
    slot.store(inode, std::memory_order_release);
  }
  return inode;
}

}  // namespace sealfs
