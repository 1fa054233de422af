// Region: the byte-addressable persistent store sealfs lives in.
//
// Backends are files: region_pmem2 (devdax, fsdax file, ordinary file, via
// libpmem2) and region_dram (in-memory fake with a persistence trace and power
// loss simulation, for tests).
//
// Reads go through the const view. Writes need a RegionWriteKey, which only
// the Journal (metadata), DataWriter (file data) and Formatter (mkfs) can
// construct: that is how "metadata is written only through the journal" is
// enforced by the compiler rather than by review.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "media/media_fault.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace sealfs {

enum class Granularity {
  kByte,       // eADR / persistent caches: a store is durable when visible
  kCacheLine,  // ADR: flush cache lines, then fence
  kPage,       // not DAX: msync
};
const char* granularity_name(Granularity g);

class RegionWriteKey {
 private:
  RegionWriteKey() = default;
  friend class Journal;
  friend class DataWriter;
  friend class Formatter;
  friend class RegionTestAccess;  // unit tests only
};

class Region {
 public:
  virtual ~Region() = default;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  uint64_t size() const { return size_; }
  // Mapping alignment of the source (pmem2_source_alignment): every extent
  // that may be direct-mapped starts and ends on it.
  uint64_t alignment() const { return alignment_; }
  Granularity granularity() const { return granularity_; }
  bool read_only() const { return read_only_; }
  const std::byte* data() const { return base_; }
  // Human description: path and backend ("devdax /dev/dax0.0").
  const std::string& description() const { return description_; }

  std::byte* writable(RegionWriteKey) { return base_; }

  // Makes [addr, addr+len) durable once the next drain() returns.
  virtual void flush(const void* addr, size_t len) = 0;
  // Waits for every flush issued by this thread so far.
  virtual void drain() = 0;
  void persist(const void* addr, size_t len) {
    flush(addr, len);
    drain();
  }
  // Copies and flushes (non-temporal stores where the backend has them); the
  // caller drains. Used for file data.
  virtual void copy_flush(RegionWriteKey key, void* dst, const void* src, size_t len) = 0;
  virtual void zero_flush(RegionWriteKey key, void* dst, size_t len) = 0;

  // Byte ranges of [offset, offset + length) that may hold non-zero bytes,
  // ascending; everything else reads as zero. The default knows nothing and
  // answers the whole range; a sparse region file answers from its holes, so
  // that fsck skips an inode table or bitmap that was never written (a
  // 1 TiB region has a 16 GiB inode table) instead of faulting it in.
  struct ByteRange {
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  virtual std::vector<ByteRange> data_ranges(uint64_t offset, uint64_t length) const;

  uint64_t offset_of(const void* p) const {
    return static_cast<uint64_t>(static_cast<const std::byte*>(p) - base_);
  }

  // Media faults (media_fault.h). Runs fn (plain loads, stores, copies and
  // flushes of the mapping only) so that a SIGBUS on the mapping ends it
  // early instead of killing the process; returns kIoError naming `what` and
  // the region offset. The first fault marks the region failed for good and
  // is logged once at error level: from then on nothing may be written that
  // assumes earlier writes landed (the journal refuses commits and
  // checkpoints, the filesystem turns read-only).
  template <typename F>
  [[nodiscard]] Status guarded(const char* what, F&& fn) const {
    uintptr_t address = 0;
    if (run_recoverable(base_, size_, fn, &address)) return Status::ok();
    return media_fault(what, address);
  }
  bool media_failed() const { return media_fault_offset_.load() != kNoFault; }
  // Region offset of the first fault (meaningful once media_failed()).
  uint64_t media_fault_offset() const { return media_fault_offset_.load(); }
  // The error a write refuses with once the region has failed: kReadOnly
  // (EROFS) for layout changes, kIoError (EIO) for data.
  Status failed_status(const char* what, Code code = Code::kReadOnly) const;
  // Called once, on the thread of the first fault, after it is logged: the
  // lease engine breaks the writable direct mappings then (docs/daemon.md
  // "Media errors"). That thread may hold any lock of the daemon
  // (meta/locking.h), so `observer` may take leaves only. An empty function
  // removes it. Const as media_fault() is: a fault is the region's state.
  void on_first_fault(std::function<void()> observer) const;

 protected:
  Region() = default;
  std::byte* base_ = nullptr;
  uint64_t size_ = 0;
  uint64_t alignment_ = 4096;
  Granularity granularity_ = Granularity::kPage;
  bool read_only_ = false;
  std::string description_;

 private:
  static constexpr uint64_t kNoFault = UINT64_MAX;
  Status media_fault(const char* what, uintptr_t address) const;
  // Mutable: a fault found while reading is still a fault of the region.
  mutable std::atomic<uint64_t> media_fault_offset_{kNoFault};
  mutable Mutex observer_mu_;  // leaf (meta/locking.h)
  mutable std::function<void()> fault_observer_ GUARDED_BY(observer_mu_);
};

}  // namespace sealfs
