#include "preload/real_calls.h"

#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

namespace sealfs::preload {

namespace {

// syscall(2) already turns a failure into -1 (MAP_FAILED) and errno.
void* as_pointer(long r) { return reinterpret_cast<void*>(r); }

template <typename F>
F next_symbol(const char* name, std::atomic<F>& cache) {
  F f = cache.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
    cache.store(f, std::memory_order_release);
  }
  return f;
}

}  // namespace

void* real_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t offset) {
  return as_pointer(syscall(SYS_mmap, addr, len, prot, flags, fd, offset));
}

int real_munmap(void* addr, size_t len) { return static_cast<int>(syscall(SYS_munmap, addr, len)); }

void* real_mremap(void* old_addr, size_t old_len, size_t new_len, int flags, void* new_addr) {
  return as_pointer(syscall(SYS_mremap, old_addr, old_len, new_len, flags, new_addr));
}

int real_msync(void* addr, size_t len, int flags) {
  return static_cast<int>(syscall(SYS_msync, addr, len, flags));
}

int real_mprotect(void* addr, size_t len, int prot) {
  return static_cast<int>(syscall(SYS_mprotect, addr, len, prot));
}

int real_fsync(int fd) {
  static std::atomic<int (*)(int)> cache{nullptr};
  auto f = next_symbol("fsync", cache);
  if (f == nullptr) return static_cast<int>(syscall(SYS_fsync, fd));
  return f(fd);
}

int real_fdatasync(int fd) {
  static std::atomic<int (*)(int)> cache{nullptr};
  auto f = next_symbol("fdatasync", cache);
  if (f == nullptr) return static_cast<int>(syscall(SYS_fdatasync, fd));
  return f(fd);
}

int real_close(int fd) {
  static std::atomic<int (*)(int)> cache{nullptr};
  auto f = next_symbol("close", cache);
  if (f == nullptr) return static_cast<int>(syscall(SYS_close, fd));
  return f(fd);
}

int real_fcntl(int fd, int cmd, void* arg) {
  static std::atomic<int (*)(int, int, ...)> cache{nullptr};
  auto f = next_symbol("fcntl64", cache);
  if (f == nullptr) return static_cast<int>(syscall(SYS_fcntl, fd, cmd, arg));
  return f(fd, cmd, arg);
}

int real_lockf(int fd, int cmd, off_t len) {
  static std::atomic<int (*)(int, int, off_t)> cache{nullptr};
  auto f = next_symbol("lockf64", cache);
  if (f == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return f(fd, cmd, len);
}

ssize_t real_pread(int fd, void* buf, size_t count, off_t offset) {
  static std::atomic<ssize_t (*)(int, void*, size_t, off_t)> cache{nullptr};
  auto f = next_symbol("pread64", cache);
  if (f == nullptr) return syscall(SYS_pread64, fd, buf, count, offset);
  return f(fd, buf, count, offset);
}

ssize_t real_pwrite(int fd, const void* buf, size_t count, off_t offset) {
  static std::atomic<ssize_t (*)(int, const void*, size_t, off_t)> cache{nullptr};
  auto f = next_symbol("pwrite64", cache);
  if (f == nullptr) return syscall(SYS_pwrite64, fd, buf, count, offset);
  return f(fd, buf, count, offset);
}

}  // namespace sealfs::preload
