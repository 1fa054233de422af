#include "meta/extent_chain.h"

#include <algorithm>

namespace sealfs {

size_t ExtentChain::index_of(uint64_t key) const {
  // The last block (past block 0) whose start is at or before `key`.
  auto it = std::upper_bound(links_.begin() + 1, links_.end(), key,
                             [](uint64_t k, const Link& l) { return k < l.start; });
  return static_cast<size_t>(it - links_.begin()) - 1;
}

void ExtentChain::insert(size_t i, Link link) {
  links_.insert(links_.begin() + static_cast<std::ptrdiff_t>(i), link);
  changes_.push_back({Change::Kind::kInsert, i, {}, 0});
}

void ExtentChain::erase(size_t i) {
  changes_.push_back({Change::Kind::kErase, i, links_[i], 0});
  links_.erase(links_.begin() + static_cast<std::ptrdiff_t>(i));
}

void ExtentChain::set_synced_start(uint64_t key) {
  if (key == synced_start_) return;
  changes_.push_back({Change::Kind::kStart, 0, {}, synced_start_});
  synced_start_ = key;
}

void ExtentChain::load(std::vector<Link> links, uint64_t synced_start) {
  links_ = std::move(links);
  synced_start_ = synced_start;
  changes_.clear();
}

void ExtentChain::undo_to(size_t mark) {
  while (changes_.size() > mark) {
    Change c = changes_.back();
    changes_.pop_back();
    switch (c.kind) {
      case Change::Kind::kInsert:
        links_.erase(links_.begin() + static_cast<std::ptrdiff_t>(c.index));
        break;
      case Change::Kind::kErase:
        links_.insert(links_.begin() + static_cast<std::ptrdiff_t>(c.index), c.link);
        break;
      case Change::Kind::kStart:
        synced_start_ = c.start;
        break;
    }
  }
}

}  // namespace sealfs
