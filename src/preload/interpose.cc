// The functions libsealfs-preload puts in front of libc's: mmap, mmap64,
// munmap, mremap, mprotect, msync, fsync, fdatasync, pread, pread64,
// pwrite, pwrite64, __pread_chk, __pread64_chk, close, fcntl, fcntl64,
// lockf, lockf64. Each decides quickly
// whether the call concerns a sealfs mapping and otherwise goes straight to
// the kernel. docs/preload.md says what each does.
//
// Built without _FILE_OFFSET_BITS=64 (meson adds it): with it, glibc's
// headers rename mmap to mmap64 and the two definitions below would be
// one symbol. Both take a 64-bit off_t on the 64-bit targets we build for.
#undef _FILE_OFFSET_BITS
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "preload/anchors.h"
#include "preload/debug.h"
#include "preload/ranges.h"
#include "preload/real_calls.h"
#include "preload/windows.h"

static_assert(sizeof(off_t) == 8, "libsealfs-preload needs a 64-bit off_t");

namespace sealfs::preload {
namespace {

constexpr long kFuseSuperMagic = 0x65735546;

// A MAP_SHARED mapping of a file on a FUSE mount with a protection libsealfs
// can give (read, or read and write), at a page-aligned offset.
bool candidate(size_t len, int prot, int flags, int fd, off_t offset) {
  if (fd < 0 || len == 0 || (flags & MAP_ANONYMOUS) != 0) return false;
  const int type = flags & MAP_TYPE;
  if (type != MAP_SHARED && type != MAP_SHARED_VALIDATE) return false;
  if ((flags & MAP_SYNC) != 0) return false;  // the program asks the kernel for something specific
  if (prot != PROT_READ && prot != (PROT_READ | PROT_WRITE)) return false;
  if (offset < 0 || offset % sysconf(_SC_PAGESIZE) != 0) return false;
  struct statfs fs;
  return fstatfs(fd, &fs) == 0 && fs.f_type == kFuseSuperMagic;
}

struct SyncResult {
  int flags;
  int rc;
  int err;
};

void msync_ordinary(void* addr, size_t len, void* arg) {
  auto* result = static_cast<SyncResult*>(arg);
  if (real_msync(addr, len, result->flags) != 0 && result->rc == 0) {
    result->rc = -1;
    result->err = errno;
  }
}

// What is left of an fdatasync the library answers (windows.h): pages
// that the kernel caches for the file and that some process dirtied
// through a mapping are written back (no request when there are none), and
// a write-back that failed since the descriptor last looked (the kernel
// keeps that per file, e.g. of a mapping the program unmapped) is reported
// as the real call would, as is a descriptor that cannot be synced (EBADF
// for an O_PATH one).
int answer_fdatasync(int fd) {
  pthread_testcancel();  // fdatasync is a cancellation point
  return sync_file_range(fd, 0, 0,
                         SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                             SYNC_FILE_RANGE_WAIT_AFTER);
}

template <int (*Real)(int)>
int sync_file(int fd) {
  if (Inside::now()) return Real(fd);
  // The program's own direct ranges of the file are persisted, and its
  // read-only ones made direct again, whether the call is answered or real.
  // One look at the file for all three (a statx is a good part of a
  // commit the library answers).
  struct stat st;
  if (!cached_stat(fd, &st)) return Real(fd);  // not open: the kernel's EBADF
  const bool answered = Real == real_fdatasync && window_answers_fdatasync(fd, st);
  const bool tracked = any_tracked();
  const int persisted = tracked ? persist_file(st) : 0;
  int rc = answered ? answer_fdatasync(fd) : Real(fd);
  int err = errno;
  if (tracked) {
    reseal_file(st);
    close_dropped_anchors();
  }
  if (rc == 0 && persisted != 0) {
    rc = -1;
    err = -persisted;
  }
  errno = err;
  return rc;
}

// A record lock taken through fd (anchors.h: the lock gate).
bool takes_record_lock(int cmd, void* arg) {
  if (cmd != F_SETLK && cmd != F_SETLKW) return false;
  const auto* lock = static_cast<const struct flock*>(arg);
  return lock != nullptr && lock->l_type != F_UNLCK;
}

int locking_fcntl(int fd, int cmd, void* arg) {
  if (Inside::now() || !takes_record_lock(cmd, arg)) return real_fcntl(fd, cmd, arg);
  before_lock_call(fd);
  const int rc = real_fcntl(fd, cmd, arg);
  const int err = errno;
  after_lock_call();
  errno = err;
  return rc;
}

int locking_lockf(int fd, int cmd, off_t len) {
  if (Inside::now() || (cmd != F_LOCK && cmd != F_TLOCK)) return real_lockf(fd, cmd, len);
  before_lock_call(fd);
  const int rc = real_lockf(fd, cmd, len);
  const int err = errno;
  after_lock_call();
  errno = err;
  return rc;
}

__attribute__((constructor)) void start() {
  anchors_init();
  // Looked up now, not first in a signal handler (dlsym is not
  // async-signal-safe; fcntl, lockf and close are).
  real_fcntl(-1, F_GETFD, nullptr);
  real_lockf(-1, F_TEST, 0);
  real_close(-1);
  install_break_handler();
  install_fork_handlers();
  debug("loaded");
}

__attribute__((destructor)) void stop() {
  if (debug_enabled()) write_stats();
}

}  // namespace
}  // namespace sealfs::preload

using namespace sealfs::preload;

extern "C" {

__attribute__((visibility("default"))) void* mmap(void* addr, size_t len, int prot, int flags,
                                                  int fd, off_t offset) {
  if (Inside::now()) return real_mmap(addr, len, prot, flags, fd, offset);
  if (candidate(len, prot, flags, fd, offset)) {
    void* p = map_shared(addr, len, prot, flags, fd, offset);
    close_dropped_anchors();
    return p;
  }
  if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) == MAP_FIXED && any_tracked()) {
    release_overlapping(addr, len, true);
    close_dropped_anchors();
  }
  void* p = real_mmap(addr, len, prot, flags, fd, offset);
  // A shared mapping of a file that stays the kernel's (PROT_EXEC, MAP_SYNC,
  // an odd offset...): if it is a sealfs file, windows must leave it alone.
  const int type = flags & MAP_TYPE;
  if (p != MAP_FAILED && fd >= 0 && (flags & MAP_ANONYMOUS) == 0 &&
      (type == MAP_SHARED || type == MAP_SHARED_VALIDATE)) {
    note_page_cache_mapping(fd);
  }
  return p;
}

__attribute__((visibility("default"))) void* mmap64(void* addr, size_t len, int prot, int flags,
                                                    int fd, off_t offset) {
  return mmap(addr, len, prot, flags, fd, offset);
}

__attribute__((visibility("default"))) int munmap(void* addr, size_t len) {
  if (!Inside::now() && any_tracked()) {
    release_overlapping(addr, len, true);
    close_dropped_anchors();
  }
  return real_munmap(addr, len);
}

__attribute__((visibility("default"))) int mprotect(void* addr, size_t len, int prot) {
  if (!Inside::now() && any_tracked()) {
    release_overlapping(addr, len, false);
    close_dropped_anchors();
  }
  return real_mprotect(addr, len, prot);
}

__attribute__((visibility("default"))) void* mremap(void* old_addr, size_t old_len, size_t new_len,
                                                    int flags, ...) {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list args;
    va_start(args, flags);
    new_addr = va_arg(args, void*);
    va_end(args);
  }
  if (!Inside::now() && any_tracked()) {
    void* result = nullptr;
    const bool remapped = remap_tracked(old_addr, old_len, new_len, flags, &result);
    if (!remapped) release_overlapping(old_addr, old_len, false);
    close_dropped_anchors();
    if (remapped) return result;
  }
  return real_mremap(old_addr, old_len, new_len, flags, new_addr);
}

__attribute__((visibility("default"))) int msync(void* addr, size_t len, int flags) {
  if (Inside::now() || !any_tracked()) return real_msync(addr, len, flags);
  SyncResult result{flags, 0, 0};
  const int rc = persist_range(addr, len, msync_ordinary, &result);
  if (result.rc != 0) {
    errno = result.err;
    return -1;
  }
  if (rc != 0) {
    errno = -rc;
    return -1;
  }
  return 0;
}

__attribute__((visibility("default"))) ssize_t pwrite(int fd, const void* buf, size_t count,
                                                      off_t offset) {
  ssize_t result = 0;
  if (!Inside::now() && window_pwrite(fd, buf, count, offset, &result)) return result;
  return real_pwrite(fd, buf, count, offset);
}

__attribute__((visibility("default"))) ssize_t pwrite64(int fd, const void* buf, size_t count,
                                                        off_t offset) {
  return pwrite(fd, buf, count, offset);
}

__attribute__((visibility("default"))) ssize_t pread(int fd, void* buf, size_t count, off_t offset) {
  ssize_t result = 0;
  if (!Inside::now() && window_pread(fd, buf, count, offset, &result)) return result;
  return real_pread(fd, buf, count, offset);
}

__attribute__((visibility("default"))) ssize_t pread64(int fd, void* buf, size_t count,
                                                       off_t offset) {
  return pread(fd, buf, count, offset);
}

// What pread becomes in a program built with _FORTIFY_SOURCE: the same,
// after glibc's check of the buffer's size.
extern "C" [[noreturn]] void __chk_fail(void);
__attribute__((visibility("default"))) ssize_t __pread_chk(int fd, void* buf, size_t count,
                                                           off_t offset, size_t buflen) {
  if (count > buflen) __chk_fail();
  return pread(fd, buf, count, offset);
}
__attribute__((visibility("default"))) ssize_t __pread64_chk(int fd, void* buf, size_t count,
                                                             off_t offset, size_t buflen) {
  if (count > buflen) __chk_fail();
  return pread(fd, buf, count, offset);
}

// The library's descriptors of a file the program mapped go just before
// the program closes one of that file; its record locks are noted (anchors.h).
// fcntl's third argument is an int or a pointer: passed on as glibc does.
__attribute__((visibility("default"))) int fcntl(int fd, int cmd, ...) {
  va_list args;
  va_start(args, cmd);
  void* arg = va_arg(args, void*);
  va_end(args);
  return locking_fcntl(fd, cmd, arg);
}
__attribute__((visibility("default"))) int fcntl64(int fd, int cmd, ...) {
  va_list args;
  va_start(args, cmd);
  void* arg = va_arg(args, void*);
  va_end(args);
  return locking_fcntl(fd, cmd, arg);
}
__attribute__((visibility("default"))) int lockf(int fd, int cmd, off_t len) {
  return locking_lockf(fd, cmd, len);
}
__attribute__((visibility("default"))) int lockf64(int fd, int cmd, off_t len) {
  return locking_lockf(fd, cmd, len);
}

__attribute__((visibility("default"))) int close(int fd) {
  if (!Inside::now()) before_program_close(fd);
  return real_close(fd);
}

__attribute__((visibility("default"))) int fsync(int fd) { return sync_file<real_fsync>(fd); }
__attribute__((visibility("default"))) int fdatasync(int fd) { return sync_file<real_fdatasync>(fd); }

}  // extern "C"
