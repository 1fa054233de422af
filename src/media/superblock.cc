#include "media/superblock.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <limits>
#include <string>

#include <fmt/format.h>

#include "util/crc32c.h"
#include "util/units.h"

namespace sealfs {
namespace {

using format::kBlockSize;

constexpr uint64_t kDefaultJournalBytes = 16ull << 20;
constexpr uint64_t kMinJournalBlocks = 64;
// Holder table: one entry per (holder, extent) pinned or quarantined, so it
// grows with the region (more files, more leases): one block per 256 MiB,
// 16 to 1024 blocks (about 1,600 to 104,000 entries).
constexpr uint64_t kMinHolderBlocks = 16;
constexpr uint64_t kMaxHolderBlocks = 1024;
constexpr uint64_t kRegionBlocksPerHolderBlock = (256ull << 20) / kBlockSize;
constexpr uint64_t kBytesPerInode = 16ull << 10;
constexpr uint64_t kMinDefaultInodes = 64;
constexpr uint64_t kMaxInodes = format::kMaxInodeCount;
constexpr uint64_t kMinDataBlocks = 16;
constexpr uint64_t kBitsPerBitmapBlock = uint64_t{kBlockSize} * 8;

uint64_t div_round_up(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }
uint64_t align_up(uint64_t v, uint64_t a) { return div_round_up(v, a) * a; }
bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

Status corrupt(const std::string& what) {
  return Status(Code::kCorruption, "superblock: " + what);
}

Result<uint64_t> journal_blocks_for(const LayoutRequest& request, uint64_t region_blocks) {
  if (request.journal_bytes != 0) {
    uint64_t blocks = div_round_up(request.journal_bytes, kBlockSize);
    if (blocks < kMinJournalBlocks) {
      return Status(Code::kInvalid,
                    fmt::format("journal of {} is too small: needs at least {}",
                                format_size(request.journal_bytes),
                                format_size(kMinJournalBlocks * kBlockSize)));
    }
    return blocks;
  }
  // A small region gives at most an eighth of itself to the journal.
  uint64_t blocks = std::min(kDefaultJournalBytes / kBlockSize, region_blocks / 8);
  return std::max(blocks, kMinJournalBlocks);
}

Result<uint64_t> inode_count_for(const LayoutRequest& request) {
  if (request.inode_count > kMaxInodes) {
    return Status(Code::kInvalid, fmt::format("inode count {} exceeds the maximum {}",
                                              request.inode_count, kMaxInodes));
  }
  uint64_t count = request.inode_count;
  if (count == 0) {
    count = std::clamp(request.region_size / kBytesPerInode, kMinDefaultInodes, kMaxInodes);
  }
  // Whole blocks of inodes; rounding up must not cross the 32-bit limit.
  uint64_t rounded = align_up(count, format::kInodesPerBlock);
  if (rounded > kMaxInodes) rounded -= format::kInodesPerBlock;
  return rounded;
}

}  // namespace

uint64_t block_offset(uint64_t block) { return block * kBlockSize; }

uint64_t inode_offset(const Geometry& geometry, uint64_t ino) {
  return block_offset(geometry.inode_start) + (ino - 1) * format::kInodeSize;
}

Result<Geometry> compute_geometry(const LayoutRequest& request) {
  if (!is_power_of_two(request.device_alignment) || request.device_alignment < kBlockSize) {
    return Status(Code::kInvalid,
                  fmt::format("alignment {} is not a power of two of at least 4096",
                              request.device_alignment));
  }
  Geometry g;
  g.region_blocks = request.region_size / kBlockSize;
  g.region_size = g.region_blocks * kBlockSize;
  g.device_alignment = request.device_alignment;
  const uint64_t align_blocks = request.device_alignment / kBlockSize;

  ASSIGN_OR_RETURN(g.journal_blocks, journal_blocks_for(request, g.region_blocks));
  ASSIGN_OR_RETURN(g.inode_count, inode_count_for(request));
  g.inode_blocks = g.inode_count / format::kInodesPerBlock;
  g.journal_start = format::kSuperblockBlock + 1;
  g.holder_start = g.journal_start + g.journal_blocks;
  g.holder_blocks = std::clamp(g.region_blocks / kRegionBlocksPerHolderBlock, kMinHolderBlocks,
                               kMaxHolderBlocks);
  g.inode_start = g.holder_start + g.holder_blocks;
  g.bitmap_start = g.inode_start + g.inode_blocks;

  // The bitmap covers the data area, which shrinks as the bitmap grows:
  // iterate until the bitmap is big enough for what is left (converges fast
  // because one bitmap block covers 32768 data blocks).
  const uint64_t minimum_bytes =
      (align_up(g.bitmap_start + 1, align_blocks) + kMinDataBlocks + 1) * kBlockSize;
  auto too_small = [&] {
    return Status(Code::kNoSpace,
                  fmt::format("region of {} is too small: needs at least {}",
                              format_size(request.region_size), format_size(minimum_bytes)));
  };
  const uint64_t data_end = g.region_blocks == 0 ? 0 : g.region_blocks - 1;  // backup excluded
  g.bitmap_blocks = 1;
  for (;;) {
    g.data_start = align_up(g.bitmap_start + g.bitmap_blocks, align_blocks);
    if (g.data_start >= data_end) return too_small();
    g.data_blocks = data_end - g.data_start;
    uint64_t needed = div_round_up(g.data_blocks, kBitsPerBitmapBlock);
    if (needed <= g.bitmap_blocks) break;
    g.bitmap_blocks = needed;
  }
  if (g.data_blocks < kMinDataBlocks) return too_small();
  return g;
}

format::DiskSuperblock encode_superblock(const Superblock& sb) {
  format::DiskSuperblock d{};
  const Geometry& g = sb.geometry;
  d.magic.set(format::kSuperMagic);
  d.version.set(sb.version);
  d.feature_compat.set(sb.feature_compat);
  d.feature_ro_compat.set(sb.feature_ro_compat);
  d.feature_incompat.set(sb.feature_incompat);
  d.block_size.set(kBlockSize);
  std::memcpy(d.uuid, sb.uuid.data(), sizeof(d.uuid));
  std::memcpy(d.label, sb.label.data(), std::min(sb.label.size(), sizeof(d.label)));
  d.region_size.set(g.region_size);
  d.device_alignment.set(g.device_alignment);
  d.region_blocks.set(g.region_blocks);
  d.journal_start.set(g.journal_start);
  d.journal_blocks.set(g.journal_blocks);
  d.holder_start.set(g.holder_start);
  d.holder_blocks.set(g.holder_blocks);
  d.inode_start.set(g.inode_start);
  d.inode_blocks.set(g.inode_blocks);
  d.inode_count.set(g.inode_count);
  d.bitmap_start.set(g.bitmap_start);
  d.bitmap_blocks.set(g.bitmap_blocks);
  d.data_start.set(g.data_start);
  d.data_blocks.set(g.data_blocks);
  d.root_ino.set(sb.root_ino);
  d.orphan_head.set(sb.orphan_head);
  d.mount_count.set(sb.mount_count);
  d.state.set(sb.state);
  d.mkfs_time_ns.set(sb.mkfs_time_ns);
  d.last_mount_time_ns.set(sb.last_mount_time_ns);
  d.last_check_time_ns.set(sb.last_check_time_ns);
  d.mount_pid.set(sb.mount_pid);
  std::memcpy(d.mount_host, sb.mount_host.data(),
              std::min(sb.mount_host.size(), sizeof(d.mount_host) - 1));
  std::memcpy(d.mount_point, sb.mount_point.data(),
              std::min(sb.mount_point.size(), sizeof(d.mount_point) - 1));
  d.crc.set(crc32c_with_hole(&d, sizeof(d), offsetof(format::DiskSuperblock, crc)));
  return d;
}

namespace {

// Every check that needs only the geometry; overflow-safe because the values
// come from media.
Status verify_geometry(const Geometry& g, uint64_t available_size) {
  if (g.region_size % kBlockSize != 0 || g.region_blocks != g.region_size / kBlockSize) {
    return corrupt(fmt::format("region size {} does not match {} blocks", g.region_size,
                               g.region_blocks));
  }
  if (g.region_size > available_size) {
    return corrupt(fmt::format("region size {} exceeds the {} bytes available", g.region_size,
                               available_size));
  }
  if (!is_power_of_two(g.device_alignment) || g.device_alignment < kBlockSize) {
    return corrupt(fmt::format("device alignment {} is invalid", g.device_alignment));
  }
  if (g.journal_blocks < kMinJournalBlocks) return corrupt("journal too small");
  if (g.holder_blocks == 0) return corrupt("empty holder table");
  if (g.inode_blocks == 0 || g.inode_count == 0) return corrupt("no inodes");
  if (g.bitmap_blocks == 0) return corrupt("empty bitmap");
  if (g.data_blocks == 0) return corrupt("empty data area");
  if (g.region_blocks < 2) return corrupt("region too small");

  struct Area {
    const char* name;
    uint64_t start, blocks;
  };
  const Area areas[] = {{"journal", g.journal_start, g.journal_blocks},
                        {"holder table", g.holder_start, g.holder_blocks},
                        {"inode table", g.inode_start, g.inode_blocks},
                        {"bitmap", g.bitmap_start, g.bitmap_blocks},
                        {"data area", g.data_start, g.data_blocks}};
  uint64_t next_free = format::kSuperblockBlock + 1;
  const uint64_t limit = g.region_blocks - 1;  // the backup superblock
  for (const Area& a : areas) {
    if (a.start < next_free) {
      return corrupt(fmt::format("{} at block {} overlaps what precedes it (ends at {})",
                                 a.name, a.start, next_free));
    }
    if (a.start > limit || a.blocks > limit - a.start) {
      return corrupt(fmt::format("{} [{}, +{}) runs past block {}", a.name, a.start, a.blocks,
                                 limit));
    }
    next_free = a.start + a.blocks;
  }
  if (g.data_start % (g.device_alignment / kBlockSize) != 0) {
    return corrupt(fmt::format("data area at block {} is not aligned to {}", g.data_start,
                               g.device_alignment));
  }
  if (g.bitmap_blocks > std::numeric_limits<uint64_t>::max() / kBitsPerBitmapBlock ||
      g.bitmap_blocks * kBitsPerBitmapBlock < g.data_blocks) {
    return corrupt(fmt::format("bitmap of {} blocks cannot cover {} data blocks",
                               g.bitmap_blocks, g.data_blocks));
  }
  if (g.inode_count > kMaxInodes || g.inode_count > g.inode_blocks * format::kInodesPerBlock) {
    return corrupt(fmt::format("inode count {} does not fit {} inode blocks", g.inode_count,
                               g.inode_blocks));
  }
  return Status::ok();
}

}  // namespace

Result<Superblock> decode_superblock(const format::DiskSuperblock& d, uint64_t available_size) {
  if (d.magic.get() != format::kSuperMagic) return corrupt("bad magic");
  if (d.version.get() != format::kFormatVersion) {
    return Status(Code::kUnsupportedFeature,
                  fmt::format("superblock: format version {} (this build reads {})",
                              d.version.get(), format::kFormatVersion));
  }
  uint32_t crc = crc32c_with_hole(&d, sizeof(d), offsetof(format::DiskSuperblock, crc));
  if (crc != d.crc.get()) {
    return Status(Code::kBadCrc, fmt::format("superblock: crc {:#010x}, computed {:#010x}",
                                             d.crc.get(), crc));
  }
  if (uint32_t unknown = d.feature_incompat.get() & ~format::kFeatureIncompatKnown) {
    return Status(Code::kUnsupportedFeature,
                  fmt::format("superblock: unknown incompat features {:#x}", unknown));
  }
  if (d.block_size.get() != kBlockSize) {
    return corrupt(fmt::format("block size {}", d.block_size.get()));
  }

  Superblock sb;
  sb.version = d.version.get();
  sb.feature_compat = d.feature_compat.get();
  sb.feature_ro_compat = d.feature_ro_compat.get();
  sb.feature_incompat = d.feature_incompat.get();
  std::memcpy(sb.uuid.data(), d.uuid, sb.uuid.size());
  const char* label_end = std::find(d.label, d.label + sizeof(d.label), '\0');
  if (std::any_of(label_end, d.label + sizeof(d.label), [](char c) { return c != '\0'; })) {
    return corrupt("label is not NUL padded");
  }
  sb.label.assign(d.label, label_end);

  Geometry& g = sb.geometry;
  g.region_size = d.region_size.get();
  g.device_alignment = d.device_alignment.get();
  g.region_blocks = d.region_blocks.get();
  g.journal_start = d.journal_start.get();
  g.journal_blocks = d.journal_blocks.get();
  g.holder_start = d.holder_start.get();
  g.holder_blocks = d.holder_blocks.get();
  g.inode_start = d.inode_start.get();
  g.inode_blocks = d.inode_blocks.get();
  g.inode_count = d.inode_count.get();
  g.bitmap_start = d.bitmap_start.get();
  g.bitmap_blocks = d.bitmap_blocks.get();
  g.data_start = d.data_start.get();
  g.data_blocks = d.data_blocks.get();
  RETURN_IF_ERROR(verify_geometry(g, available_size));

  sb.root_ino = d.root_ino.get();
  if (sb.root_ino != format::kRootIno) return corrupt(fmt::format("root inode {}", sb.root_ino));
  sb.orphan_head = d.orphan_head.get();
  if (sb.orphan_head > g.inode_count) {
    return corrupt(fmt::format("orphan list head {} beyond {} inodes", sb.orphan_head,
                               g.inode_count));
  }
  sb.mount_count = d.mount_count.get();
  sb.state = d.state.get();
  if (sb.state != format::kStateClean && sb.state != format::kStateMounted &&
      sb.state != format::kStateNeedsCheck) {
    return corrupt(fmt::format("state {}", sb.state));
  }
  sb.mkfs_time_ns = d.mkfs_time_ns.get();
  sb.last_mount_time_ns = d.last_mount_time_ns.get();
  sb.last_check_time_ns = d.last_check_time_ns.get();
  sb.mount_pid = d.mount_pid.get();
  sb.mount_host.assign(d.mount_host, strnlen(d.mount_host, sizeof(d.mount_host)));
  sb.mount_point.assign(d.mount_point, strnlen(d.mount_point, sizeof(d.mount_point)));
  return sb;
}

std::string Superblock::describe_last_mount() const {
  if (mount_pid == 0 && last_mount_time_ns == 0) return "";
  std::string text = "pid " + std::to_string(mount_pid);
  if (!mount_host.empty()) text += " on host " + mount_host;
  if (!mount_point.empty()) text += ", mounted on " + mount_point;
  if (last_mount_time_ns != 0) {
    time_t secs = static_cast<time_t>(last_mount_time_ns / 1'000'000'000ull);
    struct tm tm {};
    char when[64];
    if (gmtime_r(&secs, &tm) != nullptr && strftime(when, sizeof when, "%F %T UTC", &tm) > 0) {
      text += std::string(" at ") + when;
    }
  }
  return text;
}

bool needs_read_only(const Superblock& sb) {
  return (sb.feature_ro_compat & ~format::kFeatureRoCompatKnown) != 0;
}

namespace {

Result<Superblock> read_at(const Region& region, uint64_t block) {
  format::DiskSuperblock d;
  std::memcpy(&d, region.data() + block_offset(block), sizeof(d));
  ASSIGN_OR_RETURN(Superblock sb, decode_superblock(d, region.size()));
  return sb;
}

}  // namespace

Result<Superblock> read_superblock(const Region& region, bool* used_backup) {
  if (used_backup) *used_backup = false;
  const uint64_t blocks = region.size() / kBlockSize;
  if (blocks < 2) {
    return Status(Code::kCorruption,
                  fmt::format("region of {} bytes cannot hold a sealfs", region.size()));
  }
  Result<Superblock> primary = read_at(region, format::kSuperblockBlock);
  if (primary.is_ok()) return primary;

  // The backup is the last block of the region mkfs formatted: the last
  // block of the region, unless the region file grew since (truncate -s),
  // and then the last block that holds data, the growth being a hole.
  std::vector<uint64_t> candidates = {blocks - 1};
  const std::vector<Region::ByteRange> data = region.data_ranges(0, region.size());
  if (!data.empty()) {
    const uint64_t end = data.back().offset + data.back().length;
    if (end >= 2 * kBlockSize && end / kBlockSize - 1 < blocks - 1) {
      candidates.push_back(end / kBlockSize - 1);
    }
  }
  for (uint64_t backup_block : candidates) {
    Result<Superblock> backup = read_at(region, backup_block);
    // A backup only counts where it says it lives; anything else is a stale
    // copy from an older, larger format.
    if (!backup.is_ok() || backup->geometry.backup_block() != backup_block) continue;
    if (used_backup) *used_backup = true;
    return backup;
  }
  return primary.status();
}

}  // namespace sealfs
