// Extended attributes: setxattr, getxattr, listxattr, removexattr, and the
// inode's attribute storage they share with ACLs (acl_ops.cc).
#include <sys/xattr.h>

#include <algorithm>
#include <optional>

#include "meta/filesystem_impl.h"
#include "meta/inode_flags.h"
#include "meta/posix_acl.h"

namespace sealfs {

Status FilesystemImpl::read_xattrs(const Inode& inode, XattrList* out) {
  out->clear();
  if (inode.core.xattr_block == 0) return Status::ok();
  uint64_t b = inode.core.xattr_block;
  if (b < geo_.data_start || b >= geo_.data_start + geo_.data_blocks) {
    return Status(Code::kCorruption, "inode " + std::to_string(inode.ino) + ": xattr block out of range");
  }
  auto list = decode_xattr_block(region_->data() + block_offset(b), inode.ino);
  if (!list.is_ok()) return list.status().with_context("inode " + std::to_string(inode.ino));
  *out = std::move(*list);
  return Status::ok();
}

Status FilesystemImpl::write_xattrs(MetaTxn& t, Inode& inode, const XattrList& list) {
  uint64_t b = inode.core.xattr_block;
  if (list.empty()) {
    if (b == 0) return Status::ok();
    t.freed_metadata();
    alloc_->free(t.txn(), {b, 1});
    inode.core.xattr_block = 0;
    inode.core.blocks -= 1;
    return Status::ok();
  }
  if (!xattr_fits(list)) return Status(Code::kNoSpace, "xattrs do not fit the inode's block");
  std::byte* img = nullptr;
  if (b == 0) {
    ASSIGN_OR_RETURN(BlockExtent e, alloc_->allocate(t.txn(), 1, 0));
    inode.core.xattr_block = e.start;
    inode.core.blocks += 1;
    img = t.fresh_block(e.start);
  } else {
    img = t.block(b);
  }
  encode_xattr_block(img, inode.ino, list);
  return Status::ok();
}

Status FilesystemImpl::setxattr(Ino ino, std::string_view name, const void* value, size_t size,
                                int flags, SetidCaller* caller) {
  RETURN_IF_ERROR(check_xattr_name(name));
  RETURN_IF_ERROR(check_writable());
  if (size > 65536) return Status(Code::kTooBig, "xattr value too large");
  // An ACL is checked before anything else: a bad one is never stored.
  std::optional<Acl> acl;
  if (name == kAclAccessXattr || name == kAclDefaultXattr) {
    ASSIGN_OR_RETURN(Acl parsed, parse_acl(value, size));
    acl = std::move(parsed);
  }
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  std::unique_lock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  RETURN_IF_ERROR(check_may_modify(inode->core, "set an xattr"));
  XattrList list;
  RETURN_IF_ERROR(read_xattrs(*inode, &list));
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
  MetaTxn t(*this);
  Status s = write_xattrs(t, *inode, list);
  if (!s.is_ok()) {
    inode->core = saved;
    return s;
  }
  inode->core.ctime = now_ns();
  t.dirty(inode);
  s = t.commit();
  if (!s.is_ok()) inode->core = saved;
  return s;
}

Result<std::vector<uint8_t>> FilesystemImpl::getxattr(Ino ino, std::string_view name) {
  RETURN_IF_ERROR(check_xattr_name(name));
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  std::shared_lock lock(inode->mu);
  XattrList list;
  RETURN_IF_ERROR(read_xattrs(*inode, &list));
  for (auto& e : list) {
    if (e.name == name) return std::move(e.value);
  }
  return Status(Code::kNoData, std::string(name));
}

Result<std::vector<std::string>> FilesystemImpl::listxattr(Ino ino) {
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  std::shared_lock lock(inode->mu);
  XattrList list;
  RETURN_IF_ERROR(read_xattrs(*inode, &list));
  std::vector<std::string> names;
  for (auto& e : list) names.push_back(std::move(e.name));
  return names;
}

Status FilesystemImpl::removexattr(Ino ino, std::string_view name) {
  RETURN_IF_ERROR(check_xattr_name(name));
  RETURN_IF_ERROR(check_writable());
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  std::unique_lock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  RETURN_IF_ERROR(check_may_modify(inode->core, "remove an xattr"));
  XattrList list;
  RETURN_IF_ERROR(read_xattrs(*inode, &list));
  auto it = find_xattr(list, name);
  if (it == list.end()) return Status(Code::kNoData, std::string(name));
  list.erase(it);
  InodeCore saved = inode->core;
  MetaTxn t(*this);
  Status s = write_xattrs(t, *inode, list);
  if (!s.is_ok()) {
    inode->core = saved;
    return s;
  }
  inode->core.ctime = now_ns();
  t.dirty(inode);
  s = t.commit();
  if (!s.is_ok()) inode->core = saved;
  return s;
}

}  // namespace sealfs
