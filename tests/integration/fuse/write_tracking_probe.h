// Whether this kernel lets a process track the writes to its shmem pages
// with asynchronous userfaultfd write-protect (Linux 6.7+): what libsealfs
// needs to persist only the written pages of an emulate_pmem mapping
// (docs/protocol.md "Persisting only what was written"). Probed without
// libsealfs, so a library that wrongly never tracks fails the tests that
// demand tracking where this says it is possible.
#pragma once

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace sealfs::itest {

inline bool kernel_tracks_shmem_writes() {
  constexpr int kUserModeOnly = 1;                 // UFFD_USER_MODE_ONLY
  constexpr uint64_t kWpAsync = uint64_t{1} << 15;  // UFFD_FEATURE_WP_ASYNC
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const int uffd =
      static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | kUserModeOnly));
  if (uffd < 0) return false;
  struct uffdio_api api{};
  api.api = UFFD_API;
  api.features = kWpAsync;
  bool ok = ioctl(uffd, UFFDIO_API, &api) == 0;
  const int memfd = ok ? memfd_create("sealfs-probe", MFD_CLOEXEC) : -1;
  void* p = MAP_FAILED;
  if (memfd >= 0 && ftruncate(memfd, static_cast<off_t>(page)) == 0) {
    p = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  }
  ok = p != MAP_FAILED;
  if (ok) {
    struct uffdio_register reg{};
    reg.range.start = reinterpret_cast<uintptr_t>(p);
    reg.range.len = page;
    reg.mode = UFFDIO_REGISTER_MODE_WP;
    ok = ioctl(uffd, UFFDIO_REGISTER, &reg) == 0;
    munmap(p, page);
  }
  if (memfd >= 0) close(memfd);
  close(uffd);
  // The scan is an ioctl of this (PAGEMAP_SCAN came with WP_ASYNC, in 6.7).
  const int pagemap = ok ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
  if (pagemap >= 0) close(pagemap);
  return pagemap >= 0;
}

}  // namespace sealfs::itest
