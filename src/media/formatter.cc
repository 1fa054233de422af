#include "media/formatter.h"

#include <sys/random.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "media/journal.h"
#include "util/crc32c.h"

namespace sealfs {
namespace {

using format::kBlockSize;

constexpr size_t kMaxLabel = sizeof(format::DiskSuperblock::label) - 1;

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Status random_uuid(std::array<uint8_t, 16>& uuid) {
  size_t got = 0;
  while (got < uuid.size()) {
    ssize_t n = getrandom(uuid.data() + got, uuid.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno(errno, "getrandom for the filesystem uuid");
    }
    got += static_cast<size_t>(n);
  }
  uuid[6] = static_cast<uint8_t>((uuid[6] & 0x0f) | 0x40);  // RFC 4122 version 4
  uuid[8] = static_cast<uint8_t>((uuid[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return Status::ok();
}

bool block_is_zero(const std::byte* p) {
  // Compare the block against itself shifted by one word: all equal and the
  // first word zero means all zero, without a second buffer.
  uint64_t first;
  std::memcpy(&first, p, sizeof(first));
  return first == 0 && std::memcmp(p, p + sizeof(first), kBlockSize - sizeof(first)) == 0;
}

// Zeroes [start, start+blocks) and flushes, skipping blocks that already read
// as zero: a sparse file or a fresh device then costs reads of holes rather
// than allocating and writing back every metadata page. The caller drains.
void zero_blocks(Region& region, RegionWriteKey key, uint64_t start, uint64_t blocks) {
  std::byte* base = region.writable(key);
  uint64_t run_start = 0, run_length = 0;
  auto flush_run = [&] {
    if (run_length != 0) {
      region.zero_flush(key, base + block_offset(run_start), run_length * kBlockSize);
    }
    run_length = 0;
  };
  for (uint64_t b = start; b < start + blocks; ++b) {
    if (block_is_zero(base + block_offset(b))) {
      flush_run();
      continue;
    }
    if (run_length == 0) run_start = b;
    ++run_length;
  }
  flush_run();
}

format::DiskInode root_inode(const FormatOptions& options, uint64_t time_ns) {
  format::DiskInode inode{};
  inode.mode.set(S_IFDIR | (options.root_mode & 07777));
  inode.uid.set(options.root_uid);
  inode.gid.set(options.root_gid);
  inode.nlink.set(2);
  inode.generation.set(1);
  inode.size.set(0);
  inode.atime_ns.set(time_ns);
  inode.mtime_ns.set(time_ns);
  inode.ctime_ns.set(time_ns);
  inode.btime_ns.set(time_ns);
  inode.crc.set(crc32c_with_hole(&inode, sizeof(inode), offsetof(format::DiskInode, crc)));
  return inode;
}

void write_empty_holder_block(Region& region, RegionWriteKey key, uint64_t block) {
  std::byte* p = region.writable(key) + block_offset(block);
  format::DiskHolderBlockHeader header{};
  header.magic.set(format::kHolderMagic);
  header.count.set(0);
  std::memcpy(p, &header, sizeof(header));
  header.crc.set(crc32c_with_hole(p, kBlockSize, offsetof(format::DiskHolderBlockHeader, crc)));
  std::memcpy(p, &header, sizeof(header));
  region.flush(p, sizeof(header));
}

}  // namespace

Result<Superblock> Formatter::plan(const Region& region, const FormatOptions& options) {
  if (options.label.size() > kMaxLabel) {
    return Status(Code::kInvalid,
                  fmt::format("label is {} bytes; at most {}", options.label.size(), kMaxLabel));
  }
  if (options.label.find('\0') != std::string::npos) {
    return Status(Code::kInvalid, "label contains a NUL byte");
  }
  LayoutRequest layout = options.layout;
  if (layout.region_size == 0) layout.region_size = region.size();
  if (layout.region_size > region.size()) {
    return Status(Code::kInvalid,
                  fmt::format("requested size {} exceeds the region's {} bytes",
                              layout.region_size, region.size()));
  }
  // Extents are direct-mapped at the source's alignment, so the format may
  // never promise less than the region gives.
  layout.device_alignment = std::max(layout.device_alignment, region.alignment());

  Superblock sb;
  ASSIGN_OR_RETURN(sb.geometry, compute_geometry(layout));
  sb.label = options.label;
  sb.uuid = options.uuid;
  sb.feature_incompat = format::kFeatureIncompatJournalSalt;
  if (options.inline_data) sb.feature_incompat |= format::kFeatureIncompatInlineData;
  if (std::all_of(sb.uuid.begin(), sb.uuid.end(), [](uint8_t b) { return b == 0; })) {
    RETURN_IF_ERROR(random_uuid(sb.uuid));
  }
  sb.mkfs_time_ns = options.now_ns != 0 ? options.now_ns : now_ns();
  sb.state = format::kStateClean;
  return sb;
}

Result<Superblock> Formatter::format(Region& region, const FormatOptions& options) {
  if (region.read_only()) {
    return Status(Code::kReadOnly, "cannot format a read-only region: " + region.description());
  }
  ASSIGN_OR_RETURN(Superblock sb, plan(region, options));
  const Geometry& g = sb.geometry;
  RegionWriteKey key;
  std::byte* base = region.writable(key);

  // Every step runs in a media fault window (media_fault.h): a store that
  // faults (a sparse file whose filesystem filled up, poison) ends the
  // format with kIoError instead of killing mkfs. Because of the order
  // below, a format cut short that way leaves no valid sealfs behind, as a
  // power loss would.

  // 1. Kill any old superblock first (primary, new backup slot, old backup
  //    slot at the end of the region): from here until step 5 a power loss
  //    leaves no valid sealfs, not an old one over half-zeroed metadata.
  RETURN_IF_ERROR(region.guarded("format: clearing old superblocks", [&] {
    zero_blocks(region, key, format::kSuperblockBlock, 1);
    zero_blocks(region, key, g.backup_block(), 1);
    zero_blocks(region, key, region.size() / kBlockSize - 1, 1);
    region.drain();
  }));

  // 2. Metadata areas to zero: all inodes free, every data block free.
  //    Devdax devices hold whatever was there before. (Journal::format
  //    zeroes its own area.)
  RETURN_IF_ERROR(region.guarded("format: zeroing metadata", [&] {
    zero_blocks(region, key, g.holder_start, g.holder_blocks);
    if (!options.metadata_zeroed) {
      zero_blocks(region, key, g.inode_start, g.inode_blocks);
      zero_blocks(region, key, g.bitmap_start, g.bitmap_blocks);
    }
    region.drain();
  }));

  // 3. Journal header, empty holder blocks, root inode.
  RETURN_IF_ERROR(Journal::format(region, JournalArea{g.journal_start, g.journal_blocks}));
  const format::DiskInode root = root_inode(options, sb.mkfs_time_ns);
  RETURN_IF_ERROR(region.guarded("format: holder table and root inode", [&] {
    for (uint64_t b = 0; b < g.holder_blocks; ++b) {
      write_empty_holder_block(region, key, g.holder_start + b);
    }
    std::byte* root_slot = base + inode_offset(g, format::kRootIno);
    std::memcpy(root_slot, &root, sizeof(root));
    region.flush(root_slot, sizeof(root));
    region.drain();
  }));

  // 4. Backup, then 5. primary: the primary's persist is the commit point.
  const format::DiskSuperblock disk = encode_superblock(sb);
  RETURN_IF_ERROR(region.guarded("format: superblocks", [&] {
    std::byte* backup = base + block_offset(g.backup_block());
    std::memcpy(backup, &disk, sizeof(disk));
    region.persist(backup, sizeof(disk));
    std::byte* primary = base + block_offset(format::kSuperblockBlock);
    std::memcpy(primary, &disk, sizeof(disk));
    region.persist(primary, sizeof(disk));
  }));
  return sb;
}

}  // namespace sealfs
