#include "meta/inode_table.h"

namespace sealfs {

void InodeTable::reset(uint64_t count) {
  std::lock_guard lock(mu_);
  count_ = count;
  leaves_.clear();
  leaves_.resize((count >> kLeafBits) + 1);
}

Inode* InodeTable::get_or_make(uint64_t ino, const std::function<void(Inode&)>& fill) {
  std::lock_guard lock(mu_);
  if (ino == 0 || ino > count_) return nullptr;
  std::unique_ptr<Leaf>& leaf = leaves_[ino >> kLeafBits];
  if (!leaf) leaf = std::make_unique<Leaf>();
  std::unique_ptr<Inode>& p = (*leaf)[ino & (kLeafSlots - 1)];
  if (!p) {
    p = std::make_unique<Inode>(ino);
    fill(*p);
  }
  return p.get();
}

std::vector<Inode*> InodeTable::made() {
  std::vector<Inode*> out;
  std::lock_guard lock(mu_);
  for (const auto& leaf : leaves_) {
    if (!leaf) continue;
    for (const auto& p : *leaf) {
      if (p) out.push_back(p.get());
    }
  }
  return out;
}

}  // namespace sealfs
