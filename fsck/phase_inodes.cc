// Phase 3 (inode slots) and phase 4 (extent maps, overflow chains, xattr
// blocks, cross-linked blocks).
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "alloc/holder_table.h"
#include "fsck/context.h"
#include "meta/inode.h"
#include "meta/xattr.h"

namespace sealfs::fsck {

namespace {

bool has_block_map(uint32_t mode) {
  return S_ISREG(mode) || S_ISDIR(mode) || S_ISLNK(mode);
}

std::string octal(uint32_t mode) {
  char text[16];
  std::snprintf(text, sizeof(text), "0%o", mode);
  return text;
}

// The generation a kept inode takes: one past the highest value that one
// flipped bit could have turned into `found`, so that no handle to the file
// that was there, nor to any earlier one (generations only grow), matches
// it. Below 2^31 that is found + 2^31 + 1 (bit 31 may have been the one
// cleared); above, found with its highest clear bit set, plus one. All
// ones (no bit can have been cleared) and a sum past 2^32 wrap, as the
// daemon's own increments do.
uint32_t generation_past_any_flip(uint32_t found) {
  uint32_t ceiling = found;
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t mask = uint32_t{1} << bit;
    if ((found & mask) == 0) {
      ceiling = found | mask;
      break;
    }
  }
  return ceiling + 1;
}

void write_fresh_root(Context& ctx) {
  format::DiskInode old = ctx.image.read_inode(format::kRootIno);
  format::DiskInode root{};
  root.mode.set(S_IFDIR | 0755);
  root.nlink.set(2);
  root.generation.set(old.generation.get() + 1);
  uint64_t now = ctx.opt.now_ns;
  root.atime_ns.set(now);
  root.mtime_ns.set(now);
  root.ctime_ns.set(now);
  root.btime_ns.set(now);
  ctx.image.write_inode(format::kRootIno, root);
}

// A slot with the inline-data flag (format.h kInodeInlineData) whose other
// fields disagree with it. decode_inode refuses such a slot, which would
// clear the whole inode; each disagreement has a narrower repair, made here
// in `disk` (on the image too with -y) before the slot is decoded. A slot
// whose crc fails is left to the crc check.
void check_inline_slot(Context& ctx, uint64_t ino, format::DiskInode& disk) {
  if ((disk.flags.get() & format::kInodeInlineData) == 0 || disk.mode.get() == 0) return;
  format::DiskInode resealed = disk;
  seal_inode_crc(resealed);
  if (resealed.crc.get() != disk.crc.get()) return;
  bool edited = false;
  auto fixed = [&](const std::string& kind, const std::string& what, const std::string& done,
                   const std::string& would) {
    ctx.problem(Phase::kInodes, kind, ino, ctx.fix(what, done, would));
    edited = true;
  };
  const uint32_t mode = disk.mode.get();
  const bool feature = (ctx.sb.feature_incompat & format::kFeatureIncompatInlineData) != 0;
  const bool has_extents = disk.extent_count.get() != 0 || disk.extent_block.get() != 0;
  bool bytes = false;
  for (char c : disk.u.data) bytes |= c != 0;
  // Where `u` cannot be an inline file's bytes, or plainly is not, the flag
  // is the stray bit (an older image's unknown flag, a flipped bit) and is
  // all that goes: `u` keeps the extents or the symlink target it holds.
  // A regular file with extents keeps them unless it is small enough to be
  // inline on an image that has inline files: then the bytes in `u` are
  // taken as its data (inline_extents below). On an image with inline
  // files, a flagged file whose slot bytes are all zero is a sound inline
  // file (empty, or zeros).
  if (!S_ISREG(mode)) {
    fixed("inline_not_regular", "inline-data flag on an inode that is not a regular file",
          "flag cleared", "clear the flag");
    disk.flags.set(disk.flags.get() & ~format::kInodeInlineData);
  } else if ((has_extents && (!feature || disk.size.get() > format::kInlineDataMax)) ||
             (!feature && !has_extents && !bytes)) {
    fixed("inline_stray_flag",
          has_extents ? "inline-data flag on a file with extents"
                      : "inline-data flag on a file with no bytes in its slot",
          "flag cleared", "clear the flag");
    disk.flags.set(disk.flags.get() & ~format::kInodeInlineData);
  } else if (!feature) {
    // Bytes in a slot no daemon of this image reads as data: dropped, the
    // file kept (empty).
    fixed("inline_without_feature", "inline data on an image without the inline-data feature",
          "flag cleared, file emptied", "clear the flag and empty the file");
    disk.flags.set(disk.flags.get() & ~format::kInodeInlineData);
    disk.size.set(0);
    std::memset(disk.u.data, 0, sizeof(disk.u.data));
  } else {
    if (disk.size.get() > format::kInlineDataMax) {
      fixed("inline_size",
            "inline file of " + std::to_string(disk.size.get()) + " bytes (at most " +
                std::to_string(format::kInlineDataMax) + ")",
            "size set to " + std::to_string(format::kInlineDataMax),
            "set its size to " + std::to_string(format::kInlineDataMax));
      disk.size.set(format::kInlineDataMax);
    }
    if (has_extents) {
      // Small enough to be inline on an image with inline files: the bytes
      // in `u` are the file's and the extents the count claims are not
      // there (an overflow chain's blocks become leaks, freed in phase 5).
      fixed("inline_extents", "inline file with an extent count or overflow block",
            "extents dropped", "drop the extents");
      disk.extent_count.set(0);
      disk.extent_block.set(0);
    }
    const uint64_t size = disk.size.get();
    bool tail_dirty = false;
    for (uint64_t i = size; i < format::kInlineDataMax; ++i) tail_dirty |= disk.u.data[i] != 0;
    if (tail_dirty) {
      fixed("inline_tail", "bytes after the end of an inline file", "zeroed", "zero them");
      std::memset(disk.u.data + size, 0, format::kInlineDataMax - size);
    }
  }
  if (!edited) return;
  seal_inode_crc(disk);
  if (ctx.repair()) ctx.image.write_inode(ino, disk);
}

// Bytes of a crc-valid slot that the daemon never leaves set (decode_inode
// refuses the slot while they are): repaired here, where the fix costs
// nothing, before the decode would clear the inode. A regular file without
// extents whose slot holds what looks like inline data lost its flag (the
// bytes are served as its data again); any other stray bytes are zeroed, as
// a device number on an inode that is no device is. Runs after
// check_inline_slot.
void check_slot_bytes(Context& ctx, uint64_t ino, format::DiskInode& disk) {
  const uint32_t mode = disk.mode.get();
  if (mode == 0) return;
  format::DiskInode resealed = disk;
  seal_inode_crc(resealed);
  if (resealed.crc.get() != disk.crc.get()) return;
  bool edited = false;
  if (disk.rdev.get() != 0 && !S_ISCHR(mode) && !S_ISBLK(mode)) {
    ctx.problem(Phase::kInodes, "rdev_not_device", ino,
                ctx.fix("device number " + std::to_string(disk.rdev.get()) +
                            " on an inode that is no device",
                        "cleared", "clear it"));
    disk.rdev.set(0);
    edited = true;
  }
  if (!has_block_map(mode) && (disk.size.get() != 0 || disk.extent_count.get() != 0 ||
                              disk.extent_block.get() != 0)) {
    // The blocks it seemed to map are no one's then: leaks, freed in phase 5.
    ctx.problem(Phase::kInodes, "special_extents", ino,
                ctx.fix("device, fifo or socket with a size or a block map",
                        "size and map dropped", "drop the size and the map"));
    disk.size.set(0);
    disk.extent_count.set(0);
    disk.extent_block.set(0);
    edited = true;
  }
  const auto* u = reinterpret_cast<const unsigned char*>(&disk.u);
  const uint64_t size = disk.size.get();
  const uint32_t count = disk.extent_count.get();
  size_t used = 0;  // the bytes of `u` the inode's type gives a meaning
  if ((disk.flags.get() & format::kInodeInlineData) != 0) {
    used = sizeof(disk.u);  // its tail: check_inline_slot
  } else if (!S_ISREG(mode) && !S_ISDIR(mode) && !S_ISLNK(mode)) {
    used = 0;
  } else if (S_ISLNK(mode) && count == 0) {
    used = sizeof(disk.u);  // the target and its tail: decode_inode
  } else {
    used = std::min<uint32_t>(count, format::kInlineExtents) * sizeof(format::DiskExtent);
  }
  bool stray = false;
  for (size_t i = used; i < sizeof(disk.u); ++i) stray |= u[i] != 0;
  if (stray) {
    const bool inline_feature =
        (ctx.sb.feature_incompat & format::kFeatureIncompatInlineData) != 0;
    bool tail_zero = size <= format::kInlineDataMax;
    for (size_t i = size; tail_zero && i < format::kInlineDataMax; ++i) tail_zero = u[i] == 0;
    if (S_ISREG(mode) && count == 0 && disk.extent_block.get() == 0 && inline_feature &&
        tail_zero && (disk.blocks.get() == 0 || disk.xattr_block.get() != 0)) {
      ctx.problem(Phase::kInodes, "inline_flag_lost", ino,
                  ctx.fix("a file of " + std::to_string(size) +
                              " bytes without extents holds them in its slot, without the "
                              "inline-data flag",
                          "flag restored, the bytes served as its data",
                          "restore the flag and serve the bytes as its data"));
      disk.flags.set(disk.flags.get() | format::kInodeInlineData);
    } else {
      ctx.problem(Phase::kInodes, "slot_stray_bytes", ino,
                  ctx.fix("bytes in the slot that its type gives no meaning", "zeroed",
                          "zero them"));
      std::memset(reinterpret_cast<unsigned char*>(&disk.u) + used, 0, sizeof(disk.u) - used);
    }
    edited = true;
  }
  if (!edited) return;
  seal_inode_crc(disk);
  if (ctx.repair()) ctx.image.write_inode(ino, disk);
}

// The blocks a slot about to be cleared seems to own, as far as its map
// decodes (inline extents, the overflow chain while its blocks name this
// inode, the xattr chain by its headers), into ctx.cleared_maps.
void record_cleared_map(Context& ctx, uint64_t ino, const format::DiskInode& disk) {
  const uint32_t mode = disk.mode.get();
  const Geometry& geo = ctx.geo();
  const uint64_t data_end = geo.data_start + geo.data_blocks;
  auto add = [&](uint64_t start, uint64_t count) {
    ctx.cleared_maps.push_back(ClearedRange{start, count, ino});
  };
  auto add_extents = [&](const format::DiskExtent* extents, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      auto e = decode_extent(extents[i], geo.data_start, data_end);
      if (e.is_ok()) add(e->region_block, e->length);
    }
  };
  const bool slot_holds_bytes = (disk.flags.get() & format::kInodeInlineData) != 0 ||
                                (S_ISLNK(mode) && disk.extent_count.get() == 0);
  if (has_block_map(mode) && !slot_holds_bytes) {
    add_extents(disk.u.extents,
                std::min<size_t>(disk.extent_count.get(), format::kInlineExtents));
    std::set<uint64_t> seen;
    for (uint64_t next = disk.extent_block.get();
         next != 0 && ctx.image.in_data_area(next) && seen.insert(next).second;) {
      auto view = decode_extent_block(ctx.image.read_block(next), ino);
      if (!view.is_ok()) break;
      add(next, 1);
      add_extents(view->extents.data(), view->extents.size());
      next = view->next_block;
    }
  }
  if (disk.xattr_block.get() != 0 && ctx.image.in_data_area(disk.xattr_block.get())) {
    for (uint64_t b : xattr_chain_blocks(disk.xattr_block.get(), ino,
                                         [&](uint64_t block) -> const std::byte* {
                                           return ctx.image.in_data_area(block)
                                                      ? ctx.image.read_block(block)
                                                      : nullptr;
                                         })) {
      add(b, 1);
    }
  }
}

// A crc-valid symlink the daemon would refuse (decode_inode, load_inode):
// a size no target of its has (0 bytes, 4096 or more, or one that does not
// match where the target is: up to kInlineSymlinkMax bytes in the slot,
// longer ones in one block), or a block that is not one written block
// holding the target and zeros. Cleared: nothing tells what the target was.
bool symlink_cleared(Context& ctx, uint64_t ino, const format::DiskInode& disk) {
  const uint64_t size = disk.size.get();
  const uint32_t count = disk.extent_count.get();
  if (!S_ISLNK(disk.mode.get())) return false;
  format::DiskInode resealed = disk;
  seal_inode_crc(resealed);
  if (resealed.crc.get() != disk.crc.get()) return false;
  // An unlinked inode may have lost its block (slot_unlinked).
  const bool orphan = slot_unlinked(disk.flags.get(), disk.nlink.get());
  const bool fits = size != 0 && size < format::kBlockSize &&
                    (size <= format::kInlineSymlinkMax ? count == 0
                                                       : count == 1 || (count == 0 && orphan));
  std::string kind = "symlink_size";
  std::string what = "symlink target of " + std::to_string(size) + " bytes with " +
                     std::to_string(count) + " extents";
  if (fits && count == 1) {
    const Geometry& geo = ctx.geo();
    auto e = decode_extent(disk.u.extents[0], geo.data_start, geo.data_start + geo.data_blocks);
    bool sound = e.is_ok() && e->file_block == 0 && e->length == 1 && !e->unwritten &&
                 disk.extent_block.get() == 0;
    if (sound) {
      const auto* target = reinterpret_cast<const char*>(ctx.image.read_block(e->region_block));
      sound = std::memchr(target, '\0', size) == nullptr &&
              std::all_of(target + size, target + format::kBlockSize,
                          [](char b) { return b == 0; });
    }
    if (sound) return false;
    kind = "symlink_target";
    what = "symlink block is not one written block holding its target and zeros";
  } else if (fits) {
    return false;  // an inline target: decode_inode checks its bytes
  }
  ctx.problem(Phase::kInodes, kind, ino, ctx.fix(what, "inode cleared", "clear the inode"));
  record_cleared_map(ctx, ino, ctx.image.read_inode(ino));
  format::DiskInode freed{};
  freed.generation.set(disk.generation.get() + 1);
  ctx.image.write_inode(ino, freed);
  return true;
}

// One inode slot; a zero slot other than the root's is free.
void check_inode_slot(Context& ctx, uint64_t ino) {
  const uint64_t n = ctx.geo().inode_count;
  format::DiskInode disk = ctx.image.read_inode(ino);
  if (slot_is_zero(disk) && ino != format::kRootIno) return;
  check_inline_slot(ctx, ino, disk);
  check_slot_bytes(ctx, ino, disk);
  if (symlink_cleared(ctx, ino, disk)) return;
  auto decoded = decode_inode(disk, ino, n);
  bool root = ino == format::kRootIno;
  bool salvaged = false;
  std::string blocker;
  if (!decoded.is_ok() && decoded.status().code() == Code::kBadCrc) {
    std::string corrected;
    blocker = salvage_blocker(ctx, ino, disk, &corrected);
    if (blocker.empty()) {
      // A flipped bit may have made a file set-uid or set-gid: nothing can
      // tell, and keeping such a bit would hand its owner's rights to
      // whoever runs the file. They go. The report says what is kept, for
      // a person to check.
      const uint32_t found_mode = disk.mode.get();
      const uint32_t kept_mode = found_mode & ~uint32_t{S_ISUID | S_ISGID};
      std::string what = "bad crc, but every field that can be checked is consistent; owner, "
                         "permissions, times and contents cannot be verified (mode " +
                         octal(found_mode) + ", uid " + std::to_string(disk.uid.get()) +
                         ", gid " + std::to_string(disk.gid.get()) + ", size " +
                         std::to_string(disk.size.get()) + ")";
      // A generation that went down would let a handle to an earlier file
      // of this number open this one (or the next to take the number): it
      // is raised past every value the slot can have held, which makes
      // handles to the kept file itself stale too.
      const uint32_t generation = generation_past_any_flip(disk.generation.get());
      std::string done = "crc resealed, generation raised to " + std::to_string(generation);
      std::string would = "reseal the crc, raise the generation to " + std::to_string(generation);
      if (!corrected.empty()) {
        done += ", " + corrected;
        would += ", " + corrected;
      }
      if (kept_mode != found_mode) {
        done += ", set-uid/set-gid bits stripped (mode " + octal(kept_mode) + ")";
        would += ", strip the set-uid/set-gid bits (mode " + octal(kept_mode) + ")";
      }
      done += ", inode kept";
      would += " and keep the inode";
      disk.mode.set(kept_mode);
      disk.generation.set(generation);
      seal_inode_crc(disk);
      // sealfs keeps no checksum of file data: the fields were checked,
      // the bytes they lead to cannot be.
      ctx.problem(Phase::kInodes, "inode_bad_crc_salvaged", ino, ctx.fix(what, done, would),
                  true,
                  {{"mode", found_mode},
                   {"kept_mode", kept_mode},
                   {"uid", disk.uid.get()},
                   {"gid", disk.gid.get()},
                   {"size", disk.size.get()},
                   {"generation", generation}});
      ctx.image.write_inode(ino, disk);
      decoded = decode_inode(disk, ino, n);
      salvaged = true;
    }
  }
  if (!decoded.is_ok() || (root && !S_ISDIR(decoded->core.mode))) {
    std::string why = decoded.is_ok() ? "root inode is not a directory"
                                      : decoded.status().message();
    if (!blocker.empty()) why += " and its fields are not consistent: " + blocker;
    std::string kind = !decoded.is_ok() && decoded.status().code() == Code::kBadCrc
                           ? "inode_bad_crc"
                           : "inode_corrupt";
    if (root) {
      ctx.problem(Phase::kInodes, kind, ino,
                ctx.fix(why, "root recreated as an empty directory",
                        "recreate the root as an empty directory"));
      record_cleared_map(ctx, ino, disk);  // the old root's blocks are no one's
      write_fresh_root(ctx);
      decoded = decode_inode(ctx.image.read_inode(ino), ino, n);
    } else {
      // The slot cannot be trusted: clear it. Its blocks become leaks
      // (phase 5), its names dangling entries (phase 6).
      ctx.problem(Phase::kInodes, kind, ino, ctx.fix(why, "inode cleared", "clear the inode"));
      record_cleared_map(ctx, ino, disk);
      format::DiskInode freed{};
      freed.generation.set(disk.generation.get() + 1);
      ctx.image.write_inode(ino, freed);
      return;
    }
    if (!decoded.is_ok()) return;  // cannot happen: we just wrote it
  }
  const InodeCore& c = decoded->core;
  if (c.mode == 0) return;
  InodeState& st = ctx.inodes[ino];
  st.used = true;
  st.salvaged = salvaged;
  st.mode = c.mode;
  st.nlink = c.nlink;
  st.xattr_block = c.xattr_block;
  // check_inline_slot ran first: a regular file with the flag has no
  // extents and at most kInlineDataMax bytes.
  st.bytes_in_slot = (S_ISLNK(c.mode) && decoded->extent_count == 0 &&
                      c.size <= format::kInlineSymlinkMax) ||
                     (S_ISREG(c.mode) && (c.flags & format::kInodeInlineData) != 0);
  // decode_inode let it through only as unlinked.
  st.blocks_freed = S_ISLNK(c.mode) && decoded->extent_count == 0 &&
                    c.size > format::kInlineSymlinkMax;
  if ((c.flags & ~format::kInodeFlagsKnown) != 0) {
    ctx.problem(Phase::kInodes, "inode_flags", ino,
                ctx.fix("unknown flags " + std::to_string(c.flags & ~format::kInodeFlagsKnown),
                        "cleared", "clear them"));
    format::DiskInode fixed = ctx.image.read_inode(ino);
    fixed.flags.set(c.flags & format::kInodeFlagsKnown);
    ctx.image.write_inode(ino, fixed);
  }
  if (S_ISDIR(c.mode) && c.size % format::kBlockSize != 0) {
    // Fixed with the layout in phase 4.
    ctx.problem(Phase::kInodes, "dir_size", ino,
                "directory size " + std::to_string(c.size) + " is not whole blocks");
  }
  if (c.nlink == 0 && (c.flags & format::kInodeOrphan) == 0) {
    // Reported and resolved with the namespace (phases 6 to 8).
  }
}

}  // namespace

void check_inodes(Context& ctx) {
  const Geometry& geo = ctx.geo();
  ctx.inodes.clear();
  ctx.cleared_maps.clear();
  // The root is checked even where its slot reads as zero (a hole): a
  // filesystem needs one. Every other slot of a block that reads as zero is
  // free, so only the blocks that may hold bytes are read.
  check_inode_slot(ctx, format::kRootIno);
  const auto runs = ctx.image.nonzero_blocks(geo.inode_start, geo.inode_blocks);
  uint64_t total = 0, done = 0;
  for (const Image::BlockRun& r : runs) total += r.end - r.begin;
  for (const Image::BlockRun& r : runs) {
    for (uint64_t b = r.begin; b < r.end; ++b) {
      uint64_t first = (b - geo.inode_start) * format::kInodesPerBlock + 1;
      for (uint64_t ino = first; ino < first + format::kInodesPerBlock; ++ino) {
        if (ino != format::kRootIno && ino <= geo.inode_count) check_inode_slot(ctx, ino);
      }
      ctx.progress(Phase::kInodes, ++done, total);
    }
  }
}

namespace {

struct Gathered {
  std::vector<Extent> extents;
  std::vector<uint64_t> chain;
  bool changed = false;
};

// Reads the block map of one inode as far as it can be trusted.
Gathered gather(Context& ctx, uint64_t ino, const DecodedInode& d) {
  Gathered g;
  const Geometry& geo = ctx.geo();
  const uint64_t data_end = geo.data_start + geo.data_blocks;
  std::vector<format::DiskExtent> raw = d.inline_extents;
  uint64_t next = d.extent_block;
  std::set<uint64_t> seen;
  while (next != 0) {
    std::string bad;
    if (!ctx.image.in_data_area(next)) {
      bad = "overflow block " + std::to_string(next) + " outside the data area";
    } else if (seen.count(next) != 0) {
      bad = "overflow chain loops at block " + std::to_string(next);
    } else if (raw.size() >= uint64_t{d.extent_count} + format::kExtentsPerBlock) {
      bad = "overflow chain longer than its extent count";
    }
    if (bad.empty()) {
      auto view = decode_extent_block(ctx.image.read_block(next), ino);
      if (!view.is_ok()) {
        ctx.problem(Phase::kExtents,
                    view.status().code() == Code::kBadCrc ? "overflow_bad_crc" : "overflow_corrupt",
                    ino, ctx.fix(view.status().message() + " at block " + std::to_string(next),
                                 "chain cut there", "cut the chain there"));
        g.changed = true;
        break;
      }
      seen.insert(next);
      if (view->extents.empty()) {
        // The mount refuses an empty block (docs/format.md, §7): unlink it
        // and keep the rest of the chain; the block becomes free space.
        ctx.problem(Phase::kExtents, "overflow_empty", ino,
                    "empty overflow block " + std::to_string(next) + " unlinked");
        g.changed = true;
        next = view->next_block;
        continue;
      }
      g.chain.push_back(next);
      raw.insert(raw.end(), view->extents.begin(), view->extents.end());
      next = view->next_block;
      continue;
    }
    ctx.problem(Phase::kExtents, "overflow_chain", ino,
                ctx.fix(bad, "chain cut there", "cut the chain there"));
    g.changed = true;
    break;
  }
  if (!g.changed && raw.size() != d.extent_count) {
    ctx.problem(Phase::kExtents, "extent_count", ino,
                "extent count " + std::to_string(d.extent_count) + " but " +
                    std::to_string(raw.size()) + " stored");
    g.changed = true;
  }
  uint64_t prev_end = 0;
  for (const auto& de : raw) {
    auto e = decode_extent(de, geo.data_start, data_end);
    if (!e.is_ok()) {
      ctx.problem(Phase::kExtents, "extent_bad", ino,
                  ctx.fix(e.status().message(), "extent dropped", "drop the extent"));
      g.changed = true;
      continue;
    }
    if (e->file_block < prev_end) {
      ctx.problem(Phase::kExtents, "extent_overlap", ino,
                  ctx.fix("extent at file block " + std::to_string(e->file_block) +
                              " overlaps or is out of order",
                          "extent dropped", "drop the extent"));
      g.changed = true;
      continue;
    }
    prev_end = e->file_end();
    g.extents.push_back(*e);
  }
  return g;
}

enum class ClaimKind { kOverflow, kXattr, kDirData, kFileData };

struct Claim {
  uint64_t start, count, ino;
  ClaimKind kind;
  size_t index;  // extent or chain index
};

const char* claim_name(ClaimKind k) {
  switch (k) {
    case ClaimKind::kOverflow: return "extent overflow block";
    case ClaimKind::kXattr: return "xattr block";
    case ClaimKind::kDirData: return "directory block";
    default: return "file data";
  }
}

// The block ranges of the holder table's quarantine entries (not pins:
// those name blocks their file still owns, which it claims itself), read
// as far as the table loads; phase 5 checks the table.
std::vector<ClearedRange> quarantined_blocks(Context& ctx) {
  auto table = load_holder_table(ctx);
  std::vector<ClearedRange> out;
  if (!table.is_ok()) return out;
  for (size_t i = 0; i < table->slot_count(); ++i) {
    const HolderTable::Slot& slot = table->slot(i);
    if (slot.state != HolderTable::SlotState::kLive || slot.entry.pinned) continue;
    out.push_back(ClearedRange{slot.entry.extent.start, slot.entry.extent.count, slot.entry.ino});
  }
  return out;
}

}  // namespace

void check_extents(Context& ctx) {
  const uint64_t n = ctx.geo().inode_count;
  // Per inode in use, not per slot: the region may have millions of slots.
  std::unordered_set<uint64_t> changed;
  const std::vector<uint64_t>& numbers = ctx.inodes.numbers();
  uint64_t done = 0;
  bool chains = false;  // some inode keeps its xattrs in a chain
  for (uint64_t ino : numbers) {
    InodeState& st = ctx.inodes[ino];
    ctx.progress(Phase::kExtents, ++done, numbers.size());
    if (!st.used) continue;
    auto d = decode_inode(ctx.image.read_inode(ino), ino, n);
    if (!d.is_ok()) continue;  // phase 3 cleared it
    if (check_inode_xattrs(ctx, ino, st, &chains)) changed.insert(ino);
    if (st.bytes_in_slot) continue;
    Gathered g = gather(ctx, ino, *d);
    st.extents = std::move(g.extents);
    st.chain = std::move(g.chain);
    if (g.changed) changed.insert(ino);
  }

  // A chain on an image without the feature bit (both change in one
  // transaction, so only damage does this): older tools would call the
  // chain corrupt, so the bit is set.
  if (chains && (ctx.sb.feature_incompat & format::kFeatureIncompatXattrChain) == 0) {
    ctx.problem(Phase::kExtents, "xattr_feature", 0,
                ctx.fix("xattr chains on an image without the xattr_chain feature",
                        "feature set", "set the feature"));
    ctx.sb.feature_incompat |= format::kFeatureIncompatXattrChain;
    ctx.superblock_changed();
    // And the backup, which a reader falls back to.
    format::DiskSuperblock disk = encode_superblock(ctx.sb);
    std::memcpy(ctx.image.edit_block(ctx.geo().backup_block()), &disk, sizeof(disk));
  }

  // Cross-linked blocks: metadata blocks win over data, directories over
  // files, lower inode numbers over higher; the loser gives the blocks up.
  // A salvaged inode loses to every other, and to another salvaged inode
  // too (both are cleared): its map is the suspect one.
  std::vector<Claim> claims;
  for (uint64_t ino : numbers) {
    const InodeState& st = ctx.inodes[ino];
    if (!st.used) continue;
    for (size_t i = 0; i < st.chain.size(); ++i) {
      claims.push_back({st.chain[i], 1, ino, ClaimKind::kOverflow, i});
    }
    for (size_t i = 0; i < st.xattr_blocks.size(); ++i) {
      claims.push_back({st.xattr_blocks[i], 1, ino, ClaimKind::kXattr, i});
    }
    ClaimKind data = S_ISDIR(st.mode) ? ClaimKind::kDirData : ClaimKind::kFileData;
    for (size_t i = 0; i < st.extents.size(); ++i) {
      claims.push_back({st.extents[i].region_block, st.extents[i].length, ino, data, i});
    }
  }
  std::stable_sort(claims.begin(), claims.end(), [&ctx](const Claim& a, const Claim& b) {
    const bool a_salvaged = ctx.inodes[a.ino].salvaged, b_salvaged = ctx.inodes[b.ino].salvaged;
    if (a_salvaged != b_salvaged) return b_salvaged;
    if (a.kind != b.kind) return a.kind < b.kind;
    return a.ino < b.ino;
  });
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> accepted;  // start -> (end, ino)
  std::unordered_map<uint64_t, std::set<size_t>> lost_extents;
  std::unordered_map<uint64_t, size_t> chain_cut;
  std::unordered_set<uint64_t> salvaged_lost;  // salvaged inodes in a cross-link
  // Blocks marked used that a kept inode loses as it loses a cross-link
  // although no inode in use claims them: what phase 3's cleared inodes
  // seemed to own, and what the holder table quarantines (blocks a removed
  // file left to a process that mapped them). As disjoint ranges, start ->
  // (end, one of the inodes they came from).
  using Ranges = std::map<uint64_t, std::pair<uint64_t, uint64_t>>;
  auto disjoint = [](std::vector<ClearedRange> ranges) {
    std::sort(ranges.begin(), ranges.end(),
              [](const ClearedRange& a, const ClearedRange& b) { return a.start < b.start; });
    Ranges out;
    for (const ClearedRange& r : ranges) {
      const uint64_t end = r.start + r.count;
      if (!out.empty() && std::prev(out.end())->second.first >= r.start) {
        auto& last = std::prev(out.end())->second;
        last.first = std::max(last.first, end);
      } else {
        out.emplace(r.start, std::make_pair(end, r.ino));
      }
    }
    return out;
  };
  // The range of `ranges` overlapping [start, end), or nullptr.
  auto overlapping = [](const Ranges& ranges, uint64_t start,
                        uint64_t end) -> const std::pair<uint64_t, uint64_t>* {
    auto it = ranges.upper_bound(start);
    if (it != ranges.begin() && std::prev(it)->second.first > start) return &std::prev(it)->second;
    if (it != ranges.end() && it->first < end) return &it->second;
    return nullptr;
  };
  const Ranges cleared = disjoint(ctx.cleared_maps);
  const Ranges quarantined = disjoint(quarantined_blocks(ctx));
  for (const Claim& c : claims) {
    uint64_t end = c.start + c.count;
    // Every accepted claim this one overlaps (accepted claims never
    // overlap each other, so they are consecutive in the map).
    auto first = accepted.upper_bound(c.start);
    if (first != accepted.begin() && std::prev(first)->second.first > c.start) --first;
    std::vector<uint64_t> owners;
    for (auto it = first; it != accepted.end() && it->first < end; ++it) {
      owners.push_back(it->second.second);
    }
    const bool salvaged = ctx.inodes[c.ino].salvaged;
    const auto* from_cleared = salvaged ? overlapping(cleared, c.start, end) : nullptr;
    const auto* from_holder = salvaged && from_cleared == nullptr
                                  ? overlapping(quarantined, c.start, end)
                                  : nullptr;
    if (owners.empty() && from_cleared == nullptr && from_holder == nullptr) {
      accepted.emplace(c.start, std::make_pair(end, c.ino));
      continue;
    }
    const uint64_t other = !owners.empty()        ? owners.front()
                           : from_cleared != nullptr ? from_cleared->second
                                                     : from_holder->second;
    const std::string other_note =
        !owners.empty()           ? ""
        : from_cleared != nullptr ? ", cleared in phase 3 (its slot was damaged)"
                                  : ", removed; the holder table quarantines the blocks";
    // Kept inodes' claims come last, so one was accepted only where no
    // other inode claims the blocks; when a second kept inode claims them
    // too, neither map can be trusted and both lose: a kept inode never
    // wins a cross-link.
    for (uint64_t owner : owners) {
      if (owner == c.ino || !ctx.inodes[owner].salvaged || salvaged_lost.count(owner) != 0) {
        continue;
      }
      ctx.problem(Phase::kExtents, "cross_linked", owner,
                  ctx.fix(std::string(claim_name(c.kind)) + " [" + std::to_string(c.start) +
                              ", +" + std::to_string(c.count) + ") also belongs to inode " +
                              std::to_string(c.ino) + ", kept after a bad crc too",
                          "this inode, kept after a bad crc, cleared",
                          "clear this inode, kept after a bad crc"));
      changed.insert(owner);
      salvaged_lost.insert(owner);
    }
    InodeState& st = ctx.inodes[c.ino];
    ctx.problem(Phase::kExtents, "cross_linked", c.ino,
                ctx.fix(std::string(claim_name(c.kind)) + " [" + std::to_string(c.start) + ", +" +
                            std::to_string(c.count) + ") also belongs to inode " +
                            std::to_string(other) + other_note,
                st.salvaged ? "this inode, kept after a bad crc, cleared"
                            : "removed from this inode",
                st.salvaged ? "clear this inode, kept after a bad crc"
                            : "remove it from this inode"));
    changed.insert(c.ino);
    if (st.salvaged) salvaged_lost.insert(c.ino);
    if (c.kind == ClaimKind::kOverflow) {
      auto [cut, first] = chain_cut.try_emplace(c.ino, c.index);
      if (!first) cut->second = std::min(cut->second, c.index);
    } else if (c.kind == ClaimKind::kXattr) {
      // The whole chain goes: its other blocks are no one's (phase 5).
      st.xattr_block = 0;
      st.xattr_blocks.clear();
      if (st.salvaged) continue;  // the slot is cleared below
      format::DiskInode disk = ctx.image.read_inode(c.ino);
      disk.xattr_block.set(0);
      ctx.image.write_inode(c.ino, disk);
    } else {
      lost_extents[c.ino].insert(c.index);
    }
  }

  for (uint64_t ino : numbers) {
    InodeState& st = ctx.inodes[ino];
    if (!st.used) continue;
    std::vector<Extent> kept;
    auto lost = lost_extents.find(ino);
    for (size_t i = 0; i < st.extents.size(); ++i) {
      if (lost == lost_extents.end() || lost->second.count(i) == 0) kept.push_back(st.extents[i]);
    }
    std::vector<uint64_t> chain = st.chain;
    auto cut = chain_cut.find(ino);
    if (cut != chain_cut.end() && cut->second < chain.size()) {
      chain.resize(cut->second);  // cut blocks belong elsewhere
    }
    if (salvaged_lost.count(ino) != 0) {
      // The map it was kept for is wrong: it gives up what it shares, then
      // its own blocks and its slot.
      st.extents = std::move(kept);
      st.chain = std::move(chain);
      clear_inode(ctx, ino);
      if (ino == format::kRootIno) {
        // A filesystem needs one: recreated empty, as phase 3 does.
        write_fresh_root(ctx);
        st.used = true;
        st.mode = S_IFDIR | 0755;
        st.nlink = 2;
      }
      continue;
    }
    format::DiskInode disk = ctx.image.read_inode(ino);
    if (S_ISDIR(st.mode) && !st.bytes_in_slot) {
      // A directory is blocks 0..k-1, all written, and size = k blocks.
      std::vector<Extent> prefix;
      uint64_t expect = 0;
      for (const Extent& e : kept) {
        if (e.file_block != expect || e.unwritten) break;
        prefix.push_back(e);
        expect = e.file_end();
      }
      uint64_t size_blocks = disk.size.get() / format::kBlockSize;
      if (prefix.size() != kept.size() || disk.size.get() != expect * format::kBlockSize) {
        ctx.problem(Phase::kExtents, "dir_layout", ino,
                    ctx.fix("directory of " + std::to_string(size_blocks) + " blocks maps " +
                                std::to_string(expect) + " leading blocks",
                            "size set to " + std::to_string(expect) + " blocks",
                            "set its size to " + std::to_string(expect) + " blocks"));
        // Blocks dropped here are no one's: phase 5 frees them.
        kept = std::move(prefix);
        disk.size.set(expect * format::kBlockSize);
        ctx.image.write_inode(ino, disk);
        changed.insert(ino);
      }
    }
    // An inode whose slot holds bytes has no block map to store: rewriting
    // it (after an xattr repair) would zero those bytes.
    if (changed.count(ino) != 0 && !st.bytes_in_slot) {
      // Blocks of a cut chain stay with whoever else claims them.
      if (!store_layout(ctx, ino, kept, chain, false)) {
        ctx.problem(Phase::kExtents, "extents_dropped", ino,
                    ctx.fix("not enough overflow blocks left for every extent",
                            "the rest dropped", "drop the rest"));
      }
    }
    uint64_t want = expected_blocks(st);
    disk = ctx.image.read_inode(ino);
    if (disk.blocks.get() != want) {
      ctx.problem(Phase::kExtents, "block_count", ino,
                  ctx.fix("block count " + std::to_string(disk.blocks.get()) + ", owns " +
                              std::to_string(want),
                          "fixed", "fix it"));
      disk.blocks.set(want);
      ctx.image.write_inode(ino, disk);
    }
  }
}

}  // namespace sealfs::fsck
