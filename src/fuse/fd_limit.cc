#include "fuse/fd_limit.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>

#include "util/log.h"

namespace sealfs::fuse {

void raise_fd_limit() {
  struct rlimit nofile {};
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0 || nofile.rlim_cur >= nofile.rlim_max) return;
  const rlim_t before = nofile.rlim_cur;
  nofile.rlim_cur = nofile.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) {
    log().warn("cannot raise the descriptor limit from {}: {}", before, std::strerror(errno));
    return;
  }
  log().debug("descriptor limit raised from {} to {}", before, nofile.rlim_cur);
}

}  // namespace sealfs::fuse
