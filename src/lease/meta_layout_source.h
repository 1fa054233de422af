// The lease engine over real files: MetaLayoutSource answers grants from the
// metadata layer (Filesystem::lock_layout / layout_extents), and
// MetaQuarantineSink keeps the allocator's holder table and the meta layer's
// quarantine-on-free rules in step with the engine.
//
// Refusals: the meta layer's codes become wire refusals (docs/protocol.md):
//   kNotSupported -> kNotRegular (ENODEV)   kRange   -> kPastEof (ERANGE)
//   kNoData       -> kHole (ENODATA)        kAgain   -> kUnwritten (ENODATA)
//   kInvalid      -> kMisaligned (EINVAL)   kNxio    -> kBreaking (ENXIO)
//   kPermission   -> kSealedFile (EPERM)
// Any other error fails the request with its errno.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "lease/layout_source.h"
#include "meta/filesystem.h"
#include "util/thread_annotations.h"

namespace sealfs::lease {

class MetaLayoutSource final : public LayoutSource {
 public:
  // `region_fd`: a read-write descriptor of the region (RegionPmem2::fd());
  // `region_flags`: wire::kRegionFsdax / kRegionDevdax for the region kind,
  // and wire::kMountWriteThrough.
  MetaLayoutSource(Filesystem& fs, int region_fd, uint32_t region_flags);
  std::unique_ptr<Lock> lock_layout(uint64_t ino) override;
  Result<LayoutAnswer> layout_for_lease(const Lock& held, uint64_t ino, uint64_t offset,
                                        uint64_t length, uint32_t flags) override;
  RegionInfo region() const override;
  Result<LayoutAnswer> extend_for_lease(const Lock& held, uint64_t ino, uint64_t offset,
                                        uint64_t old_length, uint64_t new_length,
                                        uint32_t flags) override;
  void undo_extend(const Lock& held, uint64_t ino, uint64_t old_size) override;
  void direct_stores_possible(uint64_t ino) override;
  Result<FileInspection> inspect_file(uint64_t ino) override;
  Result<wire::SuperRecord> inspect_super() override;
  Result<SpaceInspection> inspect_space() override;

 private:
  std::optional<LayoutAnswer> devdax_refusal(uint64_t offset, uint64_t length) const;
  Filesystem& fs_;
  int region_fd_;
  uint32_t region_flags_;
};

class MetaQuarantineSink final : public QuarantineSink {
 public:
  explicit MetaQuarantineSink(Filesystem& fs) : fs_(fs) {}
  Status pin(const HolderId& holder, uint64_t lease_id, uint64_t ino,
             const std::vector<MapExtent>& extents) override;
  void unpin(const HolderId& holder, uint64_t lease_id) override;
  Status quarantine(const HolderId& holder, uint64_t ino,
                    const std::vector<MapExtent>& extents) override;
  void release_holder(const HolderId& holder) override;

 private:
  Filesystem& fs_;
  Mutex mu_;  // leaf
  std::map<uint64_t, std::vector<LayoutPiece>> pinned_ GUARDED_BY(mu_);  // lease id -> pieces
};

}  // namespace sealfs::lease
