// What immutable and append-only forbid, and who may change an inode's
// flags: the kernel's rules (may_open, may_delete, notify_change,
// xattr_permission, vfs_fallocate, vfs_fileattr_set), applied by the
// daemon because the kernel does not know a FUSE inode's flags. Each check
// returns kPermission (EPERM), as the kernel does.
#pragma once

#include <cstdint>

#include "meta/filesystem.h"
#include "meta/inode.h"
#include "util/status.h"

namespace sealfs {

// What a new inode takes from its directory: the flags ext4 and tmpfs pass
// down (EXT4_FL_INHERITED, SHMEM_FL_INHERITED) that sealfs keeps; never
// immutable or append-only.
inline constexpr uint32_t kFlagsInheritedFromDirectory =
    format::kInodeNodump | format::kInodeNoatime;

inline bool is_immutable(const InodeCore& c) { return (c.flags & format::kInodeImmutable) != 0; }
inline bool is_append_only(const InodeCore& c) { return (c.flags & format::kInodeAppend) != 0; }

// Unlink, rename of or over it, link to it, an xattr change, chmod, chown,
// an explicit time: neither an immutable nor an append-only inode.
Status check_may_modify(const InodeCore& c, const char* what);
// A directory whose entries change (create, link into, remove from, rename
// in or out): not an immutable one; `removing` an entry: nor an
// append-only one.
Status check_dir_may_change(const InodeCore& dir, bool removing);
// open(2) with these flags: no write access to an immutable file, nor to an
// append-only one without O_APPEND; no O_TRUNC of either.
Status check_may_open(const InodeCore& c, int open_flags);
// setattr: size or mode/owner/explicit times refused on both; times set to
// now (touch) refused on an immutable inode only; `cached_times` (an mtime
// the writeback cache flushes) allowed on an append-only one.
Status check_may_setattr(const InodeCore& c, const SetAttr& req);
// fallocate: none on an immutable file; only plain allocation (mode 0 or
// FALLOC_FL_KEEP_SIZE) on an append-only one.
Status check_may_fallocate(const InodeCore& c, int mode);
// set_flags: unknown bits kNotSupported; owner or CAP_FOWNER; changing
// immutable or append-only needs CAP_LINUX_IMMUTABLE.
Status check_flags_change(const InodeCore& c, const InodeAttrFlags& want, FlagsCaller& caller);

}  // namespace sealfs
