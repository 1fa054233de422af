#include "preload/windows.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "preload/debug.h"
#include "preload/ranges.h"
#include "preload/real_calls.h"
#include "sealfs/sealfs.h"

namespace sealfs::preload {
namespace {

constexpr long kFuseSuperMagic = 0x65735546;
// A file smaller than this is not worth a lease.
constexpr uint64_t kSmallestWindow = 64 * 1024;
// Calls inside the file's size before a window is made; each window that
// a break takes away (or that the daemon refuses) doubles it, up to the cap.
constexpr unsigned kCallsBeforeWindow = 4;
constexpr unsigned kMaxBackoff = 8;
// A window that served this many copies before its break was worth it:
// the next one comes as quickly as the first.
constexpr uint64_t kCopiesThatResetBackoff = 1024;
// Windows one process keeps at most; the least recently used goes first
// (each is a mapping and a lease: a program that reads many files and
// closes them must not fill its address space's map count).
constexpr size_t kMaxWindows = 64;
// Per-thread bounce buffer; below the size from which libsealfs scans the
// kernel's record of written pages instead of writing lines back.
constexpr size_t kBounceBytes = 32 * 1024;
// The daemon moves a file's times for stores through writable mappings
// at a sync through the mount, when the lease ends, or when told
// (sealfs_note_stores). An fdatasync the library answers tells it when the
// window last did longer ago than this (milliseconds;
// SEALFS_PRELOAD_TIMES_MS): the file's mtime then trails its last commit
// by at most that, however long the program keeps the window.
constexpr uint64_t kDefaultTimesEveryMs = 1000;

struct FileKey {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator<(const FileKey& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

struct Window {
  struct sealfs_map* map = nullptr;
  uint8_t* base = nullptr;
  uint64_t size = 0;  // serves [0, size) of the file
  uint64_t lease = 0;
  bool writable = false;
  uint64_t stamped_ns = 0;  // CLOCK_MONOTONIC when the daemon was last told to move the times
  uint64_t copies = 0;
  uint64_t last_used = 0;  // g_clock when a copy last went through it
};

struct Candidate {
  unsigned calls = 0;    // preads/pwrites inside the size since the last window
  unsigned backoff = 0;
  bool making = false;   // a thread is asking the daemon for a window
};

std::atomic<bool> g_off{false};  // this process is not trusted with direct mappings
uint64_t g_clock = 0;             // under table_mutex(): orders the windows' uses

// Both under table_mutex(). Never destroyed: the program's threads may
// still read and write while it exits.
std::map<FileKey, Window*>& windows() {
  static auto* table = new std::map<FileKey, Window*>();
  return *table;
}
std::map<FileKey, Candidate>& candidates() {
  static auto* table = new std::map<FileKey, Candidate>();
  return *table;
}
// Files the program maps through the page cache somewhere the library
// does not manage (windows.h): no copy through a window for them, ever.
std::map<FileKey, bool>& page_cache_mapped() {
  static auto* table = new std::map<FileKey, bool>();
  return *table;
}

// Devices seen, and whether each is a FUSE mount (and not one with the
// writeback cache, where windows are not made): one word per slot,
// (device << 1) | fuse, so that a call on any other file takes no lock and
// allocates nothing (pread and pwrite are async-signal-safe, and a signal
// handler may call them on its log file while the interrupted thread holds
// the library's lock). Two devices sharing a slot just ask fstatfs again.
constexpr size_t kDeviceSlots = 64;  // indexed by the top 6 bits of a hash
std::atomic<uint64_t> g_devices[kDeviceSlots];
static_assert(std::atomic<uint64_t>::is_always_lock_free);

std::atomic<uint64_t>& device_slot(dev_t dev) { return g_devices[(dev * 0x9e3779b97f4a7c15ull) >> 58]; }

void remember_device(dev_t dev, bool fuse) {
  device_slot(dev).store((uint64_t(dev) << 1) | (fuse ? 1 : 0), std::memory_order_relaxed);
}

bool windows_enabled() {
  static const bool on = [] {
    const char* v = getenv("SEALFS_PRELOAD_WINDOWS");
    return v == nullptr || strcmp(v, "0") != 0;
  }();
  return on;
}

uint64_t times_every_ns() {
  static const uint64_t ns = [] {
    const char* v = getenv("SEALFS_PRELOAD_TIMES_MS");
    char* end = nullptr;
    const unsigned long long ms = v != nullptr ? strtoull(v, &end, 10) : 0;
    return (v != nullptr && *v != '\0' && *end == '\0' ? ms : kDefaultTimesEveryMs) * 1'000'000ull;
  }();
  return ns;
}

uint64_t monotonic_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

uint64_t round_to_page(uint64_t x) {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return (x + page - 1) / page * page;
}

uint8_t* bounce() {
  thread_local std::unique_ptr<uint8_t[]> buffer;
  if (!buffer) buffer.reset(new (std::nothrow) uint8_t[kBounceBytes]);
  return buffer.get();
}

// A regular file on a FUSE mount (maybe sealfs), from the kernel's cached
// attributes: no request to the daemon. `size` as the kernel has it. A
// set-id file never gets a window: a write by someone else than its owner
// clears those bits (the daemon does it for a write it sees).
bool identify_stat(int fd, const struct stat& st, FileKey* key) {
  if (!S_ISREG(st.st_mode) || (st.st_mode & (S_ISUID | S_ISGID)) != 0) return false;
  key->dev = st.st_dev;
  key->ino = st.st_ino;
  const uint64_t seen = device_slot(key->dev).load(std::memory_order_relaxed);
  if (seen != 0 && (seen >> 1) == uint64_t(key->dev)) return (seen & 1) != 0;
  struct statfs fs;
  const bool fuse = fstatfs(fd, &fs) == 0 && fs.f_type == kFuseSuperMagic;
  remember_device(key->dev, fuse);
  return fuse;
}

bool identify(int fd, FileKey* key, uint64_t* size) {
  struct stat st;
  if (!cached_stat(fd, &st)) return false;
  *size = static_cast<uint64_t>(st.st_size);
  return identify_stat(fd, st, key);
}

// The size the daemon has now (a GETATTR) of the file open at fd if it is
// still `key`, or -1.
int64_t fresh_size(int fd, const FileKey& key) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC, STATX_SIZE | STATX_INO, &stx) != 0 ||
      makedev(stx.stx_dev_major, stx.stx_dev_minor) != key.dev || stx.stx_ino != key.ino) {
    return -1;
  }
  return static_cast<int64_t>(stx.stx_size);
}

int access_mode(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  return flags < 0 ? -1 : flags;
}

// The window of `key` if a copy may go through it now: it exists, its
// lease is neither breaking nor fenced (a daemon gone fences every mapping:
// the call then goes to the kernel and fails there, rather than SIGBUS
// here), and the program maps no part of the file through the page cache
// outside the library's ranges. table_mutex() held.
Window* usable_locked(const FileKey& key) {
  auto it = windows().find(key);
  if (it == windows().end() || page_cache_mapped().count(key) != 0) return nullptr;
  Window* w = it->second;
  if (sealfs_map_state(w->map) != 0) return nullptr;
  w->last_used = ++g_clock;
  return w;
}

// Counts a call inside the file's size that no window served; true when it
// is time to make one (the caller then calls make_window, which ends
// `making`). A read-only window is replaced when writes come through a
// descriptor open for both. table_mutex() held.
bool time_for_window_locked(const FileKey& key, bool write, bool can_write) {
  if (candidates().size() > 4096) {  // a program that touches many files: start over
    for (auto it = candidates().begin(); it != candidates().end();) {
      it = it->second.making ? std::next(it) : candidates().erase(it);
    }
  }
  Candidate& c = candidates()[key];
  if (c.making) return false;
  auto w = windows().find(key);
  if (w != windows().end() && !(write && can_write && !w->second->writable)) return false;
  if (++c.calls < (kCallsBeforeWindow << c.backoff)) return false;
  c.calls = 0;
  c.making = true;
  return true;
}

void back_off_locked(const FileKey& key, bool reset) {
  Candidate& c = candidates()[key];
  c.calls = 0;
  c.backoff = reset ? 0 : std::min(c.backoff + 1, kMaxBackoff);
}

// Takes the window out of the table; the caller releases it unlocked.
Window* take_locked(const FileKey& key) {
  auto it = windows().find(key);
  if (it == windows().end()) return nullptr;
  Window* w = it->second;
  windows().erase(it);
  return w;
}

void release(Window* w) {
  {
    Inside inside;
    sealfs_unmap(w->map);
  }
  counters().window_closed++;
  delete w;
}

// The file open at fd is still `key`: another thread may have closed the
// descriptor and opened another file under its number since the call
// looked at it.
bool still_names(int fd, const FileKey& key) {
  struct statx stx;
  return statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &stx) == 0 &&
         makedev(stx.stx_dev_major, stx.stx_dev_minor) == key.dev && stx.stx_ino == key.ino;
}

// The library never duplicates the program's descriptor for a call's own
// use: closing the duplicate would drop the program's record locks on the
// file (anchors.h). So what it does through the program's descriptor is
// checked against `key` just before and just after, and a program that
// replaces the descriptor under a call of another thread (dup2) may still
// race with it in the microseconds between (docs/preload.md, "Locks").

void make_window(int fd, const FileKey& key, bool writable) {
  Window* old = nullptr;
  Window* evicted = nullptr;
  bool refused = true;
  struct sealfs_map* m = nullptr;
  const int64_t before = fresh_size(fd, key);
  if (before >= static_cast<int64_t>(kSmallestWindow)) {
    // No SEALFS_MAP_ALLOCATE: a window must not fill a sparse file's holes
    // (a disk image written here and there would take all its space). A
    // file with holes or unwritten extents is refused and gets no window.
    Inside inside;
    // Exclusive, as every mapping of the library (ranges.cc make_direct).
    const int rc = sealfs_map(fd, 0, round_to_page(uint64_t(before)),
                              writable ? PROT_READ | PROT_WRITE : PROT_READ, SEALFS_MAP_EXCLUSIVE, &m);
    if (rc != 0) {
      // libsealfs's text advises its API's callers ("use SEALFS_MAP_ALLOCATE"),
      // which a program under sealfs-run cannot follow: say what it means here.
      if (rc == -ENODATA) {
        debug("no window for inode %llu: the file has a hole or an unwritten extent, and a "
              "window never allocates (its pread and pwrite go through the mount)",
              static_cast<unsigned long long>(key.ino));
      } else {
        debug("no window for inode %llu: %s", static_cast<unsigned long long>(key.ino),
              sealfs_last_error());
      }
      if (rc == -EACCES) g_off = true;  // the descriptor's mode was checked: untrusted
      if (rc == -EOPNOTSUPP || rc == -EXDEV) remember_device(key.dev, false);  // FUSE, not sealfs
      m = nullptr;
    }
  }
  if (m != nullptr && !still_names(fd, key)) {
    // The descriptor named another file at some moment of the call: the
    // grant may be for either.
    debug("no window for inode %llu: its descriptor was replaced meanwhile",
          static_cast<unsigned long long>(key.ino));
    Inside inside;
    sealfs_unmap(m);
    m = nullptr;
  }
  if (m != nullptr && (sealfs_map_mount_flags(m) & SEALFS_MOUNT_WRITE_THROUGH) == 0) {
    // The writeback cache (or a daemon too old to say): the program's
    // write(2)s and pwrites that go to the kernel stay in its page cache
    // until writeback, where a window would not see them (a pread after
    // such a pwrite read the old bytes). No windows on this mount.
    debug("no windows on this mount: the daemon does not say it is write-through");
    Inside inside;
    sealfs_unmap(m);
    m = nullptr;
    remember_device(key.dev, false);
  }
  Window* w = nullptr;
  if (m != nullptr) {
    // A truncate between the two looks at the size would have broken the
    // lease; one before the grant shows here. Growth needs nothing: the
    // window serves less than the file has.
    const int64_t after = fresh_size(fd, key);
    w = new Window;
    w->map = m;
    w->base = static_cast<uint8_t*>(sealfs_map_addr(m));
    w->size = after < 0 ? 0 : std::min<uint64_t>(uint64_t(before), uint64_t(after));
    w->lease = sealfs_map_lease_id(m);
    w->writable = writable;
    w->stamped_ns = monotonic_ns();
    refused = false;
    // The descriptor's cached pages may be older than the stores to come;
    // what this process reads through the window does not use them.
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    counters().window_made++;
    debug("window for inode %llu: %llu bytes, %s (lease %llu)", static_cast<unsigned long long>(key.ino),
          static_cast<unsigned long long>(w->size), writable ? "read-write" : "read-only",
          static_cast<unsigned long long>(w->lease));
  }
  bool broke = false;
  {
    std::lock_guard lock(table_mutex());
    candidates()[key].making = false;
    if (refused) back_off_locked(key, false);
    if (w != nullptr) {
      old = take_locked(key);  // the read-only window this one replaces
      if (windows().size() >= kMaxWindows) {
        auto lru = std::min_element(windows().begin(), windows().end(), [](const auto& a, const auto& b) {
          return a.second->last_used < b.second->last_used;
        });
        evicted = take_locked(lru->first);
      }
      w->last_used = ++g_clock;
      windows()[key] = w;
      // A break that came before the window was in the table found nothing
      // to do; the map's state still shows it.
      broke = sealfs_map_state(m) != 0;
      if (broke) {
        take_locked(key);
        back_off_locked(key, false);
      }
    }
  }
  if (old != nullptr) release(old);
  if (evicted != nullptr) release(evicted);
  if (broke) release(w);
}

bool add_would_overflow(off_t offset, size_t count) {
  return count > uint64_t(INT64_MAX) || uint64_t(offset) > uint64_t(INT64_MAX) - count;
}

}  // namespace

bool window_pwrite(int fd, const void* buf, size_t count, off_t offset, ssize_t* result) {
  if (g_off || !windows_enabled() || count == 0 || offset < 0 || add_would_overflow(offset, count)) {
    return false;
  }
  // A signal handler's pwrite on this thread, while this one is inside,
  // goes to the kernel (the table lock may be held below).
  Inside inside;
  FileKey key;
  uint64_t size = 0;
  if (!identify(fd, &key, &size)) return false;
  // O_APPEND: pwrite appends on Linux; a descriptor not open for writing
  // (or an O_PATH one) gets the kernel's EBADF.
  const int flags = access_mode(fd);
  if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY || (flags & (O_APPEND | O_PATH)) != 0) return false;
  uint8_t* staging = bounce();
  if (staging == nullptr) return false;
  auto* src = static_cast<const uint8_t*>(buf);
  const uint64_t end = uint64_t(offset) + count;
  bool tried_window = false;
  size_t done = 0;
  while (done < count) {
    const uint64_t at = uint64_t(offset) + done;
    const size_t chunk = std::min(count - done, kBounceBytes);
    memcpy(staging, src + done, chunk);  // the program's buffer, unlocked: it may fault
    bool served = false, make = false;
    int rc = 0;
    {
      std::lock_guard lock(table_mutex());
      Window* w = usable_locked(key);
      if (w != nullptr && w->writable && at + chunk <= w->size &&
          !ordinary_part_overlaps_locked(key.dev, key.ino, at, chunk)) {
        memcpy(w->base + at, staging, chunk);
        Inside inside;  // on a page-granularity region this is msync(2) of the region
        rc = sealfs_persist(w->map, w->base + at, chunk);
        w->copies++;
        served = true;
      } else if (done == 0 && !tried_window && end <= size && (flags & O_ACCMODE) == O_RDWR &&
                 page_cache_mapped().count(key) == 0) {
        // (A write-only descriptor cannot map the file: LMDB writes its
        // meta pages through one; a window made through its other
        // descriptor serves those too.)
        make = time_for_window_locked(key, true, true);
      }
    }
    if (make) {
      tried_window = true;
      make_window(fd, key, true);
      continue;  // the new window serves this write if it covers it
    }
    if (!served) break;
    if (rc != 0) {
      if (done > 0) break;
      errno = -rc;
      *result = -1;
      return true;
    }
    counters().window_writes++;
    // Pages of the range that this descriptor (or another of this process)
    // cached through read(2) and the like would now be old: drop them, as
    // a write through the mount would have updated them. (A page locked at
    // this moment stays: docs/preload.md.)
    posix_fadvise(fd, off_t(at), off_t(chunk), POSIX_FADV_DONTNEED);
    done += chunk;
  }
  if (done == 0) return false;
  if (done < count) {
    // The window went (a break) or ends inside the range: the rest is an
    // ordinary write, as a short write would be continued, to the same
    // file; the call ends short, at what the window did, if the descriptor
    // names another file now (one pwrite must not reach two files).
    const ssize_t rest =
        still_names(fd, key) ? real_pwrite(fd, src + done, count - done, offset + off_t(done)) : -1;
    *result = rest < 0 ? ssize_t(done) : ssize_t(done) + rest;
    return true;
  }
  *result = ssize_t(count);
  return true;
}

bool window_pread(int fd, void* buf, size_t count, off_t offset, ssize_t* result) {
  if (g_off || !windows_enabled() || count == 0 || offset < 0 || add_would_overflow(offset, count)) {
    return false;
  }
  Inside inside;  // as in window_pwrite
  FileKey key;
  uint64_t size = 0;
  if (!identify(fd, &key, &size)) return false;
  const int flags = access_mode(fd);
  if (flags < 0 || (flags & O_ACCMODE) == O_WRONLY || (flags & O_PATH) != 0) return false;
  uint8_t* staging = bounce();
  if (staging == nullptr) return false;
  auto* dst = static_cast<uint8_t*>(buf);
  bool tried_window = false;
  size_t done = 0;
  while (done < count) {
    const uint64_t at = uint64_t(offset) + done;
    size_t chunk = 0;
    bool make = false;
    {
      std::lock_guard lock(table_mutex());
      Window* w = usable_locked(key);
      if (w != nullptr && at < w->size) {
        chunk = static_cast<size_t>(std::min<uint64_t>({count - done, kBounceBytes, w->size - at}));
        if (ordinary_part_overlaps_locked(key.dev, key.ino, at, chunk)) {
          chunk = 0;  // the program maps it through the page cache: read it the same way
        } else {
          memcpy(staging, w->base + at, chunk);
          w->copies++;
        }
      } else if (w == nullptr && done == 0 && !tried_window && uint64_t(offset) + count <= size &&
                 windows().count(key) == 0 && page_cache_mapped().count(key) == 0) {
        make = time_for_window_locked(key, false, false);
      }
    }
    if (make) {
      tried_window = true;
      // Read-only: a window made for reads must not move the file's times
      // when it goes (a writable lease's end does); the first writes
      // through a descriptor open for both replace it.
      make_window(fd, key, false);
      continue;
    }
    if (chunk == 0) break;
    memcpy(dst + done, staging, chunk);  // the program's buffer, unlocked: it may fault
    counters().window_reads++;
    done += chunk;
  }
  if (done == 0) return false;
  if (done < count) {
    // Past the window: the file through the mount (it may have grown), as
    // for a pwrite's rest.
    const ssize_t rest =
        still_names(fd, key) ? real_pread(fd, dst + done, count - done, offset + off_t(done)) : -1;
    *result = rest <= 0 ? ssize_t(done) : ssize_t(done) + rest;
    return true;
  }
  *result = ssize_t(count);
  return true;
}

bool window_answers_fdatasync(int fd, const struct stat& st) {
  if (g_off || !windows_enabled()) return false;
  Inside inside;  // as in window_pwrite
  FileKey key;
  if (!identify_stat(fd, st, &key)) return false;
  std::lock_guard lock(table_mutex());
  // A window that is breaking or fenced is not usable: the call then goes
  // to the kernel, which answers for the daemon (ENOTCONN when it is gone).
  Window* w = usable_locked(key);
  if (w == nullptr || !w->writable) return false;
  if (writable_ordinary_part_locked(key.dev, key.ino)) return false;
  const uint64_t now = monotonic_ns();
  if (now - w->stamped_ns >= times_every_ns()) {
    // One message, no answer awaited (a blocked daemon just reads it later).
    Inside inside;
    (void)sealfs_note_stores(w->map);
    w->stamped_ns = now;
  }
  counters().syncs_answered++;
  return true;
}

bool release_window_for_break(uint64_t lease_id) {
  Window* gone = nullptr;
  {
    std::lock_guard lock(table_mutex());
    for (auto& [key, w] : windows()) {
      if (w->lease != lease_id) continue;
      const FileKey found = key;
      debug("window for inode %llu goes (break)", static_cast<unsigned long long>(found.ino));
      const bool paid_off = w->copies >= kCopiesThatResetBackoff;
      gone = take_locked(found);
      back_off_locked(found, paid_off);
      break;
    }
  }
  if (gone == nullptr) return false;
  release(gone);
  return true;
}

void note_page_cache_mapping_locked(dev_t dev, ino_t ino) {
  if (page_cache_mapped().emplace(FileKey{dev, ino}, true).second) {
    debug("inode %llu is mapped through the page cache: no window copies for it",
          static_cast<unsigned long long>(ino));
  }
}

void note_page_cache_mapping(int fd) {
  FileKey key;
  uint64_t size = 0;
  if (!identify(fd, &key, &size)) return;
  std::lock_guard lock(table_mutex());
  note_page_cache_mapping_locked(key.dev, key.ino);
}

void forget_windows_in_child() {
  windows().clear();  // their struct sealfs_map are dead in the child: not released
  candidates().clear();
}

}  // namespace sealfs::preload
