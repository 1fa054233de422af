#include "fuse/test_hooks.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <string>

#include "util/log.h"
#include "util/sync_point.h"

namespace sealfs::fuse {

void arm_sync_points_from_env() {
#ifdef SEALFS_SYNC_POINTS
  const char* dir = getenv("SEALFS_TEST_SYNC_DIR");
  const char* names = getenv("SEALFS_TEST_SYNC_POINTS");
  if (dir == nullptr || names == nullptr) return;
  std::istringstream list(names);
  std::string name;
  while (std::getline(list, name, ',')) {
    if (name.empty()) continue;
    const std::string base = std::string(dir) + "/" + name;
    log().warn("test hook: sync point {} armed ({}.reached / .go)", name, base);
    sync_point::arm(name, [name, base] {
      sync_point::disarm(name);  // once: later threads pass
      int fd = open((base + ".reached").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd >= 0) close(fd);
      // Polling a file is the one cross-process signal every test can give
      // without sharing anything else with the daemon.
      while (access((base + ".go").c_str(), F_OK) != 0) usleep(1000);
    });
  }
#endif
}

}  // namespace sealfs::fuse
