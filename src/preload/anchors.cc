#include "preload/anchors.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace sealfs::preload {
namespace {

struct Anchor {
  AnchorRef ref;
  dev_t dev = 0;
  ino_t ino = 0;
  int access = 0;      // O_ACCMODE bits of the descriptor it duplicates
  unsigned users = 0;  // mappings that use it now
};

// Both under anchor_mutex(). Never destroyed: the program's threads may
// still close while it exits.
std::vector<Anchor>& anchors() {
  static auto* table = new std::vector<Anchor>();
  return *table;
}
uint64_t g_next_generation = 1;
// An anchor lost its last user since the last sweep (close_dropped_anchors).
std::atomic<bool> g_sweep_due{false};

// Anchors are made at this number or above, away from the low numbers a
// program reuses for its own files (stdio, a close-and-reopen).
constexpr int kAnchorFloor = 64;

// The process whose tables these are: a vfork child shares them, and must
// not change them by its closes before exec.
std::atomic<pid_t> g_owner{0};
bool is_owner() { return g_owner.load(std::memory_order_relaxed) == getpid(); }

// A bit per descriptor number below kLimit: `seen`, the program mapped a
// sealfs file through it; `locked`, it took a record lock through it
// (until it closes it). A lock through a higher number is remembered as
// "some", which keeps every unused anchor until the program's close.
constexpr int kLimit = 1 << 16;
std::atomic<uint64_t> g_seen[kLimit / 64];
std::atomic<uint64_t> g_locked[kLimit / 64];
std::atomic<bool> g_locked_beyond_limit{false};

void mark(std::atomic<uint64_t>* bits, int fd) {
  bits[fd / 64].fetch_or(uint64_t{1} << (fd % 64), std::memory_order_seq_cst);
}
// Clears the bit; true when it was set.
bool take(std::atomic<uint64_t>* bits, int fd) {
  if (fd < 0 || fd >= kLimit) return false;
  const uint64_t bit = uint64_t{1} << (fd % 64);
  if ((bits[fd / 64].load(std::memory_order_relaxed) & bit) == 0) return false;
  return (bits[fd / 64].fetch_and(~bit, std::memory_order_seq_cst) & bit) != 0;
}

bool names(int fd, dev_t dev, ino_t ino) {
  struct statx stx;
  return fd >= 0 &&
         statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &stx) == 0 &&
         makedev(stx.stx_dev_major, stx.stx_dev_minor) == dev && stx.stx_ino == ino;
}

// Some descriptor the program locked through names the file (or cannot
// be ruled out).
bool locked_through(dev_t dev, ino_t ino) {
  if (g_locked_beyond_limit.load()) return true;
  for (int w = 0; w < kLimit / 64; ++w) {
    uint64_t bits = g_locked[w].load();
    while (bits != 0) {
      const int fd = w * 64 + __builtin_ctzll(bits);
      bits &= bits - 1;
      if (names(fd, dev, ino)) return true;
    }
  }
  return false;
}

// The lock gate (anchors.h).
std::atomic<int> g_lockers{0};
std::atomic<int> g_closing{0};
std::atomic<pid_t> g_closing_tid{0};
std::mutex g_close_mu;  // one closer at a time; never taken in a signal handler

// Not glibc's close: that one is a cancellation point, and a cancelled
// thread must not leave an anchor out of the table and open.
void close_anchor(int fd) {
  syscall(SYS_close, fd);
  take(g_seen, fd);
}

// Closes the unused anchor if no lock of the program can be on its file
// now, with lock calls held back meanwhile; false when it must stay.
bool close_if_unlocked(const Anchor& a) {
  std::lock_guard lock(g_close_mu);
  g_closing_tid.store(gettid());
  g_closing.store(1);
  const bool unlocked = g_lockers.load() == 0 && !locked_through(a.dev, a.ino);
  if (unlocked) close_anchor(a.ref.fd);
  g_closing.store(0);
  return unlocked;
}

}  // namespace

std::mutex& anchor_mutex() {
  static std::mutex mu;
  return mu;
}

void anchors_init() { g_owner.store(getpid()); }
void anchors_in_child() { g_owner.store(getpid()); }

AnchorRef acquire_anchor(int program_fd, dev_t dev, ino_t ino) {
  const int flags = fcntl(program_fd, F_GETFL);
  if (flags < 0 || !names(program_fd, dev, ino)) return {};
  const int access = flags & O_ACCMODE;
  std::lock_guard lock(anchor_mutex());
  auto& all = anchors();
  for (size_t i = 0; i < all.size();) {
    Anchor& a = all[i];
    if (a.dev != dev || a.ino != ino || (a.ref.fd != program_fd && a.access != access)) {
      ++i;
      continue;
    }
    if (!names(a.ref.fd, dev, ino)) {  // the program closed its number: forget it, close nothing
      all[i] = all.back();
      all.pop_back();
      continue;
    }
    a.users++;
    if (a.ref.fd != program_fd && program_fd < kLimit) mark(g_seen, program_fd);
    return a.ref;
  }
  const int fd = fcntl(program_fd, F_DUPFD_CLOEXEC, kAnchorFloor);
  if (fd < 0) return {};
  const AnchorRef ref{fd, g_next_generation++};
  all.push_back(Anchor{ref, dev, ino, access, 1});
  if (program_fd < kLimit) mark(g_seen, program_fd);
  if (fd < kLimit) mark(g_seen, fd);  // the program closing this number ends the anchor
  return ref;
}

void release_anchor(const AnchorRef& anchor) {
  std::lock_guard lock(anchor_mutex());
  for (Anchor& a : anchors()) {
    if (a.ref.fd != anchor.fd || a.ref.generation != anchor.generation || a.users == 0) continue;
    if (--a.users == 0) g_sweep_due.store(true);
    return;
  }
}

void close_dropped_anchors() {
  if (!g_sweep_due.exchange(false) || !is_owner()) return;
  std::vector<Anchor> unused;
  {
    std::lock_guard lock(anchor_mutex());
    auto& all = anchors();
    for (size_t i = 0; i < all.size();) {
      if (all[i].users == 0) {
        unused.push_back(all[i]);
        all[i] = all.back();
        all.pop_back();
      } else {
        ++i;
      }
    }
  }
  if (unused.empty()) return;
  const int saved = errno;  // the caller's call returns its own errno
  std::vector<Anchor> kept;
  for (const Anchor& a : unused) {
    if (!names(a.ref.fd, a.dev, a.ino)) continue;  // the program closed its number
    if (!close_if_unlocked(a)) kept.push_back(a);
  }
  errno = saved;
  if (kept.empty()) return;
  // A locked file's: closed at the program's close of the file.
  std::lock_guard lock(anchor_mutex());
  for (const Anchor& a : kept) anchors().push_back(a);
}

bool anchor_names(const AnchorRef& anchor, dev_t dev, ino_t ino) { return names(anchor.fd, dev, ino); }

void before_program_close(int fd) {
  if (fd < 0 || fd >= kLimit || !is_owner()) return;
  const bool seen = take(g_seen, fd);
  const bool locked = take(g_locked, fd);
  if (!seen && !locked) return;
  // Closing an O_PATH descriptor drops no lock: nothing may go with it.
  const int flags = fcntl(fd, F_GETFL);
  struct statx stx;
  if (flags < 0 || (flags & O_PATH) != 0 ||
      statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &stx) != 0) {
    return;
  }
  const dev_t dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  std::vector<int> unused;
  {
    std::lock_guard lock(anchor_mutex());
    auto& all = anchors();
    for (size_t i = 0; i < all.size();) {
      const Anchor& a = all[i];
      // The program closing an anchor's own number: it is gone either way.
      const bool closed_by_program = a.ref.fd == fd;
      if (closed_by_program || (a.dev == dev && a.ino == stx.stx_ino && a.users == 0)) {
        if (!closed_by_program) unused.push_back(a.ref.fd);
        all[i] = all.back();
        all.pop_back();
      } else {
        ++i;
      }
    }
  }
  // Outside the lock: a close of a FUSE file may wait for the daemon. The
  // program's own close, next, drops the file's locks anyway.
  for (int a : unused) close_anchor(a);
}

void before_lock_call(int fd) {
  g_lockers.fetch_add(1);
  if (fd >= 0 && fd < kLimit) {
    mark(g_locked, fd);
  } else {
    g_locked_beyond_limit.store(true);
  }
  while (g_closing.load() != 0) {
    if (g_closing_tid.load() == gettid()) break;  // a handler that interrupted the closer
    sched_yield();
  }
}

void after_lock_call() { g_lockers.fetch_sub(1); }

}  // namespace sealfs::preload
