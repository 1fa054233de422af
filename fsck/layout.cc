// Rewriting an inode's block map and freeing inodes: the two edits several
// phases share.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "fsck/context.h"
#include "meta/inode.h"

namespace sealfs::fsck {

uint64_t expected_blocks(const InodeState& st) {
  uint64_t n = st.chain.size() + st.xattr_blocks.size();
  for (const Extent& e : st.extents) n += e.length;
  return n;
}

std::string Context::dir_path(uint64_t dir) const {
  std::string path;
  uint64_t at = dir;
  // Parent pointers may loop on a damaged image: a path is never deeper
  // than the directories in use.
  for (size_t depth = 0; depth <= inodes.size(); ++depth) {
    if (at == format::kRootIno) return path.empty() ? "/" : path;
    const InodeState* st = inodes.find(at);
    auto name = dir_names.find(at);
    if (st == nullptr || st->parent == 0 || name == dir_names.end()) break;
    path = "/" + name->second + path;
    at = st->parent;
  }
  return "(directory inode " + std::to_string(at) + ")" + path;
}

void Context::superblock_changed() {
  format::DiskSuperblock disk = encode_superblock(sb);
  std::memcpy(image.edit_block(format::kSuperblockBlock), &disk, sizeof(disk));
}

bool store_layout(Context& ctx, uint64_t ino, std::vector<Extent> extents,
                  std::vector<uint64_t> chain, bool may_allocate) {
  InodeState& st = ctx.inodes[ino];
  std::sort(extents.begin(), extents.end(),
            [](const Extent& a, const Extent& b) { return a.file_block < b.file_block; });
  bool all_kept = true;
  uint64_t overflow = extents.size() > format::kInlineExtents
                          ? extents.size() - format::kInlineExtents
                          : 0;
  uint64_t needed = (overflow + format::kExtentsPerBlock - 1) / format::kExtentsPerBlock;
  while (chain.size() < needed && may_allocate) {
    auto b = ctx.image.allocate_block();
    if (!b) break;
    chain.push_back(*b);
  }
  if (chain.size() < needed) {
    uint64_t fits = format::kInlineExtents + chain.size() * format::kExtentsPerBlock;
    extents.resize(fits);
    needed = chain.size();
    all_kept = false;
  }
  for (size_t i = needed; i < chain.size(); ++i) ctx.image.set_bit(chain[i], false);
  chain.resize(needed);

  format::DiskInode disk = ctx.image.read_inode(ino);
  std::memset(static_cast<void*>(&disk.u), 0, sizeof(disk.u));
  std::vector<format::DiskExtent> encoded;
  encoded.reserve(extents.size());
  for (const Extent& e : extents) encoded.push_back(encode_extent(e));
  size_t inline_count = std::min<size_t>(encoded.size(), format::kInlineExtents);
  for (size_t i = 0; i < inline_count; ++i) disk.u.extents[i] = encoded[i];
  for (size_t c = 0; c < chain.size(); ++c) {
    size_t first = format::kInlineExtents + c * format::kExtentsPerBlock;
    size_t count = std::min<size_t>(format::kExtentsPerBlock, encoded.size() - first);
    uint64_t next = c + 1 < chain.size() ? chain[c + 1] : 0;
    encode_extent_block(ctx.image.edit_block(chain[c]), ino, next,
                        std::span<const format::DiskExtent>(encoded.data() + first, count));
  }
  disk.extent_count.set(static_cast<uint32_t>(extents.size()));
  disk.extent_block.set(chain.empty() ? 0 : chain.front());
  st.extents = std::move(extents);
  st.chain = std::move(chain);
  st.bytes_in_slot = false;
  disk.blocks.set(expected_blocks(st));
  ctx.image.write_inode(ino, disk);
  return all_kept;
}

void free_inode(Context& ctx, uint64_t ino) {
  InodeState& st = ctx.inodes[ino];
  for (const Extent& e : st.extents) {
    for (uint64_t i = 0; i < e.length; ++i) ctx.image.set_bit(e.region_block + i, false);
  }
  for (uint64_t b : st.chain) ctx.image.set_bit(b, false);
  for (uint64_t b : st.xattr_blocks) ctx.image.set_bit(b, false);
  format::DiskInode old = ctx.image.read_inode(ino);
  format::DiskInode freed{};
  freed.generation = old.generation;
  ctx.image.write_inode(ino, freed);
  st = InodeState{};
}

void clear_inode(Context& ctx, uint64_t ino) {
  const uint32_t generation = ctx.image.read_inode(ino).generation.get();
  free_inode(ctx, ino);
  format::DiskInode cleared{};
  cleared.generation.set(generation + 1);
  ctx.image.write_inode(ino, cleared);
}

}  // namespace sealfs::fsck
