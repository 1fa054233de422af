#include "fuse/reply.h"

#include <cstring>

namespace sealfs::fuse {

void Reply::error(const Status& status) {
  if (status.is_ok()) {
    error(0);
    return;
  }
  if (status.code() == Code::kCorruption || status.code() == Code::kBadCrc) {
    log().warn("fuse {} (inode {}): {}", op_, ino_, status.to_string());
  } else {
    log().debug("fuse {} (inode {}): {}", op_, ino_, status.to_string());
  }
  mark();
  fuse_reply_err(req_, status.to_errno());
}

void Reply::error(int err) {
  if (err != 0) log().debug("fuse {} (inode {}): {}", op_, ino_, std::strerror(err));
  mark();
  fuse_reply_err(req_, err);
}

}  // namespace sealfs::fuse
