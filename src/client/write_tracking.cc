#include "client/write_tracking.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

// Debian 12's kernel headers (6.1) predate PAGEMAP_SCAN and asynchronous
// write-protect (6.7): the ABI, as the kernel defines it.
#ifndef PAGEMAP_SCAN
struct page_region {
  __u64 start;
  __u64 end;
  __u64 categories;
};
struct pm_scan_arg {
  __u64 size;
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;
  __u64 vec;
  __u64 vec_len;
  __u64 max_pages;
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WRITTEN (1 << 1)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

namespace sealfs::client {

namespace {

// The process's userfaultfd and pagemap descriptors. Both belong to the
// process that opened them (a userfaultfd registers ranges of its creator's
// memory, a pagemap descriptor reads its opener's page tables), so a forked
// child opens its own on first use. No mutex: a fork while another thread
// held one would leave it locked in the child; one set is published with a
// compare-and-swap instead, and never freed (a thread may still read it).
struct Descriptors {
  pid_t pid = 0;
  int uffd = -1;     // -1: the kernel lacks something (tried once per process)
  int pagemap = -1;
};

std::atomic<Descriptors*> g_current{nullptr};

// Read at every map (not once): tests turn it off around one mapping.
bool enabled_by_environment() {
  const char* v = getenv("SEALFS_TRACK_WRITES");
  return v == nullptr || strcmp(v, "0") != 0;
}

Descriptors* open_descriptors(pid_t self) {
  auto* d = new Descriptors();
  d->pid = self;
  // User-mode faults only: no privilege needed (vm.unprivileged_userfaultfd
  // is 0 by default). Asynchronous write-protect faults, user or kernel
  // mode, never reach the descriptor anyway: the kernel resolves them.
  const int uffd =
      static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
  if (uffd < 0) return d;
  struct uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_WP_ASYNC;
  const int pagemap =
      ioctl(uffd, UFFDIO_API, &api) == 0 ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
  if (pagemap < 0) {
    close(uffd);
    return d;
  }
  d->uffd = uffd;
  d->pagemap = pagemap;
  return d;
}

// This process's descriptors (opened on first use when `open`), or
// nullptr when it has none.
const Descriptors* descriptors(bool open) {
  const pid_t self = getpid();
  Descriptors* current = g_current.load(std::memory_order_acquire);
  if (current == nullptr || current->pid != self) {
    if (!open) return nullptr;
    Descriptors* mine = open_descriptors(self);
    if (g_current.compare_exchange_strong(current, mine, std::memory_order_acq_rel)) {
      // The parent's, inherited: of no use here (only this thread can have
      // replaced them).
      if (current != nullptr && current->uffd >= 0) {
        close(current->uffd);
        close(current->pagemap);
      }
      current = mine;
    } else {  // another thread of this process opened them first
      if (mine->uffd >= 0) {
        close(mine->uffd);
        close(mine->pagemap);
      }
      delete mine;
    }
  }
  return current->pid == self && current->uffd >= 0 ? current : nullptr;
}

}  // namespace

bool track_writes(void* addr, size_t len, size_t mapping_len) {
  if (!enabled_by_environment() || len == 0) return false;
  const Descriptors* d = descriptors(true);
  if (d == nullptr) return false;
  struct uffdio_register reg{};
  reg.range.start = reinterpret_cast<uintptr_t>(addr);
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  // Refused for memory the kernel cannot write-protect per page (DAX
  // mappings of devdax and fsdax regions among them).
  if (ioctl(d->uffd, UFFDIO_REGISTER, &reg) != 0) return false;
  // A page never write-protected counts as written, and one never mapped
  // cannot be told from one written and then unmapped by the kernel
  // (reclaim), so the first scan returns all of the range and that persist
  // faults in and writes back every line, once. A large mapping is
  // write-protected now instead (pte markers where nothing is mapped; it
  // costs page tables and milliseconds per GiB); a small one is left to its
  // first persist, so that a map does not wait for it. Either way, and if
  // this fails, the scans stay exact.
  if (mapping_len < kProtectAtMapAtLeast) return true;
  struct uffdio_writeprotect wp{};
  wp.range = reg.range;
  wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
  (void)ioctl(d->uffd, UFFDIO_WRITEPROTECT, &wp);
  return true;
}

int for_each_written_run(uintptr_t start, uintptr_t end,
                         void (*flush)(uintptr_t start, uintptr_t end, void* arg), void* arg) {
  const Descriptors* d = descriptors(false);
  if (d == nullptr) return -ENOTSUP;  // nothing is tracked in this process
  const int pagemap = d->pagemap;
  constexpr size_t kRuns = 256;
  struct page_region runs[kRuns];
  while (start < end) {
    struct pm_scan_arg scan{};
    scan.size = sizeof(scan);
    // CHECK_WPASYNC: a page of the range that is not tracked (the range was
    // replaced, or part of it was never registered) aborts the scan rather
    // than being silently skipped.
    scan.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
    scan.start = start;
    scan.end = end;
    scan.vec = reinterpret_cast<uintptr_t>(runs);
    scan.vec_len = kRuns;
    scan.category_mask = PAGE_IS_WRITTEN;
    scan.return_mask = PAGE_IS_WRITTEN;
    const long n = ioctl(pagemap, PAGEMAP_SCAN, &scan);
    if (n < 0) return -errno;
    for (long i = 0; i < n; ++i) flush(runs[i].start, runs[i].end, arg);
    // The walk stops early when the runs fill the vector; it resumes
    // where it stopped (the pages up to there are done).
    if (scan.walk_end <= start) return -EIO;
    start = scan.walk_end;
  }
  return 0;
}

}  // namespace sealfs::client
