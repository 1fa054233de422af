#include "alloc/free_space.h"

#include <cstdio>
#include <cstdlib>
#include <iterator>

namespace sealfs {

namespace {

[[noreturn]] void broken(const char* what, uint64_t start, uint64_t count) {
  std::fprintf(stderr, "sealfs FreeSpace invariant broken: %s [%llu, +%llu)\n", what,
               static_cast<unsigned long long>(start), static_cast<unsigned long long>(count));
  std::abort();
}

}  // namespace

FreeSpace::FreeSpace(uint64_t align_blocks) : align_(align_blocks) {
  if (align_ == 0 || (align_ & (align_ - 1)) != 0) broken("alignment not a power of two", 0, align_);
}

void FreeSpace::add_extent_(uint64_t start, uint64_t count) {
  by_offset_.emplace_hint(by_offset_.end(), start, count);
  by_size_.emplace(count, start);
  free_blocks_ += count;
  if (!holds_aligned(start, count, align_)) {
    fragments_.emplace(count, start);
    return;
  }
  uint64_t head_end = align_up(start);
  uint64_t tail_start = align_down(start + count);
  if (head_end > start) pieces_.emplace(head_end - start, start);
  if (start + count > tail_start) pieces_.emplace(start + count - tail_start, tail_start);
}

void FreeSpace::drop_extent_(std::map<uint64_t, uint64_t>::iterator it) {
  uint64_t start = it->first;
  uint64_t count = it->second;
  by_size_.erase({count, start});
  free_blocks_ -= count;
  if (!holds_aligned(start, count, align_)) {
    fragments_.erase({count, start});
  } else {
    uint64_t head_end = align_up(start);
    uint64_t tail_start = align_down(start + count);
    if (head_end > start) pieces_.erase({head_end - start, start});
    if (start + count > tail_start) pieces_.erase({start + count - tail_start, tail_start});
  }
  by_offset_.erase(it);
}

std::map<uint64_t, uint64_t>::const_iterator FreeSpace::containing_(uint64_t block) const {
  auto it = by_offset_.upper_bound(block);
  if (it == by_offset_.begin()) return by_offset_.end();
  --it;
  return block < it->first + it->second ? it : by_offset_.end();
}

void FreeSpace::insert(uint64_t start, uint64_t count) {
  if (count == 0 || start + count < start) broken("insert of an empty or wrapping range", start, count);
  uint64_t end = start + count;
  auto next = by_offset_.upper_bound(start);
  if (next != by_offset_.end() && next->first < end) broken("insert overlaps a free extent", start, count);
  if (next != by_offset_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second > start) broken("insert overlaps a free extent", start, count);
    if (prev->first + prev->second == start) {
      start = prev->first;
      drop_extent_(prev);
    }
  }
  if (next != by_offset_.end() && next->first == end) {
    end += next->second;
    drop_extent_(next);
  }
  add_extent_(start, end - start);
}

void FreeSpace::append_run(uint64_t start, uint64_t count) {
  if (count == 0) return;
  if (!by_offset_.empty()) {
    auto last = std::prev(by_offset_.end());
    uint64_t last_end = last->first + last->second;
    if (last_end > start) broken("append_run out of order", start, count);
    if (last_end == start) {
      start = last->first;
      count += last->second;
      drop_extent_(last);
    }
  }
  add_extent_(start, count);
}

void FreeSpace::remove(uint64_t start, uint64_t count) {
  auto cit = containing_(start);
  if (count == 0 || cit == by_offset_.end() || start + count > cit->first + cit->second) {
    broken("remove of a range that is not free", start, count);
  }
  auto it = by_offset_.find(cit->first);
  uint64_t extent_start = it->first;
  uint64_t extent_end = it->first + it->second;
  drop_extent_(it);
  if (start > extent_start) add_extent_(extent_start, start - extent_start);
  if (extent_end > start + count) add_extent_(start + count, extent_end - (start + count));
}

std::optional<FreeSpace::Extent> FreeSpace::choose(uint64_t count, uint64_t goal,
                                                   uint64_t min_count) const {
  if (count == 0) return std::nullopt;
  if (min_count == 0 || min_count > count) min_count = count;
  return count >= align_ ? choose_large_(count, goal, min_count)
                         : choose_small_(count, goal, min_count);
}

std::optional<FreeSpace::Extent> FreeSpace::choose_large_(uint64_t count, uint64_t goal,
                                                          uint64_t min_count) const {
  // Near the goal, if an aligned run fits in the extent holding it.
  if (goal != 0) {
    auto it = containing_(goal);
    if (it != by_offset_.end()) {
      uint64_t aligned = align_up(goal);
      if (aligned >= goal && aligned + count <= it->first + it->second) return Extent{aligned, count};
    }
  }
  // Best fit among extents that hold an aligned run. An extent of at least
  // count + align - 1 blocks always does, so the walk ends there at the latest.
  for (auto it = by_size_.lower_bound({count, 0}); it != by_size_.end(); ++it) {
    if (holds_aligned(it->second, it->first, count)) return Extent{align_up(it->second), count};
  }
  // No aligned fit anywhere: plain best fit.
  auto best = by_size_.lower_bound({count, 0});
  if (best != by_size_.end()) return Extent{best->second, count};
  return largest_piece_(min_count);
}

std::optional<FreeSpace::Extent> FreeSpace::choose_small_(uint64_t count, uint64_t goal,
                                                          uint64_t min_count) const {
  if (goal != 0) {
    auto it = containing_(goal);
    if (it != by_offset_.end() && goal + count <= it->first + it->second) return Extent{goal, count};
  }
  // A fragment that can never serve an aligned request anyway.
  auto frag = fragments_.lower_bound({count, 0});
  if (frag != fragments_.end()) return Extent{frag->second, count};
  // An unaligned head or tail of an extent that holds aligned chunks. Carve
  // next to the chunk, so what stays of the piece is a fragment on its own.
  auto piece = pieces_.lower_bound({count, 0});
  if (piece != pieces_.end()) {
    uint64_t piece_start = piece->second;
    bool is_head = by_offset_.count(piece_start) != 0;
    return is_head ? Extent{piece_start + piece->first - count, count} : Extent{piece_start, count};
  }
  // Every extent big enough holds aligned chunks: break the first chunk of
  // the smallest one, from its start. A file that grows by small writes then
  // finds its next goal free right behind it and stays one extent, filling
  // the chunk forwards (from the chunk's end it would grow backwards: one
  // extent per write).
  auto best = by_size_.lower_bound({count, 0});
  if (best != by_size_.end()) {
    uint64_t chunk = align_up(best->second);
    if (chunk + count <= best->second + best->first) return Extent{chunk, count};
    return Extent{best->second + best->first - count, count};
  }
  return largest_piece_(min_count);
}

std::optional<FreeSpace::Extent> FreeSpace::largest_piece_(uint64_t min_count) const {
  if (by_size_.empty()) return std::nullopt;
  auto largest = std::prev(by_size_.end());
  uint64_t length = largest->first;
  uint64_t start = largest->second;
  if (length < min_count) return std::nullopt;
  // Keep what can stay aligned aligned: the whole aligned chunks of the piece.
  uint64_t aligned = align_up(start);
  uint64_t aligned_end = align_down(start + length);
  if (min_count >= align_ && aligned_end > aligned && aligned_end - aligned >= min_count) {
    return Extent{aligned, aligned_end - aligned};
  }
  return Extent{start, length};
}

bool FreeSpace::is_free(uint64_t block) const { return containing_(block) != by_offset_.end(); }

bool FreeSpace::none_free(uint64_t start, uint64_t count) const {
  auto next = by_offset_.upper_bound(start);
  if (next != by_offset_.end() && next->first < start + count) return false;
  if (next != by_offset_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second > start) return false;
  }
  return true;
}

std::vector<FreeSpace::Extent> FreeSpace::extents() const {
  std::vector<Extent> out;
  out.reserve(by_offset_.size());
  for (const auto& [start, count] : by_offset_) out.push_back({start, count});
  return out;
}

void FreeSpace::check_invariants() const {
  uint64_t total = 0;
  size_t fragments = 0;
  size_t pieces = 0;
  uint64_t previous_end = 0;
  bool first = true;
  for (const auto& [start, count] : by_offset_) {
    if (count == 0) broken("empty extent", start, count);
    if (!first && start <= previous_end) broken("extents touch or overlap", start, count);
    first = false;
    previous_end = start + count;
    total += count;
    if (by_size_.count({count, start}) == 0) broken("extent missing from size index", start, count);
    if (!holds_aligned(start, count, align_)) {
      if (fragments_.count({count, start}) == 0) broken("fragment not indexed", start, count);
      ++fragments;
    } else {
      uint64_t head_end = align_up(start);
      uint64_t tail_start = align_down(start + count);
      if (head_end > start) {
        if (pieces_.count({head_end - start, start}) == 0) broken("head not indexed", start, count);
        ++pieces;
      }
      if (start + count > tail_start) {
        if (pieces_.count({start + count - tail_start, tail_start}) == 0) {
          broken("tail not indexed", start, count);
        }
        ++pieces;
      }
    }
  }
  if (total != free_blocks_) broken("free block count drifted", total, free_blocks_);
  if (by_size_.size() != by_offset_.size()) broken("size index has stale entries", 0, by_size_.size());
  if (fragments_.size() != fragments) broken("fragment index has stale entries", 0, fragments);
  if (pieces_.size() != pieces) broken("piece index has stale entries", 0, pieces);
}

}  // namespace sealfs
