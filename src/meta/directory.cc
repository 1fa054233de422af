#include "meta/directory.h"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "util/crc32c.h"
#include "util/log.h"

namespace sealfs {

namespace {

constexpr uint16_t kFirstEntry = sizeof(format::DiskDirBlockHeader);

format::DiskDirEntry load_entry(const std::byte* block, uint16_t offset) {
  format::DiskDirEntry e;
  std::memcpy(&e, block + offset, sizeof(e));
  return e;
}

void store_entry(std::byte* block, uint16_t offset, const format::DiskDirEntry& e) {
  std::memcpy(block + offset, &e, sizeof(e));
}

uint32_t used_size(const format::DiskDirEntry& e) {
  return e.ino.get() == 0 ? 0 : format::dir_entry_size(e.name_len);
}

[[noreturn]] void die(const char* what) {
  log().critical("directory block invariant broken: {}", what);
  std::abort();
}

}  // namespace

void dir_block_init(std::byte* block, uint64_t owner) {
  std::memset(block, 0, format::kBlockSize);
  format::DiskDirBlockHeader h{};
  h.magic.set(format::kDirBlockMagic);
  h.owner_ino.set(owner);
  std::memcpy(block, &h, sizeof(h));
  format::DiskDirEntry e{};
  e.rec_len.set(format::kBlockSize - kFirstEntry);
  store_entry(block, kFirstEntry, e);
  dir_block_seal(block);
}

void dir_block_seal(std::byte* block) {
  uint32_t zero = 0;
  std::memcpy(block + offsetof(format::DiskDirBlockHeader, crc), &zero, 4);
  format::le32 crc(crc32c_with_hole(block, format::kBlockSize,
                                    offsetof(format::DiskDirBlockHeader, crc)));
  std::memcpy(block + offsetof(format::DiskDirBlockHeader, crc), &crc, 4);
}

Status dir_block_verify(const std::byte* block, uint64_t owner) {
  format::DiskDirBlockHeader h;
  std::memcpy(&h, block, sizeof(h));
  if (h.magic.get() != format::kDirBlockMagic) {
    return Status(Code::kCorruption, "directory block: bad magic");
  }
  if (crc32c_with_hole(block, format::kBlockSize, offsetof(format::DiskDirBlockHeader, crc)) !=
      h.crc.get()) {
    return Status(Code::kBadCrc, "directory block: bad crc");
  }
  if (h.owner_ino.get() != owner) {
    return Status(Code::kCorruption,
                  "directory block owned by inode " + std::to_string(h.owner_ino.get()));
  }
  uint32_t offset = kFirstEntry;
  while (offset < format::kBlockSize) {
    if (format::kBlockSize - offset < sizeof(format::DiskDirEntry)) {
      return Status(Code::kCorruption, "directory entry header crosses the block end");
    }
    auto e = load_entry(block, static_cast<uint16_t>(offset));
    uint32_t rec = e.rec_len.get();
    if (rec < sizeof(format::DiskDirEntry) || rec % 8 != 0 || rec > format::kBlockSize - offset) {
      return Status(Code::kCorruption,
                    "directory entry at " + std::to_string(offset) + ": bad rec_len");
    }
    if (e.ino.get() != 0 && (e.name_len == 0 || used_size(e) > rec)) {
      return Status(Code::kCorruption,
                    "directory entry at " + std::to_string(offset) + ": bad name length");
    }
    offset += rec;
  }
  return Status::ok();
}

void dir_block_for_each(const std::byte* block,
                        const std::function<void(const DirBlockEntry&)>& fn) {
  uint32_t offset = kFirstEntry;
  while (offset < format::kBlockSize) {
    auto e = load_entry(block, static_cast<uint16_t>(offset));
    if (e.ino.get() != 0) {
      std::string_view name(reinterpret_cast<const char*>(block + offset + sizeof(e)), e.name_len);
      fn(DirBlockEntry{static_cast<uint16_t>(offset), e.ino.get(), e.type, name});
    }
    uint32_t rec = e.rec_len.get();
    if (rec == 0) die("rec_len 0 in a verified block");
    offset += rec;
  }
}

bool dir_entry_name_valid(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  return name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

Status dir_entry_damage(const DirBlockEntry& e, const std::string& what) {
  std::string shown;
  for (char c : e.name) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  return Status(Code::kCorruption,
                "entry '" + shown + "' at " + std::to_string(e.offset) + ": " + what);
}

Status dir_entry_check(const DirBlockEntry& e, uint64_t inode_count) {
  auto bad = [&](const std::string& what) { return dir_entry_damage(e, what); };
  if (!dir_entry_name_valid(e.name)) return bad("invalid name");
  if (e.ino > inode_count) return bad("inode " + std::to_string(e.ino) + " past the table");
  if (e.ino == format::kRootIno) return bad("names the root");
  switch (e.type) {
    case DT_REG: case DT_DIR: case DT_LNK: case DT_CHR: case DT_BLK: case DT_FIFO: case DT_SOCK:
      return Status::ok();
    default:
      return bad("unknown type " + std::to_string(e.type));
  }
}

std::optional<uint16_t> dir_block_insert(std::byte* block, std::string_view name, uint64_t ino,
                                         uint8_t type) {
  uint32_t need = format::dir_entry_size(static_cast<uint32_t>(name.size()));
  uint32_t offset = kFirstEntry;
  while (offset < format::kBlockSize) {
    auto e = load_entry(block, static_cast<uint16_t>(offset));
    uint32_t rec = e.rec_len.get();
    uint32_t used = used_size(e);
    if (rec - used >= need) {
      uint32_t at = offset;
      uint32_t new_rec = rec;
      if (used != 0) {
        e.rec_len.set(static_cast<uint16_t>(used));
        store_entry(block, static_cast<uint16_t>(offset), e);
        at = offset + used;
        new_rec = rec - used;
      }
      format::DiskDirEntry n{};
      n.ino.set(ino);
      n.rec_len.set(static_cast<uint16_t>(new_rec));
      n.name_len = static_cast<uint8_t>(name.size());
      n.type = type;
      store_entry(block, static_cast<uint16_t>(at), n);
      std::memcpy(block + at + sizeof(n), name.data(), name.size());
      // Clear the padding so images are deterministic.
      std::memset(block + at + sizeof(n) + name.size(), 0, need - sizeof(n) - name.size());
      return static_cast<uint16_t>(at);
    }
    offset += rec;
  }
  return std::nullopt;
}

void dir_block_remove(std::byte* block, uint16_t target) {
  uint32_t offset = kFirstEntry;
  uint32_t prev = 0;
  while (offset < format::kBlockSize && offset != target) {
    prev = offset;
    offset += load_entry(block, static_cast<uint16_t>(offset)).rec_len.get();
  }
  if (offset != target) die("removing an entry that does not exist");
  auto e = load_entry(block, target);
  if (prev == 0) {
    e.ino.set(0);
    e.name_len = 0;
    e.type = 0;
    store_entry(block, target, e);
    std::memset(block + target + sizeof(e), 0, e.rec_len.get() - sizeof(e));
    return;
  }
  auto p = load_entry(block, static_cast<uint16_t>(prev));
  p.rec_len.set(static_cast<uint16_t>(p.rec_len.get() + e.rec_len.get()));
  store_entry(block, static_cast<uint16_t>(prev), p);
  std::memset(block + target, 0, e.rec_len.get());
}

void dir_block_retarget(std::byte* block, uint16_t offset, uint64_t ino, uint8_t type) {
  auto e = load_entry(block, offset);
  if (e.ino.get() == 0) die("retargeting a free entry");
  e.ino.set(ino);
  e.type = type;
  store_entry(block, offset, e);
}

uint16_t dir_block_largest_free(const std::byte* block) {
  uint32_t best = 0;
  uint32_t offset = kFirstEntry;
  while (offset < format::kBlockSize) {
    auto e = load_entry(block, static_cast<uint16_t>(offset));
    uint32_t rec = e.rec_len.get();
    best = std::max(best, rec - used_size(e));
    offset += rec;
  }
  return static_cast<uint16_t>(best);
}

// DirIndex

uint32_t DirIndex::hash_of(std::string_view name) {
  const uint64_t h = std::hash<std::string_view>{}(name);
  return static_cast<uint32_t>(h ^ (h >> 32));
}

DirIndex::Entry DirIndex::make_entry(const DirLocation& loc, uint64_t name_at) {
  if (loc.ino > format::kMaxInodeCount) die("inode number past kMaxInodeCount in the index");
  if (loc.offset >= format::kBlockSize || loc.type > 0xf) die("entry offset or type out of range");
  if (name_at >= kErased) die("a directory's names past 2^48 bytes in the index");
  Entry e;
  e.ino = static_cast<uint32_t>(loc.ino);
  e.block_index = loc.block_index;
  set_name_at(e, name_at);
  e.offset_and_type = static_cast<uint16_t>(loc.offset << 4 | loc.type);
  return e;
}

DirLocation DirIndex::location_of(const Entry& e) {
  return DirLocation{e.ino, e.block_index, static_cast<uint16_t>(e.offset_and_type >> 4),
                     static_cast<uint8_t>(e.offset_and_type & 0xf)};
}

std::string_view DirIndex::name_of(const Entry& e) const {
  const uint64_t at = name_at(e);
  const auto len = static_cast<unsigned char>(names_[at]);
  return std::string_view(names_).substr(at + 1, len);
}

size_t DirIndex::bucket_of(std::string_view name, uint32_t hash) const {
  if (buckets_.empty()) return SIZE_MAX;
  // At most 3/4 of the buckets are used, so a probe meets an empty one.
  for (size_t i = slot_for(hash);; i = i + 1 == buckets_.size() ? 0 : i + 1) {
    const Bucket& b = buckets_[i];
    if (b.entry == kEmpty) return SIZE_MAX;
    if (b.entry != kTombstone && b.hash == hash && name_of(entries_[b.entry]) == name) return i;
  }
}

std::optional<DirLocation> DirIndex::find(std::string_view name) const {
  const size_t b = bucket_of(name, hash_of(name));
  if (b == SIZE_MAX) return std::nullopt;
  return location_of(entries_[buckets_[b].entry]);
}

void DirIndex::set(std::string_view name, const DirLocation& loc) {
  const uint32_t hash = hash_of(name);
  const size_t b = bucket_of(name, hash);
  if (b != SIZE_MAX) {
    Entry& e = entries_[buckets_[b].entry];
    e = make_entry(loc, name_at(e));
  } else {
    append(name, hash, loc);
  }
}

bool DirIndex::add(std::string_view name, const DirLocation& loc) {
  const uint32_t hash = hash_of(name);
  if (bucket_of(name, hash) != SIZE_MAX) return false;
  append(name, hash, loc);
  return true;
}

void DirIndex::append(std::string_view name, uint32_t hash, const DirLocation& loc) {
  if (name.size() > format::kNameMax) die("name longer than kNameMax in the index");
  if ((used_buckets_ + 1) * 4 > buckets_.size() * 3) {
    rebuild(std::max<size_t>(8, (live_ + 1) * 2));
  }
  // Entry numbers stop below the bucket markers: 4 billion names in one
  // directory would take over 100 GiB of DRAM (bad_alloc) before this.
  if (entries_.size() >= kTombstone) die("directory index full");
  size_t i = slot_for(hash);
  while (buckets_[i].entry != kEmpty && buckets_[i].entry != kTombstone) {
    i = i + 1 == buckets_.size() ? 0 : i + 1;
  }
  if (buckets_[i].entry == kEmpty) ++used_buckets_;
  buckets_[i] = Bucket{static_cast<uint32_t>(entries_.size()), hash};
  entries_.push_back(make_entry(loc, names_.size()));
  names_.push_back(static_cast<char>(name.size()));
  names_.append(name);
  ++live_;
}

bool DirIndex::erase(std::string_view name) {
  const size_t b = bucket_of(name, hash_of(name));
  if (b == SIZE_MAX) return false;
  set_name_at(entries_[buckets_[b].entry], kErased);
  buckets_[b].entry = kTombstone;
  if (--live_ == 0) {
    // Everything is a tombstone: start over (largest_free stays).
    std::vector<Entry>().swap(entries_);
    std::vector<Bucket>().swap(buckets_);
    std::string().swap(names_);
    used_buckets_ = 0;
  } else if (entries_.size() - live_ > live_ + kErasedBeforeRebuild) {
    // Erased entries and their names stay until a rebuild, and a name
    // added again reuses its tombstone without counting as a new bucket:
    // a directory where one name comes and goes (a journal, a lock file)
    // would grow its index for ever. Rebuilding once erased entries
    // outnumber live ones keeps it in proportion, at O(1) amortized.
    rebuild(std::max<size_t>(8, live_ * 2));
  }
  return true;
}

void DirIndex::shrink_to_fit() {
  if (live_ == 0) {
    std::vector<Entry>().swap(entries_);
    std::vector<Bucket>().swap(buckets_);
    std::string().swap(names_);
    used_buckets_ = 0;
  } else {
    rebuild(live_ + live_ / 3 + 1);
  }
  largest_free.shrink_to_fit();
}

void DirIndex::reserve(size_t names, size_t name_bytes) {
  if (!entries_.empty()) die("reserve on an index in use");
  if (names == 0) return;
  // As shrink_to_fit sizes them: a load just under 3/4 once all are in.
  rebuild(std::max<size_t>(8, names + names / 3 + 1));
  entries_.reserve(names);
  names_.reserve(names + name_bytes);
}

void DirIndex::rebuild(size_t bucket_count) {
  size_t name_bytes = 0;
  for (const Entry& e : entries_) {
    if (name_at(e) != kErased) name_bytes += 1 + name_of(e).size();
  }
  std::vector<Entry> kept;
  kept.reserve(live_);
  std::string names;
  names.reserve(name_bytes);
  for (const Entry& e : entries_) {
    if (name_at(e) == kErased) continue;
    const std::string_view name = name_of(e);
    Entry moved = e;
    set_name_at(moved, names.size());
    kept.push_back(moved);
    names.push_back(static_cast<char>(name.size()));
    names.append(name);
  }
  entries_.swap(kept);
  names_.swap(names);
  std::vector<Bucket>(bucket_count).swap(buckets_);
  used_buckets_ = 0;
  for (size_t n = 0; n < entries_.size(); ++n) {
    const uint32_t hash = hash_of(name_of(entries_[n]));
    size_t i = slot_for(hash);
    while (buckets_[i].entry != kEmpty) i = i + 1 == buckets_.size() ? 0 : i + 1;
    buckets_[i] = Bucket{static_cast<uint32_t>(n), hash};
    ++used_buckets_;
  }
}

}  // namespace sealfs
