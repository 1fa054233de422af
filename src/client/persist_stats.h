// Counters of what sealfs_persist flushed, for tests and the preload
// library's debug statistics (not part of the public API). Process-wide;
// read them before and after the persists of interest.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

namespace sealfs::client {

struct PersistStats {
  std::atomic<uint64_t> scanned{0};    // ranges flushed by their written pages only
  std::atomic<uint64_t> whole{0};      // ranges flushed line by line in full
  std::atomic<uint64_t> fallbacks{0};  // of those, tracked ranges whose scan failed
  std::atomic<uint64_t> lines{0};      // cache lines written back, in all
};

PersistStats& persist_stats();

// Tests only: called with every run of written pages a scan returned, after
// its lines were written back and before the persist's fence, under the
// map's persist lock. nullptr (the default) for none.
using WrittenRunObserver = void (*)(const void* start, size_t len);
void set_written_run_observer(WrittenRunObserver observer);

}  // namespace sealfs::client
