// The kernel's own mmap family, called as raw system calls: the preload
// library must not look these up with dlsym (which may allocate, and an
// allocation may mmap: a loop before the pointer is known), and glibc's
// wrappers add nothing we need.
#pragma once

#include <stddef.h>
#include <sys/types.h>

namespace sealfs::preload {

void* real_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t offset);
int real_munmap(void* addr, size_t len);
void* real_mremap(void* old_addr, size_t old_len, size_t new_len, int flags, void* new_addr);
int real_msync(void* addr, size_t len, int flags);
int real_mprotect(void* addr, size_t len, int prot);
// fsync and fdatasync are cancellation points: glibc's, found with dlsym.
int real_fsync(int fd);
int real_fdatasync(int fd);
// close likewise (a cancellation point), and fcntl and lockf (F_SETLKW
// and F_LOCK are).
int real_close(int fd);
int real_fcntl(int fd, int cmd, void* arg);
int real_lockf(int fd, int cmd, off_t len);
// pread and pwrite likewise (cancellation points).
ssize_t real_pread(int fd, void* buf, size_t count, off_t offset);
ssize_t real_pwrite(int fd, const void* buf, size_t count, off_t offset);

}  // namespace sealfs::preload
