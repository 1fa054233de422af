// Phase 4, extended attributes: the store each inode points at is read
// whole (its chain or legacy block); a store that does not decode is
// dropped, and one that decodes but holds what setxattr would never have
// stored (meta/xattr_check.h: a bad name, a name twice, an ACL that does
// not parse or does not fit the inode's type) loses just those attributes,
// rewritten into the front of its own blocks.
#include <algorithm>
#include <cstring>

#include "fsck/context.h"
#include "meta/xattr.h"
#include "meta/xattr_check.h"

namespace sealfs::fsck {

namespace {

void drop_all(Context& ctx, uint64_t ino, InodeState& st, const std::string& why) {
  ctx.problem(Phase::kExtents, "xattr_bad", ino,
              ctx.fix(why, "extended attributes dropped", "drop the extended attributes"));
  st.xattr_block = 0;
  st.xattr_blocks.clear();
  format::DiskInode disk = ctx.image.read_inode(ino);
  disk.xattr_block.set(0);
  ctx.image.write_inode(ino, disk);
}

// The kept attributes into the store's first blocks, in its own format;
// the blocks no longer needed leave st.xattr_blocks (phase 5 frees them).
// This runs before the cross-link pass has settled who owns each block,
// and is still safe: every block written here decoded as this inode's own
// xattr block (the owner's number is in it), so no other inode's xattr
// store or overflow chain can hold it (those decode it for their owner,
// and the overflow chain, the only kind ranked above xattrs, checks the
// extent-block format), and the pass gives it to this inode over any data
// extent that also claims it.
void rewrite_store(Context& ctx, uint64_t ino, InodeState& st, const XattrStore& store,
                   const XattrList& kept) {
  format::DiskInode disk = ctx.image.read_inode(ino);
  if (kept.empty()) {
    st.xattr_block = 0;
    st.xattr_blocks.clear();
    disk.xattr_block.set(0);
    ctx.image.write_inode(ino, disk);
    return;
  }
  if (store.legacy) {
    encode_xattr_block(ctx.image.edit_block(store.blocks.front()), ino, kept);
    return;
  }
  const std::vector<uint8_t> stream = encode_xattr_stream(kept);
  const uint64_t need = xattr_chain_blocks_for(stream.size());  // <= blocks: only removed
  std::vector<uint64_t> blocks(store.blocks.begin(), store.blocks.begin() + need);
  for (uint64_t i = 0; i < need; ++i) {
    const uint64_t offset = i * uint64_t{format::kXattrChainPayload};
    const auto used = static_cast<uint32_t>(
        std::min<uint64_t>(format::kXattrChainPayload, stream.size() - offset));
    encode_xattr_chain_block(ctx.image.edit_block(blocks[i]), ino, static_cast<uint32_t>(i),
                             i + 1 < need ? blocks[i + 1] : 0, stream.data() + offset, used);
  }
  st.xattr_blocks = std::move(blocks);
}

}  // namespace

bool check_inode_xattrs(Context& ctx, uint64_t ino, InodeState& st, bool* chains) {
  if (st.xattr_block == 0) return false;
  auto store = read_xattr_store(st.xattr_block, ino, [&](uint64_t b) -> const std::byte* {
    return ctx.image.in_data_area(b) ? ctx.image.read_block(b) : nullptr;
  });
  if (!store.is_ok()) {
    drop_all(ctx, ino, st, store.status().message());
    return true;
  }
  st.xattr_blocks = store->blocks;
  if (!store->legacy) *chains = true;
  std::vector<XattrProblem> problems = check_xattr_list(store->list, st.mode);
  if (problems.empty()) return false;
  std::vector<bool> bad(store->list.size(), false);
  for (const XattrProblem& p : problems) {
    bad[p.index] = true;
    ctx.problem(Phase::kExtents, "xattr_entry", ino,
                ctx.fix(p.what, "attribute dropped", "drop the attribute"));
  }
  if (!ctx.repair()) return false;
  XattrList kept;
  for (size_t i = 0; i < store->list.size(); ++i) {
    if (!bad[i]) kept.push_back(store->list[i]);
  }
  rewrite_store(ctx, ino, st, *store, kept);
  return true;
}

}  // namespace sealfs::fsck
