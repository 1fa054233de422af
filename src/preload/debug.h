// The preload library's debug log and counters.
//
// SEALFS_PRELOAD_DEBUG=1 writes one line per decision to stderr; a value
// starting with '/' appends the lines to that file instead (a program's
// stderr may be its output). The counters are written as one "stats" line
// when the program exits, so a test can prove the direct path was taken.
// Lines are formatted on the stack and written with one write(2): no stdio
// and no logging library inside every program the library is preloaded into.
#pragma once

#include <atomic>
#include <cstdint>

namespace sealfs::preload {

struct Counters {
  std::atomic<uint64_t> direct{0};      // mmaps (or parts) made direct
  std::atomic<uint64_t> refused{0};     // the daemon refused: ordinary mapping kept
  std::atomic<uint64_t> demoted{0};     // direct ranges turned ordinary (break, munmap part, ...)
  std::atomic<uint64_t> resealed{0};    // read-only ranges made direct again after a break
  std::atomic<uint64_t> persists{0};    // msync/fsync/fdatasync answered with sealfs_persist
  std::atomic<uint64_t> released{0};    // leases released by munmap/mremap
  std::atomic<uint64_t> window_made{0};    // windows made for pread/pwrite (windows.h)
  std::atomic<uint64_t> window_closed{0};  // windows taken away (break, or the program's end)
  std::atomic<uint64_t> window_writes{0};  // pwrite pieces copied into a window
  std::atomic<uint64_t> window_reads{0};   // pread pieces copied from a window
  std::atomic<uint64_t> syncs_answered{0};  // fdatasyncs that needed no call to the kernel
};

Counters& counters();
bool debug_enabled();
void debug(const char* format, ...) __attribute__((format(printf, 1, 2)));
void write_stats();

}  // namespace sealfs::preload
