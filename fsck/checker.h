// fsck.sealfs as a library: run the eight phases over a region, repair or
// only check, and return the report (docs/fsck.md).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "fsck/report.h"
#include "media/region.h"

namespace sealfs::fsck {

struct FsckOptions {
  // false: check only; nothing is written (the region is wrapped in a
  // read-only view whatever the caller passed). true: repair through
  // journal transactions, then verify with a fresh check-only pass.
  bool repair = false;
  // With repair: e2fsck's preen (-p). A check-only pass runs first; the
  // repair follows only if every problem it found is preen-safe
  // (fsck/preen.h), else nothing is written and the exit code is 4.
  bool preen = false;
  // Is the holder of a quarantined extent still alive? Default: the process
  // exists and its start time matches (meta/holder_liveness.h).
  std::function<bool(uint32_t pid, uint64_t start_time)> holder_alive;
  // Time written to last_check_time_ns on repair (0 = now).
  uint64_t now_ns = 0;
  std::string target;  // for the report
  // Called as a phase advances (items done of total; the items are inode
  // table blocks, inodes, directories); the caller rate-limits its output.
  std::function<void(Phase phase, uint64_t done, uint64_t total)> progress;
};

// Never crashes on any image. Operational trouble (a journal commit that
// fails, an unsupported format) is reported as exit code 8.
Report run_fsck(Region& region, const FsckOptions& options);

}  // namespace sealfs::fsck
