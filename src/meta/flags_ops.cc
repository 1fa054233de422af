// get_flags / set_flags: the inode flags chattr and lsattr see.
#include "meta/filesystem_impl.h"
#include "meta/inode_flags.h"

namespace sealfs {

Result<InodeAttrFlags> FilesystemImpl::get_flags(Ino ino) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  ReaderLock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  return InodeAttrFlags{inode->core.flags & format::kInodeUserFlags, inode->core.project_id};
}

Status FilesystemImpl::set_flags(Ino ino, const InodeAttrFlags& want, FlagsCaller& caller) {
  CacheGate::Pass pass(cache_gate_);
  RETURN_IF_ERROR(check_writable());
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  WriterLock lock(inode->mu);
  if (!inode->in_use()) return Status(Code::kStale, "inode freed");
  InodeCore& c = inode->core;
  RETURN_IF_ERROR(check_flags_change(c, want, caller));
  const uint32_t old_user = c.flags & format::kInodeUserFlags;
  if (old_user == want.flags && c.project_id == want.project_id) return Status::ok();
  // A writable direct mapping must not outlive immutable or append-only:
  // the lease engine refuses new writable grants under the same lock, and
  // the leases granted before go first. (Read-only holders of an immutable
  // file map again and are never broken for its layout after that.)
  const uint32_t sealing = format::kInodeImmutable | format::kInodeAppend;
  if ((want.flags & sealing & ~old_user) != 0) RETURN_IF_ERROR(gate(*inode).status());
  InodeCore saved = c;
  c.flags = (c.flags & ~format::kInodeUserFlags) | want.flags;
  c.project_id = want.project_id;
  c.ctime = now_ns();
  MetaTxn t(*this);
  t.dirty(inode);
  if ((want.flags & sealing) != 0) {
    t.edit_superblock([](Superblock& sb) {
      sb.feature_ro_compat |= format::kFeatureRoCompatSealFlags;
    });
    t.on_commit([this] { refresh_backup_superblock(); });
  }
  Status s = t.commit();
  if (!s.is_ok()) c = saved;
  return s;
}

}  // namespace sealfs
