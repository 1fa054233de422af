// The state of a mount's verification (mount_verifier.cc): whether every
// inode has been read and the image cross-checked, and, until then, which
// bytes of the inode table may hold data (inodes are read from them on first
// touch). Owned by FilesystemImpl; kept out of its header.
#pragma once

#include <atomic>
#include <condition_variable>
#include <thread>
#include <vector>

#include "media/region.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace sealfs {

struct MountVerifier {
  Mutex mu;  // leaf: guards done, result and stopped
  std::condition_variable_any finished;  // waited on with a MutexLock
  bool done GUARDED_BY(mu) = false;
  Status result GUARDED_BY(mu);  // kOk, the damage found, or why it stopped
  bool stopped GUARDED_BY(mu) = false;  // given up for an unmount: found nothing
  // Set by the verifier thread when it returns because of `stop` (not when
  // it returns damage it found while an unmount was asking it to stop);
  // touched by that thread only.
  bool gave_up = false;
  bool was_stopped() EXCLUDES(mu) {
    MutexLock lock(mu);
    return stopped;
  }
  Status outcome() EXCLUDES(mu) {
    MutexLock lock(mu);
    return result;
  }
  // done with an ok result: the lock-free fast path of every metadata change.
  std::atomic<bool> verified{false};
  std::atomic<bool> stop{false};  // unmount: give up between inodes
  // Damage found: the mount is read-only for good (no atime is kept).
  std::atomic<bool> damaged{false};
  // While set, an inode first touched is read from its slot (and chain) by
  // the inode table; once every slot with data is read, the rest are zeros.
  std::atomic<bool> loading{true};
  // The inode table's byte ranges that hold data (a sparse region file's
  // holes read as zeros and are not read: docs/daemon.md).
  std::vector<Region::ByteRange> table_data;
  std::thread thread;
};

}  // namespace sealfs
