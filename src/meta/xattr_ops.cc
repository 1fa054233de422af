// Extended attributes: setxattr, getxattr, listxattr, removexattr, and the
// inode's attribute storage they share with ACLs (acl_ops.cc): a chain of
// journaled blocks (docs/format.md §9), rewritten in the transaction that
// changes the attributes; blocks whose bytes stay the same cost no journal
// space (MetaTxn stages differences only).
#include <sys/xattr.h>

#include <algorithm>
#include <optional>

#include "meta/filesystem_impl.h"
#include "meta/inode_flags.h"
#include "meta/posix_acl.h"
#include "meta/xattr_check.h"

namespace sealfs {

XattrBlockReader FilesystemImpl::xattr_block_reader() const {
  return [this](uint64_t b) -> const std::byte* {
    if (b < geo_.data_start || b >= geo_.data_start + geo_.data_blocks) return nullptr;
    return region_->data() + block_offset(b);
  };
}

Status FilesystemImpl::read_xattrs(const Inode& inode, XattrStore* out) {
  *out = XattrStore{};
  if (inode.core.xattr_block == 0) return Status::ok();
  auto store = read_xattr_store(inode.core.xattr_block, inode.ino, xattr_block_reader());
  if (!store.is_ok()) return store.status().with_context("inode " + std::to_string(inode.ino));
  // Well-formed blocks with contents setxattr would never have stored:
  // refused, not served (fsck.sealfs drops those attributes).
  std::vector<XattrProblem> problems = check_xattr_list(store->list, inode.core.mode);
  if (!problems.empty()) {
    return Status(Code::kCorruption, "inode " + std::to_string(inode.ino) + ": " +
                                         problems.front().what + " (run fsck.sealfs)");
  }
  *out = std::move(*store);
  return Status::ok();
}

Status FilesystemImpl::write_xattrs(MetaTxn& t, Inode& inode, std::vector<uint64_t> blocks,
                                    const XattrList& list) {
  const std::vector<uint8_t> stream = encode_xattr_stream(list);
  const uint64_t need = xattr_chain_blocks_for(stream.size());
  if (need > format::kXattrChainMaxBlocks) {
    return Status(Code::kNoSpace, "inode " + std::to_string(inode.ino) + ": xattrs need " +
                                      std::to_string(stream.size()) + " bytes, more than " +
                                      std::to_string(format::kXattrChainMaxBlocks) + " blocks");
  }
  while (blocks.size() > need) {
    uint64_t b = blocks.back();
    blocks.pop_back();
    t.drop_block(b);
    t.freed_metadata();
    alloc_->free(t.txn(), {b, 1});
    inode.core.blocks -= 1;
  }
  const size_t kept = blocks.size();
  while (blocks.size() < need) {
    uint64_t hint = blocks.empty() ? 0 : blocks.back() + 1;
    ASSIGN_OR_RETURN(BlockExtent e, alloc_->allocate(t.txn(), 1, hint));
    blocks.push_back(e.start);
    inode.core.blocks += 1;
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    uint64_t offset = i * uint64_t{format::kXattrChainPayload};
    auto used = static_cast<uint32_t>(
        std::min<uint64_t>(format::kXattrChainPayload, stream.size() - offset));
    std::byte* img = i < kept ? t.block(blocks[i]) : t.fresh_block(blocks[i]);
    encode_xattr_chain_block(img, inode.ino, static_cast<uint32_t>(i),
                             i + 1 < blocks.size() ? blocks[i + 1] : 0, stream.data() + offset,
                             used);
  }
  inode.core.xattr_block = blocks.empty() ? 0 : blocks.front();
  // The first chain on an image sets the incompat bit in its own
  // transaction: older daemons, which know only the single block, then
  // refuse the image instead of calling the chain corrupt.
  if (need > 0 && !xattr_chain_feature_.load()) {
    t.edit_superblock(
        [](Superblock& sb) { sb.feature_incompat |= format::kFeatureIncompatXattrChain; });
    t.on_commit([this] {
      xattr_chain_feature_.store(true);
      refresh_backup_superblock();
    });
  }
  return Status::ok();
}

Status FilesystemImpl::commit_xattrs(Inode& inode, std::vector<uint64_t> blocks,
                                     const XattrList& list, const InodeCore& saved) {
  const InodeCore before = saved;  // `saved` may be inode.core itself
  MetaTxn t(*this);
  Status s = write_xattrs(t, inode, std::move(blocks), list);
  if (s.is_ok()) {
    inode.core.ctime = now_ns();
    t.dirty(&inode);
    s = t.commit();
  }
  if (!s.is_ok()) inode.core = before;
  return s;
}

void FilesystemImpl::free_xattr_blocks(MetaTxn& t, const Inode& inode) {
  if (inode.core.xattr_block == 0) return;
  // By the headers alone: a chain damaged past its head frees what checks
  // and leaks the rest (fsck.sealfs frees it), rather than fail the free.
  for (uint64_t b : xattr_chain_blocks(inode.core.xattr_block, inode.ino, xattr_block_reader())) {
    alloc_->free(t.txn(), {b, 1});
  }
}

Status FilesystemImpl::setxattr(Ino ino, std::string_view name, const void* value, size_t size,
                                int flags, SetidCaller* caller) {
  CacheGate::Pass pass(cache_gate_);
  RETURN_IF_ERROR(check_xattr_name(name));
  RETURN_IF_ERROR(check_writable());
  if (size > format::kXattrValueMax) return Status(Code::kTooBig, "xattr value too large");
  // An ACL is checked before anything else: a bad one is never stored.
  std::optional<Acl> acl;
  if (name == kAclAccessXattr || name == kAclDefaultXattr) {
    ASSIGN_OR_RETURN(Acl parsed, parse_acl(value, size));
    acl = std::move(parsed);
  }
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  WriterLock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  RETURN_IF_ERROR(check_may_modify(inode->core, "set an xattr"));
  XattrStore store;
  RETURN_IF_ERROR(read_xattrs(*inode, &store));
  XattrList& list = store.list;
  InodeCore saved = inode->core;
  if (acl) {
    RETURN_IF_ERROR(set_acl_in_list(*inode, name, *acl, caller, &list));
  } else {
    auto it = find_xattr(list, name);
    if ((flags & XATTR_CREATE) && it != list.end()) return Status(Code::kExists, std::string(name));
    if ((flags & XATTR_REPLACE) && it == list.end()) return Status(Code::kNoData, std::string(name));
    const auto* v = static_cast<const uint8_t*>(value);
    std::vector<uint8_t> bytes(v, v + size);
    if (it != list.end()) it->value = std::move(bytes);
    else list.push_back(XattrEntry{std::string(name), std::move(bytes)});
  }
  return commit_xattrs(*inode, std::move(store.blocks), list, saved);
}

Result<std::vector<uint8_t>> FilesystemImpl::getxattr(Ino ino, std::string_view name) {
  CacheGate::Pass pass(cache_gate_);
  RETURN_IF_ERROR(check_xattr_name(name));
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  ReaderLock lock(inode->mu);
  XattrStore store;
  RETURN_IF_ERROR(read_xattrs(*inode, &store));
  auto it = find_xattr(store.list, name);
  if (it == store.list.end()) return Status(Code::kNoData, std::string(name));
  return std::move(it->value);
}

Result<std::vector<std::string>> FilesystemImpl::listxattr(Ino ino) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  ReaderLock lock(inode->mu);
  XattrStore store;
  RETURN_IF_ERROR(read_xattrs(*inode, &store));
  std::vector<std::string> names;
  names.reserve(store.list.size());
  for (auto& e : store.list) names.push_back(std::move(e.name));
  return names;
}

Status FilesystemImpl::removexattr(Ino ino, std::string_view name) {
  CacheGate::Pass pass(cache_gate_);
  RETURN_IF_ERROR(check_xattr_name(name));
  RETURN_IF_ERROR(check_writable());
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  WriterLock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  RETURN_IF_ERROR(check_may_modify(inode->core, "remove an xattr"));
  XattrStore store;
  RETURN_IF_ERROR(read_xattrs(*inode, &store));
  auto it = find_xattr(store.list, name);
  if (it == store.list.end()) {
    // Removing an ACL is setting it to none, which succeeds when there is
    // none (the kernel's set_acl(NULL), as on ext4 and tmpfs).
    if (name == kAclAccessXattr || name == kAclDefaultXattr) return Status::ok();
    return Status(Code::kNoData, std::string(name));
  }
  store.list.erase(it);
  return commit_xattrs(*inode, std::move(store.blocks), store.list, inode->core);
}

}  // namespace sealfs
