#include "fuse/test_hooks.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
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
  std::string entry;
  while (std::getline(list, entry, ',')) {
    if (entry.empty()) continue;
    const size_t at = entry.find('@');
    const std::string name = entry.substr(0, at);
    const long nth =
        at == std::string::npos ? 1 : std::strtol(entry.c_str() + at + 1, nullptr, 10);
    if (name.empty() || nth < 1) {
      log().warn("test hook: ignoring sync point entry '{}'", entry);
      continue;
    }
    const std::string base = std::string(dir) + "/" + name;
    log().warn("test hook: sync point {} armed for arrival {} ({}.reached / .go)", name, nth,
               base);
    // Callbacks run concurrently: exactly the N-th arrival pauses.
    auto arrivals = std::make_shared<std::atomic<long>>(0);
    sync_point::arm(name, [name, base, nth, arrivals] {
      if (arrivals->fetch_add(1) + 1 != nth) return;
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
