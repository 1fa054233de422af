// POSIX ACLs kept in step with the mode, as fs/posix_acl.c does for a local
// filesystem: FUSE leaves these rules to the daemon (docs/daemon.md "POSIX
// ACLs"). The ACLs themselves are ordinary attributes of the inode, stored
// with the others (xattr_ops.cc); an access ACL that says no more than the
// mode is not stored at all.
#include <sys/stat.h>

#include <algorithm>

#include "meta/filesystem_impl.h"
#include "meta/posix_acl.h"

namespace sealfs {

namespace {

Result<Acl> stored_acl(const Inode& inode, const XattrEntry& e) {
  auto acl = parse_acl(e.value.data(), e.value.size());
  if (acl.is_ok()) return acl;
  return Status(Code::kCorruption, "inode " + std::to_string(inode.ino) + ": stored " + e.name +
                                       " is not a valid ACL: " + acl.status().message());
}

}  // namespace

Status FilesystemImpl::set_acl_in_list(Inode& inode, std::string_view name, const Acl& acl,
                                       SetidCaller* caller, XattrList* list) {
  InodeCore& c = inode.core;
  if (S_ISLNK(c.mode)) return Status(Code::kNotSupported, "ACL on a symlink");
  if (name == kAclDefaultXattr && !S_ISDIR(c.mode)) {
    return Status(Code::kAccess, "default ACL on a non-directory");
  }
  auto it = find_xattr(*list, name);
  // The header alone is no ACL: the kernel turns it into a removal.
  if (acl.empty()) {
    if (it != list->end()) list->erase(it);
    return Status::ok();
  }
  if (name == kAclAccessXattr) {
    uint32_t mode = (c.mode & ~uint32_t{0777}) | acl_mode_bits(acl);
    // posix_acl_update_mode: a caller outside the file's group and without
    // CAP_FSETID loses S_ISGID (FUSE_SETXATTR_ACL_KILL_SGID, which libfuse
    // 3.14 does not pass on: the daemon asks the caller itself). Asked under
    // the inode's lock, and only of a set-group-ID inode.
    if ((mode & S_ISGID) && caller != nullptr && !caller->in_group(c.gid) &&
        !caller->has_fsetid()) {
      mode &= ~uint32_t{S_ISGID};
    }
    c.mode = mode;
    if (acl_is_mode(acl)) {
      if (it != list->end()) list->erase(it);
      return Status::ok();
    }
  }
  std::vector<uint8_t> bytes = encode_acl(acl);
  if (it != list->end()) it->value = std::move(bytes);
  else list->push_back(XattrEntry{std::string(name), std::move(bytes)});
  return Status::ok();
}

Status FilesystemImpl::chmod_access_acl(MetaTxn& t, Inode& inode) {
  if (inode.core.xattr_block == 0) return Status::ok();
  XattrStore store;
  RETURN_IF_ERROR(read_xattrs(inode, &store));
  auto it = find_xattr(store.list, kAclAccessXattr);
  if (it == store.list.end()) return Status::ok();
  ASSIGN_OR_RETURN(Acl acl, stored_acl(inode, *it));
  acl_apply_mode(acl, inode.core.mode);
  it->value = encode_acl(acl);
  return write_xattrs(t, inode, std::move(store.blocks), store.list);
}

Status FilesystemImpl::inherit_acls(const Inode& dir, uint32_t* mode, uint32_t umask,
                                    XattrList* child) {
  child->clear();
  if (S_ISLNK(*mode)) return Status::ok();
  XattrStore store;
  if (dir.core.xattr_block != 0) RETURN_IF_ERROR(read_xattrs(dir, &store));
  XattrList& parent = store.list;
  auto def = find_xattr(parent, kAclDefaultXattr);
  // No default ACL: the umask applies, as the kernel would have applied it
  // (the daemon asks for FUSE_CAP_DONT_MASK so that it can decide).
  if (def == parent.end()) {
    *mode &= ~(umask & 0777);
    return Status::ok();
  }
  ASSIGN_OR_RETURN(Acl acl, stored_acl(dir, *def));
  if (S_ISDIR(*mode)) child->push_back(XattrEntry{std::string(kAclDefaultXattr), def->value});
  *mode = acl_create_masq(acl, *mode);
  if (!acl_is_mode(acl)) {
    child->push_back(XattrEntry{std::string(kAclAccessXattr), encode_acl(acl)});
  }
  return Status::ok();
}

}  // namespace sealfs
