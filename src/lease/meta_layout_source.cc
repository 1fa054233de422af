#include "lease/meta_layout_source.h"

#include <cstring>
#include <optional>

#include "media/superblock.h"
#include "util/log.h"

namespace sealfs::lease {

namespace {

struct MetaLock final : LayoutSource::Lock {
  std::unique_ptr<LayoutLock> held;  // null when the inode could not be locked
  Status why = Status::ok();
};

Holder to_holder(const HolderId& h) { return Holder{h.pid, h.start_time}; }

std::vector<LayoutPiece> to_pieces(const std::vector<MapExtent>& extents) {
  std::vector<LayoutPiece> out;
  out.reserve(extents.size());
  for (const MapExtent& e : extents) out.push_back({e.file_offset, e.region_offset, e.length});
  return out;
}

wire::Refusal refusal_of(Code code) {
  switch (code) {
    case Code::kNotSupported: return wire::Refusal::kNotRegular;
    case Code::kRange: return wire::Refusal::kPastEof;
    case Code::kNoData: return wire::Refusal::kHole;
    case Code::kAgain: return wire::Refusal::kUnwritten;
    case Code::kInvalid: return wire::Refusal::kMisaligned;
    case Code::kNxio: return wire::Refusal::kBreaking;
    case Code::kPermission: return wire::Refusal::kSealedFile;
    default: return wire::Refusal::kNone;
  }
}

uint32_t granularity_of(Granularity g) {
  switch (g) {
    case Granularity::kByte: return wire::kGranularityByte;
    case Granularity::kCacheLine: return wire::kGranularityCacheLine;
    case Granularity::kPage: return wire::kGranularityPage;
  }
  return wire::kGranularityPage;
}

}  // namespace

MetaLayoutSource::MetaLayoutSource(Filesystem& fs, int region_fd, uint32_t region_flags)
    : fs_(fs), region_fd_(region_fd), region_flags_(region_flags) {}

std::unique_ptr<LayoutSource::Lock> MetaLayoutSource::lock_layout(uint64_t ino) {
  auto lock = std::make_unique<MetaLock>();
  auto held = fs_.lock_layout(ino);
  if (held.is_ok()) {
    lock->held = std::move(*held);
  } else {
    lock->why = held.status();
  }
  return lock;
}

// Device dax maps only whole alignment units (2 MiB or 1 GiB pages): a
// range that ends inside one cannot be mapped without exposing the bytes
// after it, which may belong to another file.
std::optional<LayoutAnswer> MetaLayoutSource::devdax_refusal(uint64_t offset,
                                                             uint64_t length) const {
  if ((region_flags_ & wire::kRegionDevdax) == 0) return std::nullopt;
  const uint64_t align = fs_.layout_alignment();
  if (offset % align == 0 && length % align == 0) return std::nullopt;
  LayoutAnswer answer;
  answer.refusal = wire::Refusal::kDevdaxLength;
  answer.where = offset % align != 0 ? offset : offset + length;
  return answer;
}

Result<LayoutAnswer> MetaLayoutSource::layout_for_lease(const Lock& held, uint64_t ino,
                                                        uint64_t offset, uint64_t length,
                                                        uint32_t flags) {
  const auto& lock = static_cast<const MetaLock&>(held);
  if (lock.held == nullptr) return lock.why;
  if (lock.held->ino() != ino) {
    log().critical("lease: layout lock of inode {} used for inode {}", lock.held->ino(), ino);
    std::abort();
  }
  if (std::optional<LayoutAnswer> refused = devdax_refusal(offset, length)) return *refused;
  uint32_t meta_flags = 0;
  if (flags & wire::kMapAllocate) meta_flags |= kLayoutAllocate;
  if (flags & wire::kMapRelocate) meta_flags |= kLayoutRelocate;
  if (flags & kGrantWritable) meta_flags |= kLayoutWritable;
  LayoutAnswer answer;
  auto pieces = fs_.layout_extents(*lock.held, offset, length, meta_flags, &answer.where);
  if (!pieces.is_ok()) {
    answer.refusal = refusal_of(pieces.status().code());
    if (answer.refusal == wire::Refusal::kNone) return pieces.status();
    log().debug("lease: inode {} [{}, +{}) refused: {}", ino, offset, length,
                pieces.status().to_string());
    return answer;
  }
  for (const LayoutPiece& p : *pieces) {
    answer.extents.push_back({p.file_offset, p.region_offset, p.length});
  }
  return answer;
}

Result<LayoutAnswer> MetaLayoutSource::extend_for_lease(const Lock& held, uint64_t ino,
                                                        uint64_t offset, uint64_t old_length,
                                                        uint64_t new_length, uint32_t flags) {
  (void)flags;
  const auto& lock = static_cast<const MetaLock&>(held);
  if (lock.held == nullptr) return lock.why;
  // What can be refused without changing the file is refused first.
  if (std::optional<LayoutAnswer> refused =
          devdax_refusal(offset + old_length, new_length - old_length)) {
    return *refused;
  }
  auto grown = fs_.grow_for_lease(*lock.held, offset + new_length);
  if (!grown.is_ok()) {
    LayoutAnswer answer;
    answer.refusal = refusal_of(grown.status().code());
    answer.where = offset + old_length;
    if (answer.refusal == wire::Refusal::kNone) return grown.status();
    return answer;
  }
  // The added range alone: ALLOCATE fills its holes; no RELOCATE, which
  // would move blocks other holders may map.
  auto answer = layout_for_lease(held, ino, offset + old_length, new_length - old_length,
                                 wire::kMapAllocate | kGrantWritable);
  if (!answer.is_ok() || answer->refusal != wire::Refusal::kNone) {
    undo_extend(held, ino, *grown);
    return answer;
  }
  answer->old_size = *grown;
  return answer;
}

void MetaLayoutSource::direct_stores_possible(uint64_t ino) {
  Status s = fs_.note_direct_stores(ino);
  // The file may be gone by now (its last name and handle went with the
  // lease): nothing to stamp.
  if (!s.is_ok() && s.code() != Code::kNotFound && s.code() != Code::kStale) log().warn("lease: inode {}: {}", ino, s.to_string());
}

void MetaLayoutSource::undo_extend(const Lock& held, uint64_t ino, uint64_t old_size) {
  const auto& lock = static_cast<const MetaLock&>(held);
  if (lock.held == nullptr) return;
  Status s = fs_.shrink_after_grow(*lock.held, old_size);
  // Left grown: a larger file with zeros at its end, as after an extending
  // truncate; nothing unsafe, so logged rather than failed.
  if (!s.is_ok()) log().error("lease: inode {}: {}", ino, s.to_string());
}

RegionInfo MetaLayoutSource::region() const {
  RegionInfo info;
  info.fd = region_fd_;
  info.alignment = fs_.layout_alignment();
  info.granularity = granularity_of(fs_.region().granularity());
  info.flags = region_flags_;
  return info;
}

Result<LayoutSource::FileInspection> MetaLayoutSource::inspect_file(uint64_t ino) {
  ASSIGN_OR_RETURN(FileLayoutReport report, fs_.file_layout(ino));
  FileInspection out;
  out.size = report.size;
  out.mode = report.mode;
  out.inode_flags = report.flags.flags | (report.inline_data ? format::kInodeInlineData : 0u);
  out.project_id = report.flags.project_id;
  out.extents.reserve(report.extents.size());
  for (const FileExtentReport& e : report.extents) {
    out.extents.push_back({e.file_offset, e.region_offset, e.length,
                           e.unwritten ? wire::kExtentUnwritten : 0u, 0});
  }
  return out;
}

// Both copies as they are on media; the tool decodes them with the same
// verifier as mount and fsck. A copy taken while a commit rewrites the
// primary may be torn: its crc then fails and a second copy gives the
// settled bytes. A primary that stays bad is sent as it is (the tool says so).
Result<wire::SuperRecord> MetaLayoutSource::inspect_super() {
  const Region& region = fs_.region();
  ASSIGN_OR_RETURN(Superblock sb, read_superblock(region));
  const uint64_t backup = block_offset(sb.geometry.backup_block());
  wire::SuperRecord record{};
  if (backup + sizeof(record.backup) > region.size()) {
    return Status(Code::kCorruption, "backup superblock beyond the region");
  }
  record.region_size = region.size();
  record.backup_offset = backup;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::memcpy(record.primary, region.data() + block_offset(format::kSuperblockBlock),
                sizeof(record.primary));
    format::DiskSuperblock disk;
    std::memcpy(&disk, record.primary, sizeof(disk));
    if (decode_superblock(disk, region.size()).is_ok()) break;
  }
  std::memcpy(record.backup, region.data() + backup, sizeof(record.backup));
  return record;
}

Result<LayoutSource::SpaceInspection> MetaLayoutSource::inspect_space() {
  ASSIGN_OR_RETURN(Superblock sb, read_superblock(fs_.region()));
  SpaceInspection out;
  out.block_size = format::kBlockSize;
  out.data_start = block_offset(sb.geometry.data_start);
  out.data_length = block_offset(sb.geometry.data_blocks);
  for (const BlockExtent& e : fs_.free_extents()) {
    out.pieces.push_back({block_offset(e.start), block_offset(e.count), 0, 0, 0,
                          wire::kSpaceFree});
  }
  for (const QuarantineEntry& q : fs_.quarantine_entries()) {
    out.pieces.push_back({block_offset(q.extent.start), block_offset(q.extent.count), q.ino,
                          q.holder.start_time, q.holder.pid, wire::kSpaceQuarantined});
  }
  return out;
}

Status MetaQuarantineSink::pin(const HolderId& holder, uint64_t lease_id, uint64_t ino,
                               const std::vector<MapExtent>& extents) {
  std::vector<LayoutPiece> pieces = to_pieces(extents);
  RETURN_IF_ERROR(fs_.pin_pieces(to_holder(holder), ino, pieces));
  MutexLock lock(mu_);
  std::vector<LayoutPiece>& held = pinned_[lease_id];  // an EXTEND adds to a grant's
  held.insert(held.end(), pieces.begin(), pieces.end());
  return Status::ok();
}

void MetaQuarantineSink::unpin(const HolderId& holder, uint64_t lease_id) {
  std::vector<LayoutPiece> pieces;
  {
    MutexLock lock(mu_);
    auto it = pinned_.find(lease_id);
    if (it == pinned_.end()) return;
    pieces = std::move(it->second);
    pinned_.erase(it);
  }
  fs_.unpin_pieces(to_holder(holder), pieces);
}

Status MetaQuarantineSink::quarantine(const HolderId& holder, uint64_t ino,
                                      const std::vector<MapExtent>& extents) {
  // The rule must be in place before the breaker's continuation runs: the
  // engine calls this before it releases the breaker.
  fs_.quarantine_on_free(to_holder(holder), ino, to_pieces(extents));
  return Status::ok();
}

void MetaQuarantineSink::release_holder(const HolderId& holder) {
  Status s = fs_.release_holder(to_holder(holder));
  // Left quarantined: the blocks leak until the next mount drops the dead
  // holder's entries, which is safe.
  if (!s.is_ok()) log().error("lease: releasing holder pid {}: {}", holder.pid, s.to_string());
}

}  // namespace sealfs::lease
