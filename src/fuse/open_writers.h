// How many handles of each inode are open for writing, as the daemon saw
// them open and release. An open asks it whether a write(2) through another
// handle may be on its way to the daemon: such a write's bytes sit in the
// kernel's page cache before they reach the region, and an open that
// dropped the inode's cached pages then could let a reader cache the old
// bytes (ops_file.cc, set_open_flags; docs/daemon.md "Caching and
// coherence"). Its own small unit (no FUSE, no meta), so that the unit
// suite's build, which is the thread-safety check, compiles it.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "util/thread_annotations.h"

namespace sealfs::fuse {

class OpenWriters {
 public:
  // Counts a handle of `ino` opened with `open_flags` (counted only when it
  // can write) and returns how many other handles of it can write.
  uint32_t opened(uint64_t ino, int open_flags) EXCLUDES(mu_);
  // The handle's release (or its open's failed reply), with the same flags.
  void released(uint64_t ino, int open_flags) EXCLUDES(mu_);

 private:
  Mutex mu_;  // leaf: nothing is called while it is held
  std::unordered_map<uint64_t, uint32_t> writers_ GUARDED_BY(mu_);
};

}  // namespace sealfs::fuse
