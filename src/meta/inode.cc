#include "meta/inode.h"

#include <sys/stat.h>

#include <cstring>

#include "util/crc32c.h"

namespace sealfs {

namespace {
bool is_inline_symlink(uint32_t mode, uint64_t size, uint32_t extent_count) {
  return S_ISLNK(mode) && extent_count == 0 && size <= format::kInlineSymlinkMax;
}
}  // namespace

void seal_inode_crc(format::DiskInode& disk) {
  disk.crc.set(0);
  disk.crc.set(crc32c_with_hole(&disk, sizeof(disk), offsetof(format::DiskInode, crc)));
}

format::DiskInode encode_inode(const Inode& inode, uint64_t orphan_next, int64_t btime_ns,
                               const void* inline_data) {
  format::DiskInode d{};
  const InodeCore& c = inode.core;
  d.mode.set(c.mode);
  d.uid.set(c.uid);
  d.gid.set(c.gid);
  d.nlink.set(c.nlink);
  d.flags.set(c.flags);
  d.project_id.set(c.project_id);
  d.generation.set(c.generation);
  d.rdev.set(c.rdev);
  d.size.set(c.size);
  d.blocks.set(c.blocks);
  d.atime_ns.set(static_cast<uint64_t>(c.atime));
  d.mtime_ns.set(static_cast<uint64_t>(c.mtime));
  d.ctime_ns.set(static_cast<uint64_t>(c.ctime));
  d.btime_ns.set(static_cast<uint64_t>(btime_ns));
  d.extent_block.set(inode.chain.head());
  d.xattr_block.set(c.xattr_block);
  d.orphan_next.set(orphan_next);
  if (c.mode != 0 && S_ISLNK(c.mode) && inode.extents.empty()) {
    std::memcpy(d.u.symlink, inode.inline_bytes.data(),
                std::min<size_t>(inode.inline_bytes.size(), format::kInlineSymlinkMax));
    d.extent_count.set(0);
  } else if (c.mode != 0 && inode.has_inline_data()) {
    // Only the file's bytes: the rest of the area stays zero (d is zeroed).
    if (inline_data != nullptr) {
      std::memcpy(d.u.data, inline_data, std::min<uint64_t>(c.size, format::kInlineDataMax));
    }
    d.extent_count.set(0);
  } else {
    d.extent_count.set(static_cast<uint32_t>(inode.extents.count()));
    uint32_t i = 0;
    for (auto it = inode.extents.begin();
         it != inode.extents.end() && i < format::kInlineExtents; ++it, ++i) {
      d.u.extents[i] = encode_extent(it->second);
    }
  }
  seal_inode_crc(d);
  return d;
}

bool slot_is_zero(const format::DiskInode& disk) {
  static const format::DiskInode zero{};
  return std::memcmp(&disk, &zero, sizeof(disk)) == 0;
}

Result<DecodedInode> decode_inode(const format::DiskInode& disk, uint64_t ino,
                                  uint64_t inode_count) {
  DecodedInode out;
  if (slot_is_zero(disk)) return out;
  auto context = [&](const std::string& what) { return "inode " + std::to_string(ino) + ": " + what; };
  if (crc32c_with_hole(&disk, sizeof(disk), offsetof(format::DiskInode, crc)) != disk.crc.get()) {
    return Status(Code::kBadCrc, context("bad crc"));
  }
  InodeCore& c = out.core;
  c.mode = disk.mode.get();
  c.uid = disk.uid.get();
  c.gid = disk.gid.get();
  c.nlink = disk.nlink.get();
  c.flags = disk.flags.get();
  c.project_id = disk.project_id.get();
  c.generation = disk.generation.get();
  c.rdev = disk.rdev.get();
  c.size = disk.size.get();
  c.blocks = disk.blocks.get();
  c.atime = static_cast<int64_t>(disk.atime_ns.get());
  c.mtime = static_cast<int64_t>(disk.mtime_ns.get());
  c.ctime = static_cast<int64_t>(disk.ctime_ns.get());
  out.btime = static_cast<int64_t>(disk.btime_ns.get());
  c.xattr_block = disk.xattr_block.get();
  out.orphan_next = disk.orphan_next.get();
  out.extent_block = disk.extent_block.get();
  out.extent_count = disk.extent_count.get();
  if (c.mode == 0) return out;  // a freed slot keeps its generation
  switch (c.mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO:
    case S_IFSOCK:
      break;
    default:
      return Status(Code::kCorruption, context("bad mode " + std::to_string(c.mode)));
  }
  if (out.orphan_next > inode_count) {
    return Status(Code::kCorruption, context("orphan_next out of range"));
  }
  // What the slot holds must be what the daemon writes for the inode's
  // type (encode_inode starts from a zeroed slot): a crc only says that
  // the bytes are the ones sealed, and a retyped or resized inode sealed
  // again would otherwise be served as something it never was.
  const auto* u = reinterpret_cast<const unsigned char*>(&disk.u);
  auto zero_from = [&](size_t from) {
    for (size_t i = from; i < sizeof(disk.u); ++i) {
      if (u[i] != 0) return false;
    }
    return true;
  };
  const bool device = S_ISCHR(c.mode) || S_ISBLK(c.mode);
  if (c.rdev != 0 && !device) {
    return Status(Code::kCorruption, context("device number on an inode that is no device"));
  }
  if ((c.flags & format::kInodeInlineData) != 0) {
    if (!S_ISREG(c.mode)) return Status(Code::kCorruption, context("inline data on a non-regular inode"));
    if (c.size > format::kInlineDataMax) {
      return Status(Code::kCorruption, context("inline data of " + std::to_string(c.size) + " bytes"));
    }
    if (out.extent_count != 0 || out.extent_block != 0) {
      return Status(Code::kCorruption, context("inline data with extents"));
    }
    if (!zero_from(c.size)) {
      return Status(Code::kCorruption, context("bytes after the end of the inline file"));
    }
    out.inline_bytes.assign(reinterpret_cast<const char*>(disk.u.data), c.size);
    return out;
  }
  if (!S_ISREG(c.mode) && !S_ISDIR(c.mode) && !S_ISLNK(c.mode)) {
    if (c.size != 0 || out.extent_count != 0 || out.extent_block != 0) {
      return Status(Code::kCorruption, context("fifo, socket or device with a size or a block map"));
    }
    if (!zero_from(0)) {
      return Status(Code::kCorruption, context("bytes in the slot of a fifo, socket or device"));
    }
    return out;
  }
  if (S_ISLNK(c.mode)) {
    if (c.size == 0 || c.size >= format::kBlockSize) {
      return Status(Code::kCorruption, context("symlink target of " + std::to_string(c.size) +
                                               " bytes"));
    }
    // Targets of up to kInlineSymlinkMax bytes live in the slot, longer
    // ones in one block (make_node), which an unlinked inode may have lost.
    const bool inline_target = c.size <= format::kInlineSymlinkMax;
    const bool block_freed =
        !inline_target && out.extent_count == 0 && slot_unlinked(c.flags, c.nlink);
    if (inline_target != (out.extent_count == 0) && !block_freed) {
      return Status(Code::kCorruption,
                    context("symlink target of " + std::to_string(c.size) + " bytes with " +
                            std::to_string(out.extent_count) + " extents"));
    }
    if (!inline_target && out.extent_count > 1) {
      return Status(Code::kCorruption, context("symlink mapping more than one block"));
    }
  }
  if (is_inline_symlink(c.mode, c.size, out.extent_count)) {
    if (out.extent_block != 0) return Status(Code::kCorruption, context("symlink with extent block"));
    if (std::memchr(disk.u.symlink, '\0', c.size) != nullptr) {
      return Status(Code::kCorruption, context("a NUL inside the symlink target"));
    }
    if (!zero_from(c.size)) {
      return Status(Code::kCorruption, context("bytes after the symlink target"));
    }
    out.inline_bytes.assign(disk.u.symlink, c.size);
    return out;
  }
  uint32_t inline_count = std::min<uint32_t>(out.extent_count, format::kInlineExtents);
  if (!zero_from(inline_count * sizeof(format::DiskExtent))) {
    return Status(Code::kCorruption, context("bytes in the slot after its " +
                                             std::to_string(inline_count) + " extents"));
  }
  out.inline_extents.assign(disk.u.extents, disk.u.extents + inline_count);
  if ((out.extent_count > format::kInlineExtents) != (out.extent_block != 0)) {
    return Status(Code::kCorruption, context("extent count and overflow block disagree"));
  }
  return out;
}

}  // namespace sealfs
