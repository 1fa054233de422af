#include "meta/extent_chain.h"

#include <algorithm>

namespace sealfs {

const std::vector<ExtentChain::Link>& ExtentChain::no_links() {
  static const std::vector<Link> none;
  return none;
}

ExtentChain::Rep& ExtentChain::rep() {
  if (!rep_) rep_ = std::make_unique<Rep>();
  return *rep_;
}

size_t ExtentChain::index_of(uint64_t key) const {
  // The last block (past block 0) whose start is at or before `key`.
  const std::vector<Link>& all = links();
  auto it = std::upper_bound(all.begin() + 1, all.end(), key,
                             [](uint64_t k, const Link& l) { return k < l.start; });
  return static_cast<size_t>(it - all.begin()) - 1;
}

void ExtentChain::insert(size_t i, Link link) {
  Rep& r = rep();
  r.links.insert(r.links.begin() + static_cast<std::ptrdiff_t>(i), link);
  r.changes.push_back({Change::Kind::kInsert, i, {}, 0});
}

void ExtentChain::erase(size_t i) {
  Rep& r = rep();
  r.changes.push_back({Change::Kind::kErase, i, r.links[i], 0});
  r.links.erase(r.links.begin() + static_cast<std::ptrdiff_t>(i));
}

void ExtentChain::set_synced_start(uint64_t key) {
  if (key == synced_start()) return;
  Rep& r = rep();
  r.changes.push_back({Change::Kind::kStart, 0, {}, r.synced_start});
  r.synced_start = key;
}

void ExtentChain::load(std::vector<Link> links, uint64_t synced_start) {
  if (links.empty() && synced_start == 0) {
    rep_.reset();
    return;
  }
  Rep& r = rep();
  r.links = std::move(links);
  r.synced_start = synced_start;
  r.changes.clear();
}

void ExtentChain::undo_to(size_t mark) {
  if (!rep_) return;  // no log: nothing was changed since it was forgotten
  Rep& r = *rep_;
  while (r.changes.size() > mark) {
    Change c = r.changes.back();
    r.changes.pop_back();
    switch (c.kind) {
      case Change::Kind::kInsert:
        r.links.erase(r.links.begin() + static_cast<std::ptrdiff_t>(c.index));
        break;
      case Change::Kind::kErase:
        r.links.insert(r.links.begin() + static_cast<std::ptrdiff_t>(c.index), c.link);
        break;
      case Change::Kind::kStart:
        r.synced_start = c.start;
        break;
    }
  }
}

void ExtentChain::forget_changes() {
  if (!rep_) return;
  if (rep_->links.empty() && rep_->synced_start == 0) {
    rep_.reset();
  } else {
    std::vector<Change>().swap(rep_->changes);  // and its buffer
  }
}

}  // namespace sealfs
