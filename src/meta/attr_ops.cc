// getattr, setattr and extended attributes.
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstring>

#include "meta/filesystem_impl.h"
#include "meta/inode_flags.h"

namespace sealfs {

namespace {
int64_t ns_of(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

Result<Attr> FilesystemImpl::getattr(Ino ino) {
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  std::shared_lock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  return attr_of(*inode);
}

Result<Attr> FilesystemImpl::setattr(Ino ino, const SetAttr& req) {
  RETURN_IF_ERROR(check_writable());
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  std::unique_lock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  InodeCore& c = inode->core;
  RETURN_IF_ERROR(check_may_setattr(c, req));
  // The empty setattr of chown(f, -1, -1) is also what the kernel sends
  // before a write by a caller without CAP_FSETID (file_remove_privs under
  // KILLPRIV_V2, past every permission check). Taken as a chown only from
  // a caller that may chmod the file, which tmpfs requires of a chown that
  // drops bits: anyone else's is left alone, and a write's own handler
  // clears what that writer's write must (drop_setid).
  if ((req.valid & SetAttr::kKeepOwner) && req.caller != nullptr &&
      !req.caller->may_chmod(c.uid)) {
    return attr_of(*inode);
  }
  if (req.valid & SetAttr::kSize) {
    if (S_ISDIR(c.mode)) return Status(Code::kIsDir, "truncate a directory");
    if (!S_ISREG(c.mode)) return Status(Code::kInvalid, "truncate a special file");
    if (req.size > kMaxFileSize) return Status(Code::kTooBig, "size beyond the maximum");
    RETURN_IF_ERROR(gate(*inode));
  }
  // Size first (its own transactions); then the rest in one.
  if (req.valid & SetAttr::kSize) RETURN_IF_ERROR(truncate_locked(*inode, req.size));
  InodeCore saved = c;
  int64_t now = now_ns();
  bool changed = false;
  const uint32_t chown_like = SetAttr::kUid | SetAttr::kGid | SetAttr::kKeepOwner;
  if (req.valid & SetAttr::kMode) {
    c.mode = (c.mode & S_IFMT) | (req.mode & 07777);
    changed = true;
  }
  if (req.valid & SetAttr::kUid) c.uid = req.uid;
  if (req.valid & SetAttr::kGid) c.gid = req.gid;
  // The kernel never sends a mode with a size or an owner: the set-id bits
  // it would clear are decided against the mode and group held before.
  if (!(req.valid & SetAttr::kMode)) {
    uint32_t drop = 0;
    if ((req.valid & SetAttr::kSize) && req.caller != nullptr) {
      drop |= setid_bits_to_drop(saved.mode, saved.gid, *req.caller);
    }
    if (req.valid & chown_like) {
      drop |= setid_bits_to_drop_on_chown(saved.mode, saved.gid, req.caller.get());
    }
    if ((c.mode & drop) != 0) {
      c.mode &= ~drop;
      changed = true;
    }
  }
  if ((req.valid & chown_like) != 0) changed = true;
  if (req.valid & SetAttr::kAtimeNow) c.atime = now, changed = true;
  else if (req.valid & SetAttr::kAtime) c.atime = ns_of(req.atime), changed = true;
  if (req.valid & SetAttr::kMtimeNow) c.mtime = now, changed = true;
  else if (req.valid & SetAttr::kMtime) c.mtime = ns_of(req.mtime), changed = true;
  if (req.valid & SetAttr::kCtime) {
    c.ctime = ns_of(req.ctime);
  } else if (changed) {
    c.ctime = now;
  }
  if (changed || (req.valid & SetAttr::kCtime)) {
    MetaTxn t(*this);
    t.dirty(inode);
    Status s = t.commit();
    if (!s.is_ok()) {
      c = saved;
      return s;
    }
  }
  return attr_of(*inode);
}

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

Status FilesystemImpl::setxattr(Ino ino, std::string_view name, const void* value, size_t size,
                                int flags) {
  RETURN_IF_ERROR(check_xattr_name(name));
  RETURN_IF_ERROR(check_writable());
  if (size > 65536) return Status(Code::kTooBig, "xattr value too large");
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  std::unique_lock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  RETURN_IF_ERROR(check_may_modify(inode->core, "set an xattr"));
  XattrList list;
  RETURN_IF_ERROR(read_xattrs(*inode, &list));
  auto it = std::find_if(list.begin(), list.end(), [&](const XattrEntry& e) { return e.name == name; });
  if ((flags & XATTR_CREATE) && it != list.end()) return Status(Code::kExists, std::string(name));
  if ((flags & XATTR_REPLACE) && it == list.end()) return Status(Code::kNoData, std::string(name));
  const auto* v = static_cast<const uint8_t*>(value);
  std::vector<uint8_t> bytes(v, v + size);
  if (it != list.end()) it->value = std::move(bytes);
  else list.push_back(XattrEntry{std::string(name), std::move(bytes)});
  if (!xattr_fits(list)) return Status(Code::kNoSpace, "xattrs do not fit the inode's block");
  InodeCore saved = inode->core;
  MetaTxn t(*this);
  uint64_t b = inode->core.xattr_block;
  std::byte* img = nullptr;
  if (b == 0) {
    ASSIGN_OR_RETURN(BlockExtent e, alloc_->allocate(t.txn(), 1, 0));
    b = e.start;
    inode->core.xattr_block = b;
    inode->core.blocks += 1;
    img = t.fresh_block(b);
  } else {
    img = t.block(b);
  }
  encode_xattr_block(img, inode->ino, list);
  inode->core.ctime = now_ns();
  t.dirty(inode);
  Status s = t.commit();
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
  auto it = std::find_if(list.begin(), list.end(), [&](const XattrEntry& e) { return e.name == name; });
  if (it == list.end()) return Status(Code::kNoData, std::string(name));
  list.erase(it);
  InodeCore saved = inode->core;
  MetaTxn t(*this);
  uint64_t b = inode->core.xattr_block;
  if (list.empty()) {
    t.freed_metadata();
    alloc_->free(t.txn(), {b, 1});
    inode->core.xattr_block = 0;
    inode->core.blocks -= 1;
  } else {
    encode_xattr_block(t.block(b), inode->ino, list);
  }
  inode->core.ctime = now_ns();
  t.dirty(inode);
  Status s = t.commit();
  if (!s.is_ok()) inode->core = saved;
  return s;
}

}  // namespace sealfs
