#include "meta/holder_pins.h"

#include <algorithm>

namespace sealfs {

void HolderPins::add(const Holder& holder, BlockExtent extent) {
  if (extent.count == 0) return;
  MutexLock lock(mu_);
  rules_.emplace_back(holder, extent);
}

void HolderPins::drop(const Holder& holder) {
  MutexLock lock(mu_);
  std::erase_if(rules_, [&](const auto& rule) { return rule.first == holder; });
}

bool HolderPins::empty() const {
  MutexLock lock(mu_);
  return rules_.empty();
}

std::vector<std::pair<BlockExtent, std::optional<Holder>>> HolderPins::split(
    BlockExtent freed) const {
  std::vector<std::pair<Holder, BlockExtent>> hits;
  {
    MutexLock lock(mu_);
    for (const auto& rule : rules_) {
      const BlockExtent& r = rule.second;
      if (r.start < freed.end() && freed.start < r.end()) hits.push_back(rule);
    }
  }
  if (hits.empty()) return {{freed, std::nullopt}};
  // Cut at every rule edge inside `freed`, then label each cut.
  std::vector<uint64_t> cuts{freed.start, freed.end()};
  for (const auto& [h, r] : hits) {
    if (r.start > freed.start) cuts.push_back(r.start);
    if (r.end() < freed.end()) cuts.push_back(r.end());
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::vector<std::pair<BlockExtent, std::optional<Holder>>> out;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    BlockExtent piece{cuts[i], cuts[i + 1] - cuts[i]};
    std::optional<Holder> owner;
    for (const auto& [h, r] : hits) {
      if (r.start <= piece.start && piece.end() <= r.end()) {
        owner = h;
        break;
      }
    }
    // Neighbouring pieces with the same label are merged: fewer entries.
    if (!out.empty() && out.back().second == owner && out.back().first.end() == piece.start) {
      out.back().first.count += piece.count;
    } else {
      out.emplace_back(piece, owner);
    }
  }
  return out;
}

}  // namespace sealfs
