#include "preload/anchors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "preload/real_calls.h"

namespace sealfs::preload {
namespace {

struct Anchor {
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  int access = 0;      // O_ACCMODE bits of the descriptor it duplicates
  unsigned users = 0;  // mappings that use it now
};

// Never destroyed: the program's threads may still close while it exits.
std::vector<Anchor>& anchors() {
  static auto* table = new std::vector<Anchor>();
  return *table;
}

// Descriptor numbers the program mapped a sealfs file through: only their
// close looks at the anchors. A bit per number below kSeenLimit; a higher
// number is not remembered, and its file's anchors stay until another
// close (or the program's exit).
constexpr int kSeenLimit = 1 << 16;
std::atomic<uint64_t> g_seen[kSeenLimit / 64];

void mark_seen(int fd) {
  if (fd >= 0 && fd < kSeenLimit) g_seen[fd / 64].fetch_or(uint64_t{1} << (fd % 64), std::memory_order_relaxed);
}

// Clears the bit; true when it was set.
bool take_seen(int fd) {
  if (fd < 0 || fd >= kSeenLimit) return false;
  const uint64_t bit = uint64_t{1} << (fd % 64);
  if ((g_seen[fd / 64].load(std::memory_order_relaxed) & bit) == 0) return false;
  return (g_seen[fd / 64].fetch_and(~bit, std::memory_order_relaxed) & bit) != 0;
}

}  // namespace

std::mutex& anchor_mutex() {
  static std::mutex mu;
  return mu;
}

int acquire_anchor(int program_fd, dev_t dev, ino_t ino) {
  const int flags = fcntl(program_fd, F_GETFL);
  if (flags < 0) return -1;
  const int access = flags & O_ACCMODE;
  std::lock_guard lock(anchor_mutex());
  for (Anchor& a : anchors()) {
    if (a.fd == program_fd || (a.dev == dev && a.ino == ino && a.access == access)) {
      a.users++;
      if (a.fd != program_fd) mark_seen(program_fd);
      return a.fd;
    }
  }
  const int fd = fcntl(program_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return -1;
  anchors().push_back(Anchor{fd, dev, ino, access, 1});
  mark_seen(program_fd);
  return fd;
}

void release_anchor(int anchor) {
  std::lock_guard lock(anchor_mutex());
  for (Anchor& a : anchors()) {
    if (a.fd == anchor && a.users > 0) {
      a.users--;
      return;
    }
  }
}

void before_program_close(int fd) {
  if (!take_seen(fd)) return;
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &stx) != 0) return;
  const dev_t dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  std::vector<int> unused;
  {
    std::lock_guard lock(anchor_mutex());
    auto& all = anchors();
    for (size_t i = 0; i < all.size();) {
      const Anchor& a = all[i];
      if (a.dev == dev && a.ino == stx.stx_ino && a.users == 0 && a.fd != fd) {
        unused.push_back(a.fd);
        all[i] = all.back();
        all.pop_back();
      } else {
        ++i;
      }
    }
  }
  // Outside the lock: a close of a FUSE file may wait for the daemon.
  for (int a : unused) real_close(a);
}

}  // namespace sealfs::preload
