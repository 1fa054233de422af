// chattr and lsattr: FS_IOC_GETFLAGS / FS_IOC_SETFLAGS and
// FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR (docs/daemon.md "Inode flags").
//
// Since Linux 5.13 the kernel answers these ioctls on a FUSE file through
// its fileattr operations, which send FUSE_IOCTL requests of their own
// (fs/fuse/ioctl.c: a 4-byte flags word, or a struct fsxattr) after the
// VFS's checks (vfs_fileattr_set: owner or CAP_FOWNER, CAP_LINUX_IMMUTABLE
// for immutable and append-only). The metadata layer checks the same
// again with the caller's credentials, and enforces what the flags forbid:
// the kernel does not know a FUSE inode's flags. Every other ioctl is
// ENOTTY, as on a filesystem without it.
#include <linux/fs.h>

#include <cstring>
#include <memory>

#include "fuse/caller_privilege.h"
#include "fuse/deferred_change.h"
#include "fuse/kernel_cache.h"
#include "fuse/ops_internal.h"
#include "sealfs/format.h"
#include "sealfs/sealfs.h"

namespace sealfs::fuse {
namespace {

struct FlagPair {
  uint32_t fs_flag;  // FS_*_FL
  uint32_t xflag;    // FS_XFLAG_*
  uint32_t inode;    // format::kInode*
};
constexpr FlagPair kFlags[] = {
    {FS_IMMUTABLE_FL, FS_XFLAG_IMMUTABLE, format::kInodeImmutable},
    {FS_APPEND_FL, FS_XFLAG_APPEND, format::kInodeAppend},
    {FS_NODUMP_FL, FS_XFLAG_NODUMP, format::kInodeNodump},
    {FS_NOATIME_FL, FS_XFLAG_NOATIME, format::kInodeNoatime},
};

// `user` in the FS_*_FL (or, with `x`, FS_XFLAG_*) encoding to inode bits;
// false when it holds a bit sealfs does not keep.
bool to_inode_flags(uint32_t user, bool x, uint32_t* out) {
  *out = 0;
  for (const FlagPair& f : kFlags) {
    const uint32_t bit = x ? f.xflag : f.fs_flag;
    if (user & bit) {
      *out |= f.inode;
      user &= ~bit;
    }
  }
  return user == 0;
}

uint32_t from_inode_flags(uint32_t inode, bool x) {
  uint32_t out = 0;
  for (const FlagPair& f : kFlags) {
    if (inode & f.inode) out |= x ? f.xflag : f.fs_flag;
  }
  return out;
}

bool try_set_flags(Reply& r, Ino ino, const InodeAttrFlags& want, FlagsCaller& caller) {
  Status st = r.ctx().fs->set_flags(ino, want, caller);
  if (sealed(st)) return false;
  if (!st.is_ok()) return r.error(st), true;
  // The ctime changed, and an ioctl's answer carries no attributes: the
  // kernel would show the old one for attr_timeout.
  drop_cached_attributes(r.ctx().session, ino);
  r.ioctl(nullptr, 0);
  return true;
}

// Sets `want`, first breaking the file's leases when it becomes immutable or
// append-only while leased (a writable mapping must not outlive that).
void set_flags(Reply& r, Ino ino, const InodeAttrFlags& want) {
  const fuse_ctx* c = fuse_req_ctx(r.req());
  auto caller = std::make_shared<CallerPrivilege>(c->uid, c->gid, c->pid);
  if (try_set_flags(r, ino, want, *caller)) return;
  defer_layout_change(r, ino, SEALFS_BREAK_OTHER, [ino, want, caller](Reply& again) {
    return try_set_flags(again, ino, want, *caller);
  });
}

void get_flags_word(Reply& r, Ino ino, size_t out_size) {
  uint32_t word = 0;
  if (out_size < sizeof(word)) return r.error(EINVAL);
  auto flags = r.ctx().fs->get_flags(ino);
  if (!flags.is_ok()) return r.error(flags.status());
  word = from_inode_flags(flags->flags, false);
  r.ioctl(&word, sizeof(word));
}

void set_flags_word(Reply& r, Ino ino, const void* in, size_t in_size) {
  uint32_t word = 0;
  if (in_size < sizeof(word)) return r.error(EINVAL);
  std::memcpy(&word, in, sizeof(word));
  auto now = r.ctx().fs->get_flags(ino);
  if (!now.is_ok()) return r.error(now.status());
  InodeAttrFlags want = *now;
  if (!to_inode_flags(word, false, &want.flags)) return r.error(EOPNOTSUPP);
  set_flags(r, ino, want);
}

void get_fsxattr(Reply& r, Ino ino, size_t out_size) {
  struct fsxattr fa {};
  if (out_size < sizeof(fa)) return r.error(EINVAL);
  auto flags = r.ctx().fs->get_flags(ino);
  if (!flags.is_ok()) return r.error(flags.status());
  fa.fsx_xflags = from_inode_flags(flags->flags, true);
  fa.fsx_projid = flags->project_id;
  r.ioctl(&fa, sizeof(fa));
}

void set_fsxattr(Reply& r, Ino ino, const void* in, size_t in_size) {
  struct fsxattr fa {};
  if (in_size < sizeof(fa)) return r.error(EINVAL);
  std::memcpy(&fa, in, sizeof(fa));
  // No extent size hints: only "none" is accepted, as it was reported.
  if (fa.fsx_extsize != 0 || fa.fsx_cowextsize != 0) return r.error(EINVAL);
  InodeAttrFlags want;
  if (!to_inode_flags(fa.fsx_xflags, true, &want.flags)) return r.error(EOPNOTSUPP);
  want.project_id = fa.fsx_projid;
  set_flags(r, ino, want);
}

}  // namespace

void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void* arg, fuse_file_info* fi,
              unsigned flags, const void* in_buf, size_t in_bufsz, size_t out_bufsz) {
  (void)arg;
  (void)fi;
  (void)flags;
  handle(req, "ioctl", ino, [&](Reply& r) {
    switch (cmd) {
      case FS_IOC_GETFLAGS:
      case FS_IOC32_GETFLAGS:
        return get_flags_word(r, ino, out_bufsz);
      case FS_IOC_SETFLAGS:
      case FS_IOC32_SETFLAGS:
        return set_flags_word(r, ino, in_buf, in_bufsz);
      case FS_IOC_FSGETXATTR:
        return get_fsxattr(r, ino, out_bufsz);
      case FS_IOC_FSSETXATTR:
        return set_fsxattr(r, ino, in_buf, in_bufsz);
      default:
        return r.expected_error(ENOTTY);
    }
  });
}

}  // namespace sealfs::fuse
