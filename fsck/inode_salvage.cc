// Phase 3: may an inode slot whose crc fails be kept?
//
// The crc covers the whole slot, so a failing one says that some byte
// changed, never which. What fsck can do is check every field that
// something else on the image vouches for: the block map against the
// bitmap, the overflow chain and the xattr store against the owner number
// in their blocks, the block count against the map (or, one bit away from
// it, the map against the count: block_count_flip below), a symlink's length
// against the zeros after its target, a directory's blocks against their
// headers, a regular file's size against its last written block (the
// daemon keeps no written block past EOF and zeros the rest of the last
// one). A slot that passes all of it has its crc resealed and is kept
// (inode_bad_crc_salvaged); what no check can vouch for (owner, group,
// permissions, times, the user's flags, a size that only grew, whether an
// extent is written, where a sparse file's extent lies inside its hole) is
// kept as found, which the report says. Later phases check the kept inode
// further: it loses every cross-link, to another kept inode, to the map
// of an inode phase 3 cleared and to blocks the holder table quarantines
// too (phase 4), and a name whose type disagrees with its mode (phase 6),
// and is cleared then.
#include <sys/stat.h>

#include <cstring>
#include <set>
#include <string>

#include "fsck/context.h"
#include "meta/directory.h"
#include "meta/filesystem_impl.h"  // kMaxFileSize
#include "meta/inode.h"
#include "meta/xattr.h"

namespace sealfs::fsck {

namespace {

bool all_zero(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

// The bytes after a symlink target, which the daemon keeps zero: a size
// that shrank leaves the rest of the target there, from the first byte on
// (a target holds no NUL). One bit set further on is a flip in bytes
// nothing reads (zeroed when the slot is kept). Not for an inline file,
// whose bytes may be zeros: one that shrank past a zero byte would leave
// a single bit of its data further on, which this would take for a flip.
bool tail_clean(const void* bytes, uint64_t size, uint64_t room) {
  const auto* b = static_cast<const unsigned char*>(bytes);
  uint64_t set = 0, at = 0;
  for (uint64_t i = size; i < room; ++i) {
    if (b[i] == 0) continue;
    ++set;
    at = i;
  }
  return set == 0 || (set == 1 && at > size && (b[at] & (b[at] - 1)) == 0);
}

// "" when the target is a string the daemon stores: no NUL in its bytes,
// zeros after them to the end of `room`.
std::string target_problem(const char* bytes, uint64_t size, uint64_t room) {
  for (uint64_t i = 0; i < size; ++i) {
    if (bytes[i] == '\0') return "a NUL inside the symlink target";
  }
  if (!tail_clean(bytes, size, room)) return "bytes after the symlink target";
  return "";
}

std::string blocks_marked(Context& ctx, uint64_t start, uint64_t count, const char* what) {
  for (uint64_t b = start; b < start + count; ++b) {
    if (!ctx.image.bit(b)) {
      return std::string(what) + " block " + std::to_string(b) + " is free in the bitmap";
    }
  }
  return "";
}

// The block map: the overflow chain (owned by `ino`, no block empty, as
// many extents as the count says), every extent inside the data area and
// in file order, every block marked used. Counts the blocks into *owned.
std::string map_problem(Context& ctx, uint64_t ino, const DecodedInode& d,
                        std::vector<Extent>* extents, uint64_t* owned) {
  const uint64_t data_end = ctx.geo().data_start + ctx.geo().data_blocks;
  std::vector<format::DiskExtent> raw = d.inline_extents;
  std::set<uint64_t> seen;
  for (uint64_t next = d.extent_block; next != 0;) {
    if (!ctx.image.in_data_area(next) || !seen.insert(next).second ||
        raw.size() >= d.extent_count) {
      return "overflow chain at block " + std::to_string(next) + " out of place";
    }
    auto view = decode_extent_block(ctx.image.read_block(next), ino);
    if (!view.is_ok()) return view.status().message() + " at block " + std::to_string(next);
    if (view->extents.empty()) return "empty overflow block " + std::to_string(next);
    if (auto bad = blocks_marked(ctx, next, 1, "overflow"); !bad.empty()) return bad;
    ++*owned;
    raw.insert(raw.end(), view->extents.begin(), view->extents.end());
    next = view->next_block;
  }
  if (raw.size() != d.extent_count) return "extent count disagrees with the extents stored";
  uint64_t prev_end = 0;
  for (const auto& de : raw) {
    auto e = decode_extent(de, ctx.geo().data_start, data_end);
    if (!e.is_ok()) return e.status().message();
    if (e->file_block < prev_end) return "extents overlap or are out of order";
    if (auto bad = blocks_marked(ctx, e->region_block, e->length, "data"); !bad.empty()) return bad;
    prev_end = e->file_end();
    *owned += e->length;
    extents->push_back(*e);
  }
  return "";
}

std::string directory_problem(Context& ctx, uint64_t ino, uint64_t size,
                              const std::vector<Extent>& extents) {
  uint64_t expect = 0;
  for (const Extent& e : extents) {
    if (e.file_block != expect || e.unwritten) return "a hole or unwritten extent in a directory";
    for (uint64_t i = 0; i < e.length; ++i) {
      Status s = dir_block_verify(ctx.image.read_block(e.region_block + i), ino);
      if (!s.is_ok()) return s.message() + " at block " + std::to_string(e.region_block + i);
    }
    expect = e.file_end();
  }
  if (size != expect * format::kBlockSize) return "directory size disagrees with its blocks";
  return "";
}

std::string regular_problem(Context& ctx, uint64_t size, const std::vector<Extent>& extents) {
  if (size > kMaxFileSize) return "size beyond the largest file";
  const uint64_t eof_blocks = (size + format::kBlockSize - 1) / format::kBlockSize;
  const uint64_t tail = size % format::kBlockSize;
  for (const Extent& e : extents) {
    if (e.unwritten) continue;
    if (e.file_end() > eof_blocks) return "a written block past the end of the file";
    const uint64_t last = size / format::kBlockSize;
    if (tail != 0 && e.file_block <= last && last < e.file_end()) {
      const std::byte* b = ctx.image.read_block(e.region_block + (last - e.file_block));
      if (!all_zero(b + tail, format::kBlockSize - tail)) return "bytes past the end of the file";
    }
  }
  return "";
}

std::string symlink_problem(Context& ctx, const format::DiskInode& disk, uint64_t size,
                            const std::vector<Extent>& extents) {
  if (extents.empty()) {
    if (size == 0) return "empty symlink";
    if (size > format::kInlineSymlinkMax) {
      // An unlinked inode may have lost its block (slot_unlinked).
      return slot_unlinked(disk.flags.get(), disk.nlink.get())
                 ? ""
                 : "symlink of " + std::to_string(size) + " bytes without its block";
    }
    return target_problem(disk.u.symlink, size, format::kInlineSymlinkMax);
  }
  if (size <= format::kInlineSymlinkMax || size >= format::kBlockSize) {
    return "symlink of " + std::to_string(size) + " bytes with a block";
  }
  const Extent& e = extents.front();
  if (extents.size() != 1 || e.file_block != 0 || e.length != 1 || e.unwritten) {
    return "symlink map is not one written block";
  }
  const auto* bytes = reinterpret_cast<const char*>(ctx.image.read_block(e.region_block));
  return target_problem(bytes, size, format::kBlockSize);
}

std::string type_problem(Context& ctx, uint64_t ino, const format::DiskInode& disk,
                         const DecodedInode& d, uint64_t* owned) {
  const InodeCore& c = d.core;
  if ((c.flags & format::kInodeInlineData) != 0) {
    if ((ctx.sb.feature_incompat & format::kFeatureIncompatInlineData) == 0) {
      return "inline data on an image without the feature";
    }
    // Its bytes may hold zeros: anything after its end may be data a
    // shrunk size cut off.
    return c.size <= format::kInlineDataMax &&
                   all_zero(disk.u.data + c.size, format::kInlineDataMax - c.size)
               ? ""
               : "bytes after the end of the inline file";
  }
  if (S_ISCHR(c.mode) || S_ISBLK(c.mode)) {
    // Its device number is all it holds and nothing vouches for it: a flip
    // there turns /dev/null (1,3) into /dev/mem (1,1) with the same open
    // permissions. Clearing costs the node only, never data.
    return "a device node, whose device number nothing can check";
  }
  if (!S_ISREG(c.mode) && !S_ISDIR(c.mode) && !S_ISLNK(c.mode)) {
    if (c.size != 0 || d.extent_count != 0 || d.extent_block != 0) {
      return "fifo or socket with a size or a block map";
    }
    return "";
  }
  if (c.rdev != 0) return "device number on a file, directory or symlink";
  if (S_ISLNK(c.mode) && d.extent_count == 0 && c.size <= format::kInlineSymlinkMax) {
    return symlink_problem(ctx, disk, c.size, {});
  }
  std::vector<Extent> extents;
  if (auto bad = map_problem(ctx, ino, d, &extents, owned); !bad.empty()) return bad;
  if (S_ISDIR(c.mode)) return directory_problem(ctx, ino, c.size, extents);
  if (S_ISLNK(c.mode)) return symlink_problem(ctx, disk, c.size, extents);
  return regular_problem(ctx, c.size, extents);
}

// The bytes of `u` that nothing reads, zeroed as the daemon writes them
// (decode_inode refuses a slot with any of them set): the extent slots past
// the inline extents (all of `u` for a device, fifo or socket: a flip there
// costs nothing), what follows an inline target (checked first by
// tail_clean). An inline file's tail is left: bytes there may be data a
// shrunk size cut off, and decode_inode refuses them.
void zero_unused_slot_bytes(format::DiskInode& disk) {
  const uint32_t mode = disk.mode.get();
  const uint64_t size = disk.size.get();
  const uint32_t count = disk.extent_count.get();
  if (!S_ISREG(mode) && !S_ISDIR(mode) && !S_ISLNK(mode)) {
    std::memset(static_cast<void*>(&disk.u), 0, sizeof(disk.u));
  } else if ((disk.flags.get() & format::kInodeInlineData) != 0) {
    return;
  } else if (S_ISLNK(mode) && count == 0 && size <= format::kInlineSymlinkMax) {
    std::memset(disk.u.symlink + size, 0, format::kInlineSymlinkMax - size);
  } else {
    for (size_t i = std::min<uint32_t>(count, format::kInlineExtents); i < format::kInlineExtents;
         ++i) {
      disk.u.extents[i] = format::DiskExtent{};
    }
  }
}

// Could one flipped bit of the slot's block map, rather than one of `blocks`,
// explain a block count `delta` (a power of two) above (`up`) or below the
// blocks the map owns? The map's inline extents and extent count are only as
// good as the slot, whose crc failed (the overflow blocks and the xattr
// store carry crcs of their own). `raw` is the slot as found.
bool map_flip_explains(Context& ctx, uint64_t ino, const format::DiskInode& raw,
                       const DecodedInode& d, uint64_t delta, bool up) {
  // An xattr pointer flipped to 0 drops the store's blocks from what the
  // slot vouches for: a store of this inode's at a block one bit away from
  // 0 (a power of two) explains a count that is higher.
  if (up && d.core.xattr_block == 0) {
    for (int bit = 0; bit < 64; ++bit) {
      const uint64_t head = uint64_t{1} << bit;
      if (!ctx.image.in_data_area(head)) continue;
      auto store = read_xattr_store(head, ino, [&](uint64_t b) -> const std::byte* {
        return ctx.image.in_data_area(b) ? ctx.image.read_block(b) : nullptr;
      });
      if (store.is_ok()) return true;
    }
  }
  const uint32_t count = raw.extent_count.get();
  const uint32_t in_slot = std::min<uint32_t>(count, format::kInlineExtents);
  // A count one bit lower than the truth drops extents whose bytes stay in
  // the slot (zero_unused_slot_bytes clears them before the decode).
  if ((raw.flags.get() & format::kInodeInlineData) == 0 && d.inline_bytes.empty() &&
      !all_zero(&raw.u.extents[in_slot],
                (format::kInlineExtents - in_slot) * sizeof(format::DiskExtent))) {
    return true;
  }
  if (delta > UINT32_MAX) return false;  // beyond what a 32-bit length can lose
  const uint64_t data_end = ctx.geo().data_start + ctx.geo().data_blocks;
  for (const format::DiskExtent& de : d.inline_extents) {
    const uint64_t length = de.length.get();
    if (!up) {
      // The stored length is `delta` longer than the truth: the blocks it
      // claims beyond the truth are marked used (map_problem checked), and
      // nothing here can tell whose they were.
      if ((length & delta) != 0 && length > delta) return true;
      continue;
    }
    if ((length & delta) != 0) continue;
    // The true extent was `delta` longer: every block it owned is marked
    // used in the bitmap and lies in the data area, and it overlaps no
    // other extent of the map in the file.
    const uint64_t start = de.region_block.get() + length;
    if (start > data_end || delta > data_end - start) continue;
    if (!blocks_marked(ctx, start, delta, "").empty()) continue;
    const uint64_t file_end = de.file_block.get() + length + delta;
    bool overlaps = false;
    for (const format::DiskExtent& other : d.inline_extents) {
      const uint64_t other_start = other.file_block.get();
      overlaps = overlaps || (other_start > de.file_block.get() && other_start < file_end);
    }
    if (!overlaps) return true;
  }
  return false;
}

// The block count is `owned` with one bit flipped, and no single flipped bit
// of the map explains the difference instead: the count is the bit that
// flipped. (A flip of one extent's length can make the map vouch for itself,
// so the count is not simply set from the map: see map_flip_explains.)
bool block_count_flip(Context& ctx, uint64_t ino, const format::DiskInode& raw,
                      const DecodedInode& d, uint64_t owned) {
  const uint64_t diff = d.core.blocks ^ owned;
  if (diff == 0 || (diff & (diff - 1)) != 0) return false;
  return !map_flip_explains(ctx, ino, raw, d, diff, d.core.blocks > owned);
}

// The flip cleared the inline-data flag of a small file: a regular file
// without extents whose slot holds more than one set bit (a slot without
// the flag holds none there, so one flip elsewhere cannot explain them) and
// zeros after `size`. Zeroing those bytes as unused would keep the file
// with its data gone.
bool inline_flag_flipped(Context& ctx, const format::DiskInode& raw) {
  if (!S_ISREG(raw.mode.get()) || (raw.flags.get() & format::kInodeInlineData) != 0 ||
      raw.extent_count.get() != 0 || raw.extent_block.get() != 0 ||
      (ctx.sb.feature_incompat & format::kFeatureIncompatInlineData) == 0 ||
      raw.size.get() > format::kInlineDataMax) {
    return false;
  }
  const auto* u = reinterpret_cast<const unsigned char*>(&raw.u);
  int bits = 0;
  for (size_t i = 0; i < sizeof(raw.u); ++i) {
    if (i >= raw.size.get() && u[i] != 0) return false;
    bits += __builtin_popcount(u[i]);
  }
  return bits > 1;
}

}  // namespace

std::string salvage_blocker(Context& ctx, uint64_t ino, format::DiskInode& slot,
                            std::string* corrected) {
  format::DiskInode disk = slot;
  const uint32_t raw_mode = disk.mode.get();
  const uint64_t raw_size = disk.size.get();
  if (S_ISLNK(raw_mode) && disk.extent_count.get() == 0 && raw_size != 0 &&
      raw_size <= format::kInlineSymlinkMax) {
    // Before the tail is zeroed: one flipped bit there is kept, more is not.
    if (auto bad = target_problem(disk.u.symlink, raw_size, format::kInlineSymlinkMax);
        !bad.empty()) {
      return bad;
    }
  }
  if (inline_flag_flipped(ctx, disk)) {
    disk.flags.set(disk.flags.get() | format::kInodeInlineData);
    *corrected = "inline-data flag restored (the slot holds the file's " +
                 std::to_string(disk.size.get()) + " bytes)";
  }
  zero_unused_slot_bytes(disk);
  seal_inode_crc(disk);
  auto d = decode_inode(disk, ino, ctx.geo().inode_count);
  if (!d.is_ok()) return d.status().message();
  const InodeCore& c = d->core;
  if (c.mode == 0) return "the slot says the inode is free";
  if ((c.mode & ~(S_IFMT | 07777u)) != 0) return "mode bits outside type and permissions";
  if ((c.flags & ~format::kInodeFlagsKnown) != 0) return "unknown flags";
  uint64_t owned = 0;
  if (auto bad = type_problem(ctx, ino, disk, *d, &owned); !bad.empty()) return bad;
  if (c.xattr_block != 0) {
    auto store = read_xattr_store(c.xattr_block, ino, [&](uint64_t b) -> const std::byte* {
      return ctx.image.in_data_area(b) ? ctx.image.read_block(b) : nullptr;
    });
    if (!store.is_ok()) return store.status().message();
    for (uint64_t b : store->blocks) {
      if (auto bad = blocks_marked(ctx, b, 1, "xattr"); !bad.empty()) return bad;
    }
    owned += store->blocks.size();
  }
  if (c.blocks != owned) {
    if (!block_count_flip(ctx, ino, slot, *d, owned)) {
      return "block count " + std::to_string(c.blocks) + " but " + std::to_string(owned) +
             " blocks owned";
    }
    if (!corrected->empty()) *corrected += ", ";
    *corrected += "block count " + std::to_string(c.blocks) + " set to the " +
                 std::to_string(owned) + " blocks owned (one bit apart, which no flipped bit " +
                 "of the map explains)";
    disk.blocks.set(owned);
    seal_inode_crc(disk);
  }
  slot = disk;
  return "";
}

}  // namespace sealfs::fsck
