// Set-id bits cleared on a change of contents, size or owner, by the rules
// of the kernel's setattr_should_drop_suidgid / setattr_should_drop_sgid
// (fs/attr.c). The daemon applies them itself because with FUSE's
// HANDLE_KILLPRIV_V2 the kernel leaves them to the filesystem, and because
// FUSE's fallocate never applied them at all (docs/daemon.md).
#include <sys/stat.h>

#include "meta/filesystem_impl.h"
#include "meta/meta_txn.h"

namespace sealfs {

namespace {

// S_ISGID without group execute marks mandatory locking, not set-group-ID:
// the kernel keeps it for a caller in the file's group.
bool sgid_goes(uint32_t mode, uint32_t gid, SetidCaller* caller) {
  if ((mode & S_ISGID) == 0) return false;
  if (mode & S_IXGRP) return true;
  return caller != nullptr && !caller->in_group(gid) && !caller->has_fsetid();
}

}  // namespace

uint32_t setid_bits_to_drop(uint32_t mode, uint32_t gid, SetidCaller& caller) {
  if (!S_ISREG(mode) || (mode & (S_ISUID | S_ISGID)) == 0) return 0;
  uint32_t drop = (mode & S_ISUID) ? S_ISUID : 0;
  if (sgid_goes(mode, gid, &caller)) drop |= S_ISGID;
  if (drop != 0 && caller.has_fsetid()) return 0;
  return drop;
}

uint32_t setid_bits_to_drop_on_chown(uint32_t mode, uint32_t gid, SetidCaller* caller) {
  if (S_ISDIR(mode)) return 0;
  uint32_t drop = (mode & S_ISUID) ? S_ISUID : 0;
  if (sgid_goes(mode, gid, caller)) drop |= S_ISGID;
  return drop;
}

Result<bool> FilesystemImpl::drop_setid(Ino ino, SetidCaller& caller) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  uint32_t mode = 0, gid = 0;
  {
    ReaderLock lock(inode->mu);
    if (!inode->in_use()) return Status(Code::kStale, "inode freed");
    mode = inode->core.mode;
    gid = inode->core.gid;
  }
  if (!S_ISREG(mode) || (mode & (S_ISUID | S_ISGID)) == 0) return false;
  // The caller is asked outside the lock: its answer may read /proc.
  uint32_t drop = setid_bits_to_drop(mode, gid, caller);
  if (drop == 0) return false;
  RETURN_IF_ERROR(check_writable());
  WriterLock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  InodeCore& c = inode->core;
  // The write this precedes fails on an immutable file: so does this, with
  // the mode left as it is (the kernel checks immutable before it clears).
  if (c.flags & format::kInodeImmutable) {
    return Status(Code::kPermission, "change of an immutable inode");
  }
  // A chmod or chown in between: decide again on what is there now.
  if (c.mode != mode || c.gid != gid) drop = setid_bits_to_drop(c.mode, c.gid, caller);
  if ((c.mode & drop) == 0) return false;
  InodeCore saved = c;
  c.mode &= ~drop;
  c.ctime = now_ns();
  MetaTxn t(*this);
  t.dirty(inode);
  Status s = t.commit();
  if (!s.is_ok()) {
    c = saved;
    return s;
  }
  return true;
}

}  // namespace sealfs
