#include "fuse/kernel_cache.h"

#include <cerrno>
#include <cstring>

#include "util/log.h"

namespace sealfs::fuse {

void drop_cached_attributes(fuse_session* session, uint64_t ino) {
  if (session == nullptr) return;
  // Offset -1: attributes only (see the header).
  int rc = fuse_lowlevel_notify_inval_inode(session, ino, -1, 0);
  if (rc != 0 && rc != -ENOENT) {
    log().debug("inode {}: attribute invalidation: {}", ino, std::strerror(-rc));
  }
}

}  // namespace sealfs::fuse
