// What every FUSE handler reaches through fuse_req_userdata().
#pragma once

#include <atomic>
#include <functional>
#include <mutex>

#include "fuse/open_writers.h"
#include "fuse/options.h"
#include "lease/lease_engine.h"
#include "meta/filesystem.h"

namespace sealfs::fuse {

struct DaemonContext {
  Filesystem* fs = nullptr;
  const DaemonOptions* options = nullptr;

  // Kernel cache lifetimes, from the options (DaemonOptions says why they
  // are long).
  double entry_timeout_s = kDefaultCacheTimeoutS;
  double negative_timeout_s = kDefaultCacheTimeoutS;
  double attr_timeout_s = kDefaultCacheTimeoutS;

  // The lease engine (never null once serving). Coherence with direct
  // mappings (docs/daemon.md): an inode that has ever been leased in this
  // mount is opened with direct_io, so a read(2) sees stores made through a
  // direct mapping instead of stale page cache; mmap(MAP_SHARED) of it still
  // works through FUSE_DIRECT_IO_ALLOW_MMAP (direct_io_mmap.h).
  lease::LeaseEngine* leases = nullptr;
  // Set right after fuse_session_new, before the loop serves anything; for
  // the notifications of kernel_cache.h.
  fuse_session* session = nullptr;
  // Handles open for writing, per inode (open_writers.h).
  OpenWriters open_writers;
  // The kernel agreed to cache writes (-o writeback_cache). Set once, in
  // INIT, before any other request.
  bool writeback_cache = false;
  // Runs before Filesystem::unmount (stops the lease engine).
  std::function<void()> before_unmount;

  // Filesystem::unmount() must run exactly once: from the destroy callback
  // (the kernel went away: fusermount3 -u, umount) or after the loop ends
  // (a signal), whichever comes first.
  Status unmount_once() {
    std::call_once(unmount_flag_, [this] {
      if (before_unmount) before_unmount();
      unmount_status_ = fs->unmount();
      unmounted_.store(true);
    });
    return unmount_status_;
  }
  bool unmounted() const { return unmounted_.load(); }

 private:
  std::once_flag unmount_flag_;
  Status unmount_status_;
  std::atomic<bool> unmounted_{false};
};

}  // namespace sealfs::fuse
