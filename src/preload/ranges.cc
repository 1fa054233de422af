#include "preload/ranges.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "preload/anchors.h"
#include "preload/debug.h"
#include "preload/real_calls.h"
#include "preload/windows.h"
#include "sealfs/sealfs.h"

namespace sealfs::preload {

namespace {

thread_local int t_inside = 0;
// 0 not looked at, 1 one of libsealfs's own threads, 2 another thread.
thread_local int t_library_thread = 0;

uint64_t page_size() {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return page;
}
uint64_t round_up(uint64_t x) { return (x + page_size() - 1) / page_size() * page_size(); }

struct Range {
  uintptr_t addr = 0;
  size_t len = 0;  // page rounded
  off_t offset = 0;
  int prot = 0;
  AnchorRef anchor;        // the file's (anchors.h), with the program's descriptor's mode
  dev_t dev = 0;
  ino_t ino = 0;
  struct sealfs_map* direct = nullptr;  // covers [addr, addr + direct_len)
  size_t direct_len = 0;
  uint64_t lease = 0;
  bool demoting = false;  // a thread is changing the direct part; wait for it
  // A read-only range that a break takes back at every commit (the file
  // grows each time) is not made direct at every sync: after the n-th
  // such break in a row the next 2^n syncs (at most 64) leave it ordinary.
  unsigned backoff = 0;
  unsigned skip_syncs = 0;
};

std::mutex g_mu;  // table_mutex(); constant-initialized, usable before any constructor runs
std::condition_variable g_cv;
std::atomic<size_t> g_tracked{0};

// Never destroyed: the program's threads may still map while it exits.
std::map<uintptr_t, Range>& ranges() {
  static auto* table = new std::map<uintptr_t, Range>();
  return *table;
}

bool overlaps(const Range& r, uintptr_t a, size_t len) { return a < r.addr + r.len && r.addr < a + len; }

// The bytes of [offset, offset+len) that the file has (its last block whole).
size_t existing_part(off_t offset, size_t len, uint64_t size) {
  const uint64_t mappable = round_up(size);
  if (static_cast<uint64_t>(offset) >= mappable) return 0;
  return static_cast<size_t>(std::min<uint64_t>(len, mappable - static_cast<uint64_t>(offset)));
}

// A store into a hole of a shared mapping allocates the block anyway, so a
// writable mapping asks the daemon to allocate holes and unwritten extents
// up front (SEALFS_PRELOAD_ALLOCATE=0 keeps sparse files sparse; the range
// then stays ordinary). A read-only one maps only what is written.
int make_direct(void* at, int fd, off_t offset, size_t len, int prot, struct sealfs_map** m) {
  Inside inside;
  // Exclusive: the daemon grants it only while no other process has the
  // file open and breaks it when one opens it (docs/preload.md "One process
  // or several").
  unsigned flags = SEALFS_MAP_EXCLUSIVE;
  if ((prot & PROT_WRITE) && allocate_holes()) flags |= SEALFS_MAP_ALLOCATE;
  return sealfs_map_at(at, fd, offset, len, prot, flags, m);
}

// Refusals that say the file can never be mapped directly by this process.
bool never_direct(int rc) {
  return rc == -EACCES || rc == -EOPNOTSUPP || rc == -EXDEV || rc == -ENODEV || rc == -EINVAL;
}

// Drops the kernel's clean cached pages of the file range before it is
// mapped through the mount again: they may predate the holder's stores.
// Not an open(2) or an mmap(2) through a fresh descriptor, which would do
// it too: those wait for every page lock of the file, and a write(2) of the
// program that is waiting in the daemon for this very break holds one (a
// deadlock until the break deadline). POSIX_FADV_DONTNEED skips locked
// pages instead; docs/preload.md says what that leaves.
void drop_cached_pages(const Range& r) {
  posix_fadvise(r.anchor.fd, r.offset, static_cast<off_t>(r.direct_len), POSIX_FADV_DONTNEED);
}

void wait_not_demoting(std::unique_lock<std::mutex>& lock, uintptr_t a, size_t len) {
  g_cv.wait(lock, [&] {
    for (auto& [key, r] : ranges()) {
      if (r.demoting && overlaps(r, a, len)) return false;
    }
    return true;
  });
}

// The direct part of the range at key becomes an ordinary mapping of the
// same file at the same addresses; then its lease is released.
// The program closed the anchor's number and maybe opened another file
// under it: no file to fall back to. The pages go (an access faults)
// rather than show another file (docs/preload.md, "Locks").
int lose_range(struct sealfs_map* m, const Range& r) {
  debug("ordinary mapping impossible at %#lx: the program closed the library's descriptor %d",
        static_cast<unsigned long>(r.addr), r.anchor.fd);
  Inside inside;
  sealfs_unmap(m);
  real_mmap(reinterpret_cast<void*>(r.addr), r.direct_len, PROT_NONE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  return -EBADF;
}

void demote(uintptr_t key, const char* why, bool by_break = false) {
  struct sealfs_map* m = nullptr;
  Range copy;
  {
    std::unique_lock lock(g_mu);
    auto it = ranges().find(key);
    if (it == ranges().end() || it->second.direct == nullptr) return;
    if (it->second.demoting) {  // someone else does it
      g_cv.wait(lock, [&] {
        auto again = ranges().find(key);
        return again == ranges().end() || !again->second.demoting;
      });
      return;
    }
    it->second.demoting = true;
    m = it->second.direct;
    copy = it->second;
  }
  int rc;
  if (anchor_names(copy.anchor, copy.dev, copy.ino)) {
    drop_cached_pages(copy);
    Inside inside;
    rc = sealfs_unmap_to_file(m, copy.anchor.fd);
  } else {
    rc = lose_range(m, copy);
  }
  counters().demoted++;
  debug("ordinary again %#lx+%zu (file offset %lld, %s)%s%s", static_cast<unsigned long>(copy.addr),
        copy.direct_len, static_cast<long long>(copy.offset), why, rc == 0 ? "" : ": ",
        rc == 0 ? "" : sealfs_last_error());
  {
    std::lock_guard lock(g_mu);
    auto it = ranges().find(key);
    if (it != ranges().end()) {
      Range& r = it->second;
      r.direct = nullptr;
      r.direct_len = 0;
      r.lease = 0;
      r.demoting = false;
      if (by_break) {
        r.backoff = std::min(r.backoff == 0 ? 1u : r.backoff * 2, 64u);
        r.skip_syncs = r.backoff;
      }
    }
  }
  g_cv.notify_all();
}

const char* break_text(int reason) {
  switch (reason) {
    case SEALFS_BREAK_TRUNCATE: return "break: truncate";
    case SEALFS_BREAK_FALLOCATE: return "break: fallocate";
    case SEALFS_BREAK_WRITE: return "break: write";
    case SEALFS_BREAK_UNLINK: return "break: unlink";
    case SEALFS_BREAK_RENAME: return "break: rename";
    case SEALFS_BREAK_UNMOUNT: return "break: unmount";
    case SEALFS_BREAK_RELOCATE: return "break: relocate";
    case SEALFS_BREAK_DAEMON_GONE: return "break: daemon gone";
    case SEALFS_BREAK_SHARED: return "break: another process opened the file";
    default: return "break";
  }
}

void on_break(struct sealfs_map*, const sealfs_break_event* ev, void*) {
  if (release_window_for_break(ev->lease_id)) return;
  uintptr_t key = 0;
  {
    std::lock_guard lock(g_mu);
    for (auto& [k, r] : ranges()) {
      if (r.direct != nullptr && r.lease == ev->lease_id) key = k;
    }
  }
  // Not found: the mapping is not in the table yet; map_shared sees the
  // break in the map's state once it has put it there.
  if (key != 0) demote(key, break_text(ev->reason), /*by_break=*/true);
}

void forget_locked(std::map<uintptr_t, Range>::iterator it) {
  if (it->second.anchor.fd >= 0) release_anchor(it->second.anchor);
  ranges().erase(it);
  g_tracked.fetch_sub(1);
}

void fork_prepare() {
  g_mu.lock();
  anchor_mutex().lock();
}
void fork_parent() {
  anchor_mutex().unlock();
  g_mu.unlock();
}
// A descriptor of the child's own for the file behind `anchor`: an open(2)
// the daemon sees come from the child. -1 when the open fails.
int open_in_child(const AnchorRef& anchor, int prot) {
  char path[40];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", anchor.fd);
  const int mode = (prot & PROT_WRITE) != 0 ? O_RDWR : O_RDONLY;
  return open(path, mode | O_CLOEXEC);
}

// The child has holes where the parent's direct pages are (MADV_DONTFORK):
// it gets the file there instead, through the mount. Its copies of the
// parent's struct sealfs_map are dead and are not used again.
//
// To the daemon the inherited descriptors are still the parent's handles,
// so the child's pages would sit beside the parent's exclusive direct
// mapping unseen. So the child maps the file through an open of its own:
// the daemon breaks the parent's exclusive lease before that open returns
// (the parent goes on through the mount too) and grants none while the
// mapping lives. The descriptor is closed at once: the mapping keeps the
// handle, and a new child holds no record locks to lose.
void fork_child() {
  anchors_in_child();
  for (auto& [key, r] : ranges()) {
    if (r.direct == nullptr) continue;
    const bool named = anchor_names(r.anchor, r.dev, r.ino);
    const int own = named ? open_in_child(r.anchor, r.prot) : -1;
    drop_cached_pages(r);
    if (named) {
      // Without an open of its own (interrupted, out of descriptors) the
      // inherited one serves, as the parent's: coherent only until the
      // parent stores again (docs/preload.md "Threads, fork, signals").
      real_mmap(reinterpret_cast<void*>(r.addr), r.direct_len, r.prot, MAP_SHARED | MAP_FIXED,
                own >= 0 ? own : r.anchor.fd, r.offset);
    } else {
      real_mmap(reinterpret_cast<void*>(r.addr), r.direct_len, PROT_NONE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    }
    if (own >= 0) real_close(own);
    r.direct = nullptr;
    r.direct_len = 0;
    r.lease = 0;
    r.demoting = false;
  }
  forget_windows_in_child();
  anchor_mutex().unlock();
  g_mu.unlock();
}

}  // namespace

std::mutex& table_mutex() { return g_mu; }

bool ordinary_part_overlaps_locked(dev_t dev, ino_t ino, uint64_t offset, uint64_t len) {
  for (auto& [key, r] : ranges()) {
    if (r.dev != dev || r.ino != ino) continue;
    // The part of the file that this range shows through the page cache:
    // all of it while it is being changed, else what follows the direct part.
    const uint64_t from = uint64_t(r.offset) + (r.demoting ? 0 : r.direct_len);
    const uint64_t to = uint64_t(r.offset) + r.len;
    if (offset < to && from < offset + len) return true;
  }
  return false;
}

bool writable_ordinary_part_locked(dev_t dev, ino_t ino) {
  for (auto& [key, r] : ranges()) {
    if (r.dev != dev || r.ino != ino || (r.prot & PROT_WRITE) == 0) continue;
    if (r.demoting || r.direct == nullptr || r.direct_len < r.len) return true;
  }
  return false;
}

bool allocate_holes() {
  static const bool on = [] {
    const char* v = getenv("SEALFS_PRELOAD_ALLOCATE");
    return v == nullptr || strcmp(v, "0") != 0;
  }();
  return on;
}

Inside::Inside() { ++t_inside; }
Inside::~Inside() { --t_inside; }

bool Inside::now() {
  if (t_inside > 0) return true;
  if (t_library_thread == 0) {
    // libsealfs names its reader and callback threads; what they map (the
    // region, a fence) is the library's own business.
    char name[17] = {};
    prctl(PR_GET_NAME, name, 0, 0, 0);
    t_library_thread =
        strcmp(name, "sealfs-reader") == 0 || strcmp(name, "sealfs-callback") == 0 ? 1 : 2;
  }
  return t_library_thread == 1;
}

bool any_tracked() { return g_tracked.load(std::memory_order_relaxed) > 0; }

void* map_shared(void* addr, size_t len, int prot, int flags, int fd, off_t offset) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return real_mmap(addr, len, prot, flags, fd, offset);
  if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) == MAP_FIXED && any_tracked()) {
    release_overlapping(addr, len, true);
  }
  void* p = real_mmap(addr, len, prot, flags, fd, offset);
  if (p == MAP_FAILED) return p;
  const size_t rounded = round_up(len);
  const size_t want = existing_part(offset, rounded, static_cast<uint64_t>(st.st_size));
  struct sealfs_map* m = nullptr;
  int rc = -ERANGE;
  if (want > 0) rc = make_direct(p, fd, offset, want, prot, &m);
  bool writeback_mount = false;
  if (rc == 0 && (sealfs_map_mount_flags(m) & SEALFS_MOUNT_WRITE_THROUGH) == 0) {
    // The writeback cache: the program's own write(2)s through a
    // descriptor opened before the file's first lease wait in the page
    // cache, where a direct mapping would not see them. Ordinary it stays.
    Inside inside;
    sealfs_unmap_to_file(m, fd);
    m = nullptr;
    rc = -EOPNOTSUPP;  // never direct on this mount
    writeback_mount = true;
  }
  if (rc == 0) {
    counters().direct++;
    debug("direct %#lx+%zu of %zu (file offset %lld, lease %llu)", reinterpret_cast<unsigned long>(p),
          want, rounded, static_cast<long long>(offset),
          static_cast<unsigned long long>(sealfs_map_lease_id(m)));
  } else {
    counters().refused++;
    debug("ordinary %#lx+%zu (file offset %lld, size %lld): %s", reinterpret_cast<unsigned long>(p),
          rounded, static_cast<long long>(offset), static_cast<long long>(st.st_size),
          want == 0              ? "nothing of the file there yet"
          : writeback_mount ? "the mount keeps written data in the page cache (writeback_cache)"
                              : sealfs_last_error());
    if (never_direct(rc)) {
      note_page_cache_mapping(fd);  // the program keeps it, through the page cache
      return p;
    }
  }
  Range r;
  r.addr = reinterpret_cast<uintptr_t>(p);
  r.len = rounded;
  r.offset = offset;
  r.prot = prot;
  r.anchor = acquire_anchor(fd, st.st_dev, st.st_ino);
  r.dev = st.st_dev;
  r.ino = st.st_ino;
  if (r.anchor.fd < 0) {  // out of descriptors: cannot fall back later, so not now either
    if (m != nullptr) {
      Inside inside;
      sealfs_unmap_to_file(m, fd);
    }
    note_page_cache_mapping(fd);
    return p;
  }
  r.direct = m;
  r.direct_len = m != nullptr ? want : 0;
  r.lease = m != nullptr ? sealfs_map_lease_id(m) : 0;
  bool broke = false;
  {
    std::lock_guard lock(g_mu);
    auto old = ranges().find(r.addr);
    if (old != ranges().end()) forget_locked(old);  // unmapped behind our back
    // A break that came before the range was in the table found nothing
    // to do; the map's state still shows it.
    broke = m != nullptr && sealfs_map_state(m) != 0;
    ranges()[r.addr] = r;
    g_tracked.fetch_add(1);
  }
  if (broke) demote(r.addr, "break during the map");
  return p;
}

bool release_overlapping(void* addr, size_t len, bool unmap) {
  const auto a = reinterpret_cast<uintptr_t>(addr);
  len = round_up(len);
  bool any = false;
  for (;;) {
    std::unique_lock lock(g_mu);
    wait_not_demoting(lock, a, len);
    auto it = std::find_if(ranges().begin(), ranges().end(),
                           [&](const auto& kv) { return overlaps(kv.second, a, len); });
    if (it == ranges().end()) return any;
    any = true;
    Range& r = it->second;
    const bool whole = r.addr >= a && r.addr + r.len <= a + len;
    if (whole || r.direct == nullptr) {
      // What the program keeps of it (all, under mprotect; the rest, under
      // a partial munmap) is a mapping through the page cache from now on.
      if (!unmap || !whole) note_page_cache_mapping_locked(r.dev, r.ino);
      struct sealfs_map* m = r.direct;
      const AnchorRef anchor = r.anchor;
      const off_t r_offset = r.offset;
      const size_t r_direct_len = r.direct_len;
      const dev_t r_dev = r.dev;
      const ino_t r_ino = r.ino;
      r.anchor = {};
      forget_locked(it);
      lock.unlock();
      if (m != nullptr) {
        // Even when the program unmaps the range right after, the pages
        // become the file's first: unmapped, their addresses could be
        // taken by another thread's mmap before the program's munmap.
        Inside inside;
        counters().released++;
        if (anchor_names(anchor, r_dev, r_ino)) {
          posix_fadvise(anchor.fd, r_offset, static_cast<off_t>(r_direct_len), POSIX_FADV_DONTNEED);
          sealfs_unmap_to_file(m, anchor.fd);
        } else {
          sealfs_unmap(m);  // the program unmaps or remaps these addresses next
        }
      }
      release_anchor(anchor);
      continue;
    }
    // Part of a direct range: all of it goes back to the file, so the part
    // the program keeps stays a valid mapping; then it is no longer ours.
    const uintptr_t key = r.addr;
    lock.unlock();
    demote(key, unmap ? "part unmapped" : "part remapped or protected");
    std::lock_guard again(g_mu);
    auto still = ranges().find(key);
    if (still != ranges().end() && !still->second.demoting) {
      note_page_cache_mapping_locked(still->second.dev, still->second.ino);
      forget_locked(still);
    }
  }
}

bool remap_tracked(void* old_addr, size_t old_len, size_t new_len, int flags, void** result) {
  if ((flags & MREMAP_MAYMOVE) == 0 || (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) != 0) return false;
  const auto a = reinterpret_cast<uintptr_t>(old_addr);
  Range copy;
  AnchorRef anchor;
  {
    std::unique_lock lock(g_mu);
    wait_not_demoting(lock, a, round_up(old_len));
    auto it = ranges().find(a);
    if (it == ranges().end() || it->second.len != round_up(old_len)) return false;
    copy = it->second;
    anchor = acquire_anchor(copy.anchor.fd, copy.dev, copy.ino);  // kept while the new mapping is made
    if (anchor.fd < 0) return false;
  }
  // A shared mapping of a file shows the file wherever it is: a new
  // mapping of the new length is what mremap would give, and its existing
  // part can be direct.
  void* p = map_shared(nullptr, new_len, copy.prot, MAP_SHARED, anchor.fd, copy.offset);
  const int err = errno;
  release_anchor(anchor);
  if (p == MAP_FAILED) {
    errno = err;
    *result = MAP_FAILED;
    return true;
  }
  release_overlapping(old_addr, old_len, true);
  real_munmap(old_addr, old_len);
  *result = p;
  return true;
}

int persist_range(void* addr, size_t len, void (*ordinary)(void*, size_t, void*), void* arg) {
  const auto a = reinterpret_cast<uintptr_t>(addr);
  const uintptr_t end = a + len;
  std::vector<std::pair<uintptr_t, uintptr_t>> direct;
  int result = 0;
  {
    std::unique_lock lock(g_mu);
    wait_not_demoting(lock, a, len);
    for (auto& [key, r] : ranges()) {
      if (r.direct == nullptr) continue;
      const uintptr_t s = std::max(a, r.addr), e = std::min(end, r.addr + r.direct_len);
      if (s >= e) continue;
      // Under the table lock: nobody frees the map meanwhile. A persist
      // waits for no daemon and no FUSE request (cache-line flushes, or an
      // msync of the region, which is not on the mount).
      if (r.prot & PROT_WRITE) {
        // On a page-granularity region sealfs_persist calls msync(2),
        // which must reach the kernel, not this library (and its lock).
        Inside inside;
        const int rc = sealfs_persist(r.direct, reinterpret_cast<void*>(s), e - s);
        if (rc != 0 && result == 0) result = rc;
        counters().persists++;
      }
      direct.emplace_back(s, e);
    }
  }
  std::sort(direct.begin(), direct.end());
  uintptr_t at = a;
  for (auto& [s, e] : direct) {
    if (s > at) ordinary(reinterpret_cast<void*>(at), s - at, arg);
    at = std::max(at, e);
  }
  if (at < end) ordinary(reinterpret_cast<void*>(at), end - at, arg);
  return result;
}

// AT_STATX_DONT_SYNC: a sync makes the daemon drop the cached times, and
// fstat would then ask for them, a round trip at every commit. A size
// older than the daemon's is smaller (a holder's EXTEND), which maps less.
bool cached_stat(int fd, struct stat* st) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_MODE | STATX_INO | STATX_SIZE,
            &stx) != 0) {
    return false;
  }
  st->st_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  st->st_ino = stx.stx_ino;
  st->st_size = static_cast<off_t>(stx.stx_size);
  st->st_mode = stx.stx_mode;
  return true;
}

int persist_file(const struct stat& st) {
  int first_error = 0;
  std::unique_lock lock(g_mu);
  for (auto& [key, r] : ranges()) {
    if (r.dev != st.st_dev || r.ino != st.st_ino || r.direct == nullptr || r.demoting) continue;
    if ((r.prot & PROT_WRITE) == 0) continue;
    Inside inside;  // see persist_range
    const int rc = sealfs_persist(r.direct, reinterpret_cast<void*>(r.addr), r.direct_len);
    if (rc != 0 && first_error == 0) first_error = rc;
    counters().persists++;
  }
  return first_error;
}

void reseal_file(const struct stat& st) {
  {
    // A break the program's own write caused is answered (the lease
    // released) just before the handler marks the range ordinary: wait for
    // that, or this sync would find the range busy and skip it.
    std::unique_lock lock(g_mu);
    g_cv.wait(lock, [&] {
      for (auto& [key, r] : ranges()) {
        if (r.demoting && r.dev == st.st_dev && r.ino == st.st_ino) return false;
      }
      return true;
    });
    for (auto& [key, r] : ranges()) {
      if (r.dev != st.st_dev || r.ino != st.st_ino || r.prot != PROT_READ) continue;
      if (r.direct != nullptr && existing_part(r.offset, r.len, uint64_t(st.st_size)) <= r.direct_len) {
        r.backoff = 0;  // direct over all the file has: it lasted from one sync to the next
      } else if (r.skip_syncs > 0) {
        r.skip_syncs--;
      }
    }
  }
  // Bounded: a range that breaks again at once is not chased.
  for (int budget = 8; budget > 0; --budget) {
    Range copy;
    {
      std::lock_guard lock(g_mu);
      auto it = std::find_if(ranges().begin(), ranges().end(), [&](const auto& kv) {
        const Range& r = kv.second;
        return r.dev == st.st_dev && r.ino == st.st_ino && r.prot == PROT_READ && !r.demoting &&
               r.skip_syncs == 0 && existing_part(r.offset, r.len, uint64_t(st.st_size)) > r.direct_len;
      });
      if (it == ranges().end()) return;
      it->second.demoting = true;
      copy = it->second;
    }
    // Read-only pages show the file whichever way they are mapped, so the
    // range may change under the program's loads: the old lease (if any)
    // gives its pages back to the file, then a lease on all of what exists
    // now replaces them.
    if (!anchor_names(copy.anchor, copy.dev, copy.ino)) {
      // The program closed the library's descriptor: the range stays as it is.
      {
        std::lock_guard lock(g_mu);
        if (auto it = ranges().find(copy.addr); it != ranges().end()) it->second.demoting = false;
      }
      g_cv.notify_all();
      return;
    }
    if (copy.direct != nullptr) {
      drop_cached_pages(copy);
      Inside inside;
      sealfs_unmap_to_file(copy.direct, copy.anchor.fd);
    }
    const size_t want = existing_part(copy.offset, copy.len, uint64_t(st.st_size));
    struct sealfs_map* m = nullptr;
    const int rc = make_direct(reinterpret_cast<void*>(copy.addr), copy.anchor.fd, copy.offset, want,
                               copy.prot, &m);
    if (rc == 0) {
      counters().resealed++;
      debug("direct again %#lx+%zu (file offset %lld, lease %llu)",
            static_cast<unsigned long>(copy.addr), want, static_cast<long long>(copy.offset),
            static_cast<unsigned long long>(sealfs_map_lease_id(m)));
    } else {
      debug("still ordinary %#lx+%zu: %s", static_cast<unsigned long>(copy.addr), want,
            sealfs_last_error());
    }
    bool broke = false;
    {
      std::lock_guard lock(g_mu);
      auto it = ranges().find(copy.addr);
      if (it != ranges().end()) {
        it->second.direct = m;
        it->second.direct_len = m != nullptr ? want : 0;
        it->second.lease = m != nullptr ? sealfs_map_lease_id(m) : 0;
        it->second.demoting = false;
        broke = m != nullptr && sealfs_map_state(m) != 0;
        if (rc == -EBUSY) {
          // Another process has the file open: it may keep it open for
          // long, so ask less and less often, as after a break.
          Range& r = it->second;
          r.backoff = std::min(r.backoff == 0 ? 1u : r.backoff * 2, 64u);
          r.skip_syncs = r.backoff;
        }
      }
    }
    g_cv.notify_all();
    if (broke) demote(copy.addr, "break during the map");
    if (rc != 0) return;  // the daemon refuses now; the next sync tries again
  }
}

void install_break_handler() { sealfs_set_break_handler(on_break, nullptr); }

void install_fork_handlers() { pthread_atfork(fork_prepare, fork_parent, fork_child); }

}  // namespace sealfs::preload
