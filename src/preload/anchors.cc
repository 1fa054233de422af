#include "preload/anchors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

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
// Anchors taken out of the table, to be closed without a lock held.
std::vector<int>& dropped() {
  static auto* list = new std::vector<int>();
  return *list;
}

// Anchors are made at this number or above, away from the low numbers a
// program reuses for its own files (stdio, a close-and-reopen).
constexpr int kAnchorFloor = 64;

// The process whose tables these are: a vfork child shares them, and must
// not change them by its closes before exec.
std::atomic<pid_t> g_owner{0};

bool is_owner() {
  const pid_t me = getpid();
  pid_t owner = g_owner.load(std::memory_order_relaxed);
  if (owner == 0 && g_owner.compare_exchange_strong(owner, me)) return true;
  return owner == me;
}

// Descriptor numbers the program mapped a sealfs file through: only their
// close looks at the anchors. A bit per number below kSeenLimit; a higher
// number is not remembered (its file's anchors then go when unused and
// unlocked, or at exit).
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

bool names(int fd, dev_t dev, ino_t ino) {
  struct statx stx;
  return statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &stx) == 0 &&
         makedev(stx.stx_dev_major, stx.stx_dev_minor) == dev && stx.stx_ino == ino;
}

// Not glibc's close: that one is a cancellation point, and a cancelled
// thread must not leave anchors out of the table and open.
void close_anchor(int fd) { syscall(SYS_close, fd); }

// This process holds a POSIX record lock on the file, by /proc/locks
// ("N: POSIX ADVISORY WRITE PID MAJ:MIN:INO START END", device numbers in
// hex; "->" lines are waiters, which hold nothing). True when it cannot
// tell, so that nothing is closed then.
bool holds_record_lock(dev_t dev, ino_t ino) {
  const int fd = open("/proc/locks", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  close_anchor(fd);
  const long me = getpid();
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    char kind[16] = {}, first[8] = {};
    long pid = 0;
    unsigned maj = 0, min = 0;
    unsigned long line_ino = 0;
    if (sscanf(line.c_str(), "%*d: %7s", first) != 1 || std::string(first) == "->") continue;
    if (sscanf(line.c_str(), "%*d: %15s %*s %*s %ld %x:%x:%lu", kind, &pid, &maj, &min, &line_ino) != 5) {
      continue;
    }
    if (std::string(kind) == "POSIX" && pid == me && makedev(maj, min) == dev && line_ino == ino) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::mutex& anchor_mutex() {
  static std::mutex mu;
  return mu;
}

int acquire_anchor(int program_fd, dev_t dev, ino_t ino) {
  const int flags = fcntl(program_fd, F_GETFL);
  if (flags < 0 || !names(program_fd, dev, ino)) return -1;
  const int access = flags & O_ACCMODE;
  is_owner();  // the first call names the owner
  std::lock_guard lock(anchor_mutex());
  for (Anchor& a : anchors()) {
    if (a.dev == dev && a.ino == ino && (a.fd == program_fd || a.access == access)) {
      a.users++;
      if (a.fd != program_fd) mark_seen(program_fd);
      return a.fd;
    }
  }
  const int fd = fcntl(program_fd, F_DUPFD_CLOEXEC, kAnchorFloor);
  if (fd < 0) return -1;
  anchors().push_back(Anchor{fd, dev, ino, access, 1});
  mark_seen(program_fd);
  mark_seen(fd);  // a program that closes this number itself ends the anchor
  return fd;
}

void release_anchor(int anchor) {
  std::lock_guard lock(anchor_mutex());
  auto& all = anchors();
  for (size_t i = 0; i < all.size(); ++i) {
    Anchor& a = all[i];
    if (a.fd != anchor || a.users == 0) continue;
    if (--a.users == 0 && !holds_record_lock(a.dev, a.ino)) {
      dropped().push_back(a.fd);
      all[i] = all.back();
      all.pop_back();
    }
    return;
  }
}

void close_dropped_anchors() {
  std::vector<int> closing;
  {
    std::lock_guard lock(anchor_mutex());
    if (dropped().empty()) return;
    closing.swap(dropped());
  }
  const int saved = errno;  // the caller's call returns its own errno
  for (int fd : closing) close_anchor(fd);
  errno = saved;
}

bool anchor_names(int anchor, dev_t dev, ino_t ino) { return anchor >= 0 && names(anchor, dev, ino); }

void before_program_close(int fd) {
  if (!take_seen(fd) || !is_owner()) return;
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &stx) != 0) return;
  const dev_t dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  std::vector<int> unused;
  {
    std::lock_guard lock(anchor_mutex());
    auto& all = anchors();
    for (size_t i = 0; i < all.size();) {
      const Anchor& a = all[i];
      // The program closing an anchor's own number: it is gone either way.
      const bool closed_by_program = a.fd == fd;
      if (closed_by_program || (a.dev == dev && a.ino == stx.stx_ino && a.users == 0)) {
        if (!closed_by_program) unused.push_back(a.fd);
        all[i] = all.back();
        all.pop_back();
      } else {
        ++i;
      }
    }
  }
  // Outside the lock: a close of a FUSE file may wait for the daemon.
  for (int a : unused) close_anchor(a);
}

void anchors_in_child() { g_owner.store(getpid(), std::memory_order_relaxed); }

}  // namespace sealfs::preload
