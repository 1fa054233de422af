// getattr and setattr.
#include <sys/stat.h>

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
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  ReaderLock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  return attr_of(*inode);
}

Result<Attr> FilesystemImpl::setattr(Ino ino, const SetAttr& req) {
  CacheGate::Pass pass(cache_gate_);
  RETURN_IF_ERROR(check_writable());
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  WriterLock lock(inode->mu);
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
  // A truncate to the size the file has changes no byte and no block, so it
  // asks no lease to break (SQLite sets its database's size at every
  // checkpoint, mostly to what it is); it moves the times as any truncate.
  bool same_size = false;
  if (req.valid & SetAttr::kSize) {
    if (S_ISDIR(c.mode)) return Status(Code::kIsDir, "truncate a directory");
    if (!S_ISREG(c.mode)) return Status(Code::kInvalid, "truncate a special file");
    if (req.size > kMaxFileSize) return Status(Code::kTooBig, "size beyond the maximum");
    same_size = req.size == c.size;
    if (!same_size) {
      ASSIGN_OR_RETURN(LayoutPermit permit, gate(*inode));
      // Size first (its own transactions); then the rest in one.
      RETURN_IF_ERROR(truncate_locked(*inode, permit, req.size));
    }
  }
  InodeCore saved = c;
  int64_t now = now_ns();
  bool changed = false;
  if (same_size && !(req.valid & (SetAttr::kMtime | SetAttr::kMtimeNow))) {
    c.mtime = now;
    changed = true;
  }
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
    Status s = Status::ok();
    // chmod rewrites the access ACL's owner, mask and other entries in the
    // same transaction (the kernel leaves posix_acl_chmod to FUSE daemons).
    if (req.valid & SetAttr::kMode) s = chmod_access_acl(t, *inode);
    if (!s.is_ok()) {
      c = saved;
      return s;
    }
    t.dirty(inode);
    s = t.commit();
    if (!s.is_ok()) {
      c = saved;
      return s;
    }
  }
  return attr_of(*inode);
}

}  // namespace sealfs
