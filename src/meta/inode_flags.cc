#include "meta/inode_flags.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <string>

namespace sealfs {

namespace {
Status refused(const InodeCore& c, const char* what) {
  return Status(Code::kPermission, std::string(what) + ": " +
                                       (is_immutable(c) ? "immutable" : "append-only") + " inode");
}
}  // namespace

Status check_may_modify(const InodeCore& c, const char* what) {
  if (is_immutable(c) || is_append_only(c)) return refused(c, what);
  return Status::ok();
}

Status check_dir_may_change(const InodeCore& dir, bool removing) {
  if (is_immutable(dir)) return refused(dir, "change an entry of the directory");
  if (removing && is_append_only(dir)) return refused(dir, "remove an entry of the directory");
  return Status::ok();
}

Status check_may_open(const InodeCore& c, int open_flags) {
  const bool writing = (open_flags & O_ACCMODE) != O_RDONLY;
  const bool truncating = (open_flags & O_TRUNC) != 0 && S_ISREG(c.mode);
  if (is_immutable(c) && (writing || truncating)) return refused(c, "open for writing");
  if (is_append_only(c)) {
    if (truncating) return refused(c, "open with O_TRUNC");
    if (writing && (open_flags & O_APPEND) == 0) return refused(c, "open for writing without O_APPEND");
  }
  return Status::ok();
}

Status check_may_setattr(const InodeCore& c, const SetAttr& req) {
  if (!is_immutable(c) && !is_append_only(c)) return Status::ok();
  // chown(f, -1, -1) (kKeepOwner, or a bare ctime) passes, as the kernel's
  // notify_change checks the flags only for an owner, mode or time given.
  constexpr uint32_t kNoOwnerModeOrTime = SetAttr::kCtime | SetAttr::kKeepOwner;
  if (is_immutable(c) && (req.valid & ~kNoOwnerModeOrTime) != 0) return refused(c, "setattr");
  constexpr uint32_t kExplicit =
      SetAttr::kSize | SetAttr::kMode | SetAttr::kUid | SetAttr::kGid | SetAttr::kAtime;
  if (req.valid & kExplicit) return refused(c, "setattr");
  if ((req.valid & SetAttr::kMtime) && !req.cached_times) return refused(c, "set mtime");
  return Status::ok();
}

Status check_may_fallocate(const InodeCore& c, int mode) {
  if (is_immutable(c)) return refused(c, "fallocate");
  if (is_append_only(c) && (mode & ~FALLOC_FL_KEEP_SIZE) != 0) return refused(c, "fallocate");
  return Status::ok();
}

Status check_flags_change(const InodeCore& c, const InodeAttrFlags& want, FlagsCaller& caller) {
  if ((want.flags & ~format::kInodeUserFlags) != 0) {
    return Status(Code::kNotSupported, "inode flags " + std::to_string(want.flags));
  }
  if (caller.fsuid() != c.uid && !caller.has_fowner()) {
    return Status(Code::kPermission, "change flags: not the owner");
  }
  const uint32_t sealing = format::kInodeImmutable | format::kInodeAppend;
  if (((c.flags ^ want.flags) & sealing) != 0 && !caller.has_linux_immutable()) {
    return Status(Code::kPermission, "change immutable or append-only: no CAP_LINUX_IMMUTABLE");
  }
  return Status::ok();
}

}  // namespace sealfs
