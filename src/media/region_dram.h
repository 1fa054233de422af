// In-memory Region for unit tests and the crash tier.
//
// It keeps two images: the one the CPU sees (data()) and the one that would
// survive power loss. flush() snapshots cache lines into a pending set;
// drain() makes the pending lines durable. Every flush and drain is recorded
// in a trace the crash tier replays. crash() returns what a power loss right
// now could leave: durable bytes, and for every 8-byte word that differs
// either the durable value (kDrop) or, chosen by a seeded coin, the newer one
// (kTear) — real caches may evict any dirty line at any time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <vector>

#include "media/region.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace sealfs {

class RegionDram final : public Region {
 public:
  enum class CrashMode { kDrop, kTear };
  struct TraceEvent {
    enum Kind { kFlush, kDrain } kind;
    uint64_t offset;  // for kFlush
    uint64_t length;  // for kFlush
  };

  // A zero-filled region of `size` bytes (multiple of 4096).
  static std::unique_ptr<RegionDram> create(uint64_t size, uint64_t alignment = 4096,
                                            Granularity g = Granularity::kCacheLine);
  // A region whose visible and durable images are both `image`.
  static std::unique_ptr<RegionDram> from_image(std::vector<std::byte> image,
                                                uint64_t alignment = 4096,
                                                Granularity g = Granularity::kCacheLine);
  ~RegionDram() override;

  void flush(const void* addr, size_t len) override;
  void drain() override;
  void copy_flush(RegionWriteKey key, void* dst, const void* src, size_t len) override;
  void zero_flush(RegionWriteKey key, void* dst, size_t len) override;

  // The image a power loss now would leave.
  std::vector<std::byte> crash(CrashMode mode, uint64_t seed = 0) const;
  // Snapshot of what the CPU sees.
  std::vector<std::byte> image() const;

  std::vector<TraceEvent> trace() const;
  void clear_trace();
  uint64_t drain_count() const;
  uint64_t flush_count() const;
  // Raw write for tests that corrupt images on purpose (bypasses the journal;
  // also makes the bytes durable).
  void corrupt(uint64_t offset, const void* bytes, size_t len);
  // Called at the start of every drain(), before it makes the pending lines
  // durable, with the number of drains completed so far: crash() from the
  // observer gives the image a power loss just before that fence leaves.
  // Called without the region's lock held; the observer must not drain.
  void set_drain_observer(std::function<void(uint64_t drain_index)> observer);

 private:
  RegionDram(uint64_t size, uint64_t alignment, Granularity g);

  mutable Mutex mu_;  // leaf (src/meta/locking.h)
  // The region's bytes: written through data() by the layers above, under
  // their own locks, so not GUARDED_BY; flush() and crash() read them under mu_.
  std::vector<std::byte> visible_;
  std::vector<std::byte> durable_ GUARDED_BY(mu_);
  // Cache-line index -> bytes captured at flush time, awaiting drain.
  std::vector<std::pair<uint64_t, std::vector<std::byte>>> pending_ GUARDED_BY(mu_);
  std::vector<TraceEvent> trace_ GUARDED_BY(mu_);
  uint64_t flushes_ GUARDED_BY(mu_) = 0;
  uint64_t drains_ GUARDED_BY(mu_) = 0;
  std::function<void(uint64_t)> drain_observer_;
};

}  // namespace sealfs
