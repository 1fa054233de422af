// What the lease engine needs from the filesystem, as interfaces, so the
// engine is tested without the meta layer or FUSE.
//
// LayoutSource: the file side (extent maps, eligibility, ALLOCATE/RELOCATE,
// the per-inode layout lock). QuarantineSink: the allocator side (blocks a
// holder may still reach). Clock: time, faked in tests.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "wire/wire.h"
#include "util/status.h"

namespace sealfs::lease {

// One piece of a granted range: file bytes [file_offset, +length) live at
// region bytes [region_offset, +length).
struct MapExtent {
  uint64_t file_offset = 0;
  uint64_t region_offset = 0;
  uint64_t length = 0;
  bool operator==(const MapExtent&) const = default;
};

// A process, named so a reused pid is not mistaken for it: pid and its start
// time (field 22 of /proc/PID/stat). Same meaning as alloc's Holder.
struct HolderId {
  uint32_t pid = 0;
  uint64_t start_time = 0;
  auto operator<=>(const HolderId&) const = default;
};

// The region as a client must map it.
struct RegionInfo {
  int fd = -1;               // read-write descriptor of the region; the engine dups it
  uint64_t alignment = 4096;  // device alignment, bytes
  uint32_t granularity = wire::kGranularityPage;
  uint32_t flags = 0;        // wire::kRegion*
};

// The eligibility answer for a range: extents, or why not.
struct LayoutAnswer {
  wire::Refusal refusal = wire::Refusal::kNone;
  uint64_t where = 0;  // file offset of the offending piece, for the message
  std::vector<MapExtent> extents;
  uint64_t old_size = 0;  // extend_for_lease: the file's size before (for undo_extend)
};

// Added by the engine to the kMap* flags it passes to layout_for_lease
// when the grant is writable (never on the wire: kMapKnownFlags excludes it).
inline constexpr uint32_t kGrantWritable = 1u << 31;
static_assert((kGrantWritable & wire::kMapKnownFlags) == 0);

class LayoutSource {
 public:
  // Holds an inode's layout lock exclusively while alive. Grants check the
  // extents and install the lease under it, so no allocation, truncate or
  // punch that started before a grant can finish after it.
  class Lock {
   public:
    virtual ~Lock() = default;
  };

  virtual ~LayoutSource() = default;
  virtual std::unique_ptr<Lock> lock_layout(uint64_t ino) = 0;
  // Called with `held` (the lock of `ino`). With kMapAllocate the source
  // allocates and zeroes holes and unwritten extents first; with
  // kMapRelocate it moves data into aligned extents first. A refusal is a
  // normal answer; a Status error is a failure of the filesystem itself.
  virtual Result<LayoutAnswer> layout_for_lease(const Lock& held, uint64_t ino, uint64_t offset,
                                                uint64_t length, uint32_t flags) = 0;
  virtual RegionInfo region() const = 0;
  // EXTEND (docs/protocol.md): with `held`, grows the file to at least
  // offset + new_length (zeroing the old last block past the old size, then
  // committing the size) and answers the pieces of the added range
  // [offset + old_length, offset + new_length), its holes and unwritten
  // extents allocated and zeroed. Never frees or moves a block, so no lease
  // of the file needs a break. `flags`: wire::kMapFlushed only. A refusal
  // or a failure leaves the file's size as it was (holes it filled inside
  // the old size may stay allocated, as zeros).
  virtual Result<LayoutAnswer> extend_for_lease(const Lock& held, uint64_t ino, uint64_t offset,
                                                uint64_t old_length, uint64_t new_length,
                                                uint32_t flags) {
    (void)held, (void)ino, (void)offset, (void)old_length, (void)new_length, (void)flags;
    return Status(Code::kNotSupported, "this source cannot extend");
  }
  // An EXTEND that extend_for_lease answered could not be granted after
  // all (the engine could not pin the added extents): with the same
  // `held`, the size goes back to answer.old_size and the grown part's
  // blocks are freed.
  virtual void undo_extend(const Lock& held, uint64_t ino, uint64_t old_size) {
    (void)held, (void)ino, (void)old_size;
  }
  // A writable lease of `ino` ended (released, revoked, its holder gone), or
  // the file is synced while one is held: stores through it may have
  // changed the file's bytes, which moves its mtime and ctime
  // (Filesystem::note_direct_stores). Called with no lock held.
  virtual void direct_stores_possible(uint64_t ino) { (void)ino; }

  // --- Inspection (sealfs-layout; wire::kExtents, kSuper, kFreeSpace) ---
  // Read-only snapshots; the defaults say the source has none.
  struct FileInspection {
    uint64_t size = 0;
    uint32_t mode = 0;
    uint32_t inode_flags = 0;  // sealfs/format.h kInodeUserFlags bits and kInodeInlineData
    uint32_t project_id = 0;
    std::vector<wire::ExtentRecord> extents;  // flags: kExtentUnwritten only
  };
  struct SpaceInspection {
    uint64_t block_size = 4096;
    uint64_t data_start = 0, data_length = 0;  // bytes
    std::vector<wire::SpaceRecord> pieces;     // free extents by offset, then quarantine
  };
  virtual Result<FileInspection> inspect_file(uint64_t ino) {
    (void)ino;
    return Status(Code::kNotSupported, "no inspection");
  }
  virtual Result<wire::SuperRecord> inspect_super() {
    return Status(Code::kNotSupported, "no inspection");
  }
  virtual Result<SpaceInspection> inspect_space() {
    return Status(Code::kNotSupported, "no inspection");
  }
};

// Where blocks that a holder may reach are accounted, persistently. The meta
// side implements it over the allocator's holder table (alloc/allocator.h).
// Called with the engine's mutex held (it may commit transactions: the lock
// order is in src/meta/locking.h); must not call back into the engine.
class QuarantineSink {
 public:
  virtual ~QuarantineSink() = default;
  // A grant: `holder` can now reach `extents` of `ino`. Recorded so that a
  // restarted daemon quarantines them if the holder is still alive. An error
  // refuses the grant. Called again with the same lease_id when an EXTEND
  // adds extents to the lease: they join the ones pinned before.
  virtual Status pin(const HolderId& holder, uint64_t lease_id, uint64_t ino,
                     const std::vector<MapExtent>& extents) = 0;
  // The holder let go of the lease (released, fenced and acknowledged,
  // or exited).
  virtual void unpin(const HolderId& holder, uint64_t lease_id) = 0;
  // The lease was revoked while the holder may still reach `extents`: when
  // the breaker frees them from the file they must go to quarantine against
  // `holder`, not to free space. An error keeps the breaker waiting (the
  // engine escalates to SIGKILL and waits for the holder's death).
  virtual Status quarantine(const HolderId& holder, uint64_t ino,
                            const std::vector<MapExtent>& extents) = 0;
  // `holder` is gone and no process can reach its old mappings (mappings are
  // MADV_DONTFORK): its quarantined blocks may be freed.
  virtual void release_holder(const HolderId& holder) = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t now_ns() const = 0;  // CLOCK_MONOTONIC
};

class MonotonicClock final : public Clock {
 public:
  uint64_t now_ns() const override;
};

}  // namespace sealfs::lease
