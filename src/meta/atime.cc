// atime on read, by the mount's noatime / relatime / strictatime. The kernel
// leaves a FUSE file's times to the daemon, so the daemon applies the
// mount's policy itself (its own updates are lazy: docs/design.md,
// "Timestamps").
#include <sys/stat.h>

#include "meta/filesystem_impl.h"
#include "meta/mount_verifier.h"

namespace sealfs {

namespace {
constexpr int64_t kDayNs = 24ll * 3600 * 1000000000;
}  // namespace

bool FilesystemImpl::atime_due(const InodeCore& c, int64_t now) const {
  // chattr +A: as the kernel's IS_NOATIME.
  if (c.flags & format::kInodeNoatime) return false;
  switch (options_.atime) {
    case AtimePolicy::kNever:
      return false;
    case AtimePolicy::kStrict:
      return c.atime != now;
    case AtimePolicy::kRelative:
      break;
  }
  // relatime (the kernel's relatime_need_update): atime not after mtime or
  // ctime, or more than a day old.
  return c.atime <= c.mtime || c.atime <= c.ctime || now - c.atime > kDayNs;
}

bool FilesystemImpl::atime_wanted(Inode& inode) {
  // Not once the mount is read-only for good (a media fault, damage found
  // by the mount's verifier): such an atime could never be written.
  if (read_only_ || options_.atime == AtimePolicy::kNever || region_->media_failed() ||
      verifier_->damaged.load(std::memory_order_relaxed)) {
    return false;
  }
  ReaderLock lock(inode.mu);
  return inode.in_use() && S_ISREG(inode.core.mode) && atime_due(inode.core, now_ns());
}

}  // namespace sealfs
