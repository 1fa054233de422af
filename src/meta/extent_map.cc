#include "meta/extent_map.h"

#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>

#include "util/crc32c.h"
#include "util/log.h"

namespace sealfs {

namespace {
[[noreturn]] void die(const std::string& what) {
  log().critical("extent map invariant broken: {}", what);
  std::abort();
}
}  // namespace

const ExtentMap::Map& ExtentMap::view() const {
  static const Map kNoExtents;
  return rep_ ? rep_->map : kNoExtents;
}

ExtentMap::Rep& ExtentMap::rep() {
  if (!rep_) rep_ = std::make_unique<Rep>();
  return *rep_;
}

void ExtentMap::forget_changes() {
  if (!rep_) return;
  if (rep_->map.empty()) {
    rep_.reset();
  } else {
    std::vector<Change>().swap(rep_->changes);
  }
}

const Extent* ExtentMap::find(uint64_t file_block) const {
  const Map& map = view();
  auto it = map.upper_bound(file_block);
  if (it == map.begin()) return nullptr;
  --it;
  return file_block < it->second.file_end() ? &it->second : nullptr;
}

ExtentMap::Map::const_iterator ExtentMap::first_ending_after(uint64_t file_block) const {
  const Map& map = view();
  auto it = map.upper_bound(file_block);
  if (it != map.begin()) {
    auto prev = std::prev(it);
    if (file_block < prev->second.file_end()) return prev;
  }
  return it;
}

void ExtentMap::remember(uint64_t key) {
  Rep& r = rep();
  auto it = r.map.find(key);
  r.changes.push_back({key, it == r.map.end() ? std::nullopt : std::optional<Extent>(it->second)});
}

ExtentMap::Map::iterator ExtentMap::erase(Map::iterator it) {
  remember(it->first);
  return rep_->map.erase(it);
}

void ExtentMap::undo_to(size_t mark) {
  if (!rep_) return;  // no log: nothing was changed since it was forgotten
  Rep& r = *rep_;
  while (r.changes.size() > mark) {
    Change c = std::move(r.changes.back());
    r.changes.pop_back();
    auto it = r.map.find(c.key);
    if (it != r.map.end()) {
      r.mapped_blocks -= it->second.length;
      r.map.erase(it);
    }
    if (c.before) {
      r.map.emplace(c.key, *c.before);
      r.mapped_blocks += c.before->length;
    }
  }
}

void ExtentMap::split_at(uint64_t file_block) {
  if (!rep_) return;  // nothing mapped, nothing to split
  Map& map = rep_->map;
  auto it = map.upper_bound(file_block);
  if (it == map.begin()) return;
  --it;
  Extent& e = it->second;
  if (file_block <= e.file_block || file_block >= e.file_end()) return;
  remember(it->first);
  remember(file_block);
  Extent tail = e;
  uint64_t head_len = file_block - e.file_block;
  tail.file_block = file_block;
  tail.region_block = e.region_block + head_len;
  tail.length = e.length - head_len;
  e.length = head_len;
  map.emplace(file_block, tail);
}

void ExtentMap::merge_around(uint64_t file_block) {
  if (!rep_) return;
  Map& map = rep_->map;
  auto it = map.find(file_block);
  if (it == map.end()) return;
  // Merge with the next extent.
  auto next = std::next(it);
  if (next != map.end() && next->second.file_block == it->second.file_end() &&
      next->second.region_block == it->second.region_end() &&
      next->second.unwritten == it->second.unwritten &&
      it->second.length + next->second.length <= UINT32_MAX) {
    remember(it->first);
    it->second.length += next->second.length;
    erase(next);
  }
  // Merge into the previous extent.
  if (it != map.begin()) {
    auto prev = std::prev(it);
    if (prev->second.file_end() == it->second.file_block &&
        prev->second.region_end() == it->second.region_block &&
        prev->second.unwritten == it->second.unwritten &&
        prev->second.length + it->second.length <= UINT32_MAX) {
      remember(prev->first);
      prev->second.length += it->second.length;
      erase(it);
    }
  }
}

void ExtentMap::insert(const Extent& extent) {
  insert_as_stored(extent);
  merge_around(extent.file_block);
}

void ExtentMap::insert_as_stored(const Extent& extent) {
  if (extent.length == 0) die("empty extent");
  Rep& r = rep();
  auto it = first_ending_after(extent.file_block);
  if (it != r.map.end() && it->second.file_block < extent.file_end()) {
    die("overlapping insert at file block " + std::to_string(extent.file_block));
  }
  remember(extent.file_block);
  r.map.emplace(extent.file_block, extent);
  r.mapped_blocks += extent.length;
}

std::vector<Extent> ExtentMap::punch(uint64_t file_block, uint64_t count) {
  std::vector<Extent> removed;
  if (count == 0 || !rep_) return removed;
  uint64_t end = file_block + count;
  split_at(file_block);
  split_at(end);
  Rep& r = *rep_;
  auto it = r.map.lower_bound(file_block);
  while (it != r.map.end() && it->second.file_block < end) {
    removed.push_back(it->second);
    r.mapped_blocks -= it->second.length;
    it = erase(it);
  }
  return removed;
}

void ExtentMap::set_unwritten(uint64_t file_block, uint64_t count, bool unwritten) {
  if (count == 0 || !rep_) return;
  uint64_t end = file_block + count;
  split_at(file_block);
  split_at(end);
  Map& map = rep_->map;
  std::vector<uint64_t> touched;
  for (auto it = map.lower_bound(file_block); it != map.end() && it->second.file_block < end;
       ++it) {
    if (it->second.unwritten != unwritten) {
      remember(it->first);
      it->second.unwritten = unwritten;
    }
    touched.push_back(it->first);
  }
  // Merge back, right to left so keys stay valid.
  for (auto k = touched.rbegin(); k != touched.rend(); ++k) merge_around(*k);
  if (!touched.empty()) {
    auto before = map.upper_bound(touched.front());
    if (before != map.begin()) merge_around(std::prev(before)->first);
  }
  auto after = first_ending_after(end);
  if (after != map.end()) {
    if (after != map.begin()) merge_around(std::prev(after)->first);
  }
}

uint64_t ExtentMap::end_block() const {
  const Map& map = view();
  return map.empty() ? 0 : std::prev(map.end())->second.file_end();
}

uint64_t ExtentMap::goal_for(uint64_t file_block) const {
  const Map& map = view();
  auto it = map.upper_bound(file_block);
  if (it == map.begin()) return 0;
  --it;
  const Extent& e = it->second;
  if (file_block >= e.file_end()) return e.region_end() + (file_block - e.file_end());
  return e.region_block + (file_block - e.file_block);
}

std::vector<Extent> ExtentMap::to_vector() const {
  const Map& map = view();
  std::vector<Extent> out;
  out.reserve(map.size());
  for (const auto& [k, e] : map) out.push_back(e);
  return out;
}

format::DiskExtent encode_extent(const Extent& extent) {
  format::DiskExtent d{};
  d.file_block.set(extent.file_block);
  d.region_block.set(extent.region_block);
  d.length.set(static_cast<uint32_t>(extent.length));
  d.flags.set(extent.unwritten ? uint32_t{format::kExtentUnwritten} : 0u);
  return d;
}

Result<Extent> decode_extent(const format::DiskExtent& disk, uint64_t data_start,
                             uint64_t data_end) {
  Extent e;
  e.file_block = disk.file_block.get();
  e.region_block = disk.region_block.get();
  e.length = disk.length.get();
  uint32_t flags = disk.flags.get();
  if ((flags & ~format::kExtentFlagsKnown) != 0) {
    return Status(Code::kCorruption, "extent with unknown flags " + std::to_string(flags));
  }
  e.unwritten = (flags & format::kExtentUnwritten) != 0;
  if (e.length == 0) return Status(Code::kCorruption, "extent of length 0");
  if (e.region_block < data_start || e.region_block >= data_end ||
      e.length > data_end - e.region_block) {
    return Status(Code::kCorruption, "extent [" + std::to_string(e.region_block) + ", +" +
                                         std::to_string(e.length) +
                                         ") outside the data area");
  }
  if (e.file_block > (UINT64_MAX >> format::kBlockShift) - e.length) {
    return Status(Code::kCorruption, "extent file block out of range");
  }
  return e;
}

void encode_extent_block(std::byte* block, uint64_t owner_ino, uint64_t next_block,
                         std::span<const format::DiskExtent> extents) {
  if (extents.size() > format::kExtentsPerBlock) die("too many extents for one block");
  std::memset(block, 0, format::kBlockSize);
  format::DiskExtentBlockHeader h{};
  h.magic.set(format::kExtentBlockMagic);
  h.owner_ino.set(owner_ino);
  h.next_block.set(next_block);
  h.count.set(static_cast<uint32_t>(extents.size()));
  std::memcpy(block, &h, sizeof(h));
  if (!extents.empty()) {
    std::memcpy(block + sizeof(h), extents.data(), extents.size() * sizeof(format::DiskExtent));
  }
  uint32_t crc = crc32c_with_hole(block, format::kBlockSize,
                                  offsetof(format::DiskExtentBlockHeader, crc));
  h.crc.set(crc);
  std::memcpy(block, &h, sizeof(h));
}

Result<ExtentBlockView> decode_extent_block(const std::byte* block, uint64_t owner_ino) {
  format::DiskExtentBlockHeader h;
  std::memcpy(&h, block, sizeof(h));
  if (h.magic.get() != format::kExtentBlockMagic) {
    return Status(Code::kCorruption, "extent block: bad magic");
  }
  if (crc32c_with_hole(block, format::kBlockSize, offsetof(format::DiskExtentBlockHeader, crc)) !=
      h.crc.get()) {
    return Status(Code::kBadCrc, "extent block: bad crc");
  }
  if (h.owner_ino.get() != owner_ino) {
    return Status(Code::kCorruption, "extent block owned by inode " +
                                         std::to_string(h.owner_ino.get()));
  }
  uint32_t count = h.count.get();
  if (count > format::kExtentsPerBlock) {
    return Status(Code::kCorruption, "extent block: count " + std::to_string(count));
  }
  ExtentBlockView view;
  view.next_block = h.next_block.get();
  view.extents.resize(count);
  if (count > 0) {
    std::memcpy(view.extents.data(), block + sizeof(h), count * sizeof(format::DiskExtent));
  }
  return view;
}

}  // namespace sealfs
