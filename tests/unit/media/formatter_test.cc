// Formatter: what a fresh format holds, and what a power loss during it
// leaves.
#include "media/formatter.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <vector>

#include "media/journal.h"
#include "media/region_dram.h"
#include "util/crc32c.h"

namespace sealfs {

class RegionTestAccess {
 public:
  static RegionWriteKey key() { return {}; }
};

namespace {

using format::kBlockSize;
constexpr uint64_t kMiB = 1ull << 20;

// Forwards to a RegionDram and records, before every drain, the image a power
// loss at that instant would leave (RegionDram::crash).
class CrashPointRegion final : public Region {
 public:
  CrashPointRegion(RegionDram& inner, RegionDram::CrashMode mode, uint64_t seed)
      : inner_(inner), mode_(mode), seed_(seed) {
    base_ = inner.writable(RegionTestAccess::key());
    size_ = inner.size();
    alignment_ = inner.alignment();
    granularity_ = inner.granularity();
    description_ = "crash-point wrapper";
  }
  void flush(const void* addr, size_t len) override { inner_.flush(addr, len); }
  void drain() override {
    before_drain_.push_back(inner_.crash(mode_, seed_ + before_drain_.size()));
    inner_.drain();
  }
  void copy_flush(RegionWriteKey key, void* dst, const void* src, size_t len) override {
    inner_.copy_flush(key, dst, src, len);
  }
  void zero_flush(RegionWriteKey key, void* dst, size_t len) override {
    inner_.zero_flush(key, dst, len);
  }
  const std::vector<std::vector<std::byte>>& images() const { return before_drain_; }

 private:
  RegionDram& inner_;
  RegionDram::CrashMode mode_;
  uint64_t seed_;
  std::vector<std::vector<std::byte>> before_drain_;
};

FormatOptions options() {
  FormatOptions o;
  o.label = "test-fs";
  o.now_ns = 1'700'000'000'123'456'789ull;
  o.root_uid = 1000;
  o.root_gid = 100;
  o.root_mode = 0750;
  return o;
}

format::DiskInode read_inode(const Region& region, const Geometry& g, uint64_t ino) {
  format::DiskInode inode{};
  std::memcpy(&inode, region.data() + inode_offset(g, ino), sizeof(inode));
  return inode;
}

bool all_zero(const std::byte* p, uint64_t len) {
  for (uint64_t i = 0; i < len; ++i) {
    if (p[i] != std::byte{0}) return false;
  }
  return true;
}

// Everything a fresh format must hold; used on live regions and crash images.
void expect_formatted(const Region& region, uint64_t expected_size) {
  bool used_backup = true;
  Result<Superblock> sb = read_superblock(region, &used_backup);
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  const Geometry& g = sb->geometry;
  EXPECT_EQ(g.region_size, expected_size);
  EXPECT_EQ(sb->label, "test-fs");
  EXPECT_EQ(sb->state, format::kStateClean);
  EXPECT_EQ(sb->mkfs_time_ns, 1'700'000'000'123'456'789ull);

  format::DiskInode root = read_inode(region, g, format::kRootIno);
  EXPECT_EQ(root.crc.get(), crc32c_with_hole(&root, sizeof(root), 0));
  EXPECT_EQ(root.mode.get(), S_IFDIR | 0750u);
  EXPECT_EQ(root.nlink.get(), 2u);
  EXPECT_EQ(root.uid.get(), 1000u);
  EXPECT_EQ(root.gid.get(), 100u);
  EXPECT_EQ(root.size.get(), 0u);
  EXPECT_EQ(root.generation.get(), 1u);
  EXPECT_EQ(root.mtime_ns.get(), 1'700'000'000'123'456'789ull);
  EXPECT_EQ(root.extent_count.get(), 0u);
  // Every other inode slot is free (all zero).
  const std::byte* table = region.data() + block_offset(g.inode_start);
  EXPECT_TRUE(all_zero(table + format::kInodeSize,
                       g.inode_blocks * kBlockSize - format::kInodeSize));
  EXPECT_TRUE(all_zero(region.data() + block_offset(g.bitmap_start),
                       g.bitmap_blocks * kBlockSize));
  for (uint64_t b = 0; b < g.holder_blocks; ++b) {
    const std::byte* block = region.data() + block_offset(g.holder_start + b);
    format::DiskHolderBlockHeader h;
    std::memcpy(&h, block, sizeof(h));
    EXPECT_EQ(h.magic.get(), format::kHolderMagic);
    EXPECT_EQ(h.count.get(), 0u);
    EXPECT_EQ(h.crc.get(), crc32c_with_hole(block, kBlockSize, 4));
  }
}

TEST(FormatterTest, FormatsARegion) {
  auto region = RegionDram::create(32 * kMiB);
  Result<Superblock> sb = Formatter::format(*region, options());
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  expect_formatted(*region, 32 * kMiB);
  bool used_backup = true;
  ASSERT_TRUE(read_superblock(*region, &used_backup).is_ok());
  EXPECT_FALSE(used_backup);
  // Primary and backup are the same bytes.
  EXPECT_EQ(std::memcmp(region->data(),
                        region->data() + block_offset(sb->geometry.backup_block()), kBlockSize),
            0);
  // A random, RFC 4122 version 4 uuid.
  EXPECT_EQ(sb->uuid[6] >> 4, 4);
}

TEST(FormatterTest, JournalOpensWithNothingToReplay) {
  auto region = RegionDram::create(32 * kMiB);
  Result<Superblock> sb = Formatter::format(*region, options());
  ASSERT_TRUE(sb.is_ok());
  RecoveryStats stats;
  auto journal = Journal::open(
      *region, JournalArea{sb->geometry.journal_start, sb->geometry.journal_blocks}, &stats);
  ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
  EXPECT_EQ(stats.replayed_transactions, 0u);
  EXPECT_FALSE(stats.torn_tail);
}

TEST(FormatterTest, FormatOverGarbageResetsMetadataButNotData) {
  const uint64_t size = 16 * kMiB;
  std::vector<std::byte> garbage(size, std::byte{0xab});
  auto region = RegionDram::from_image(std::move(garbage));
  Result<Superblock> sb = Formatter::format(*region, options());
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  expect_formatted(*region, size);
  // The data area is not touched: only metadata is zeroed.
  const Geometry& g = sb->geometry;
  const std::byte* data = region->data() + block_offset(g.data_start);
  EXPECT_EQ(data[0], std::byte{0xab});
  EXPECT_EQ(data[g.data_blocks * kBlockSize - 1], std::byte{0xab});
  // The tail of block 0 after the 512-byte superblock is zero.
  EXPECT_TRUE(all_zero(region->data() + sizeof(format::DiskSuperblock),
                       kBlockSize - sizeof(format::DiskSuperblock)));
}

TEST(FormatterTest, ReformatReplacesAnOldFilesystem) {
  auto region = RegionDram::create(16 * kMiB);
  FormatOptions o = options();
  ASSERT_TRUE(Formatter::format(*region, o).is_ok());
  o.label = "second";
  Result<Superblock> sb = Formatter::format(*region, o);
  ASSERT_TRUE(sb.is_ok());
  Result<Superblock> back = read_superblock(*region);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->label, "second");
  EXPECT_EQ(back->uuid, sb->uuid);
}

TEST(FormatterTest, PlanWritesNothing) {
  auto region = RegionDram::create(16 * kMiB);
  region->clear_trace();
  Result<Superblock> sb = Formatter::plan(*region, options());
  ASSERT_TRUE(sb.is_ok());
  EXPECT_EQ(region->flush_count(), 0u);
  EXPECT_EQ(region->drain_count(), 0u);
  EXPECT_TRUE(all_zero(region->data(), region->size()));
  EXPECT_EQ(sb->geometry.region_size, 16 * kMiB);
}

TEST(FormatterTest, GivenUuidAndSmallerSizeAreHonoured) {
  auto region = RegionDram::create(16 * kMiB);
  FormatOptions o = options();
  o.layout.region_size = 8 * kMiB;
  for (size_t i = 0; i < o.uuid.size(); ++i) o.uuid[i] = static_cast<uint8_t>(i + 1);
  Result<Superblock> sb = Formatter::format(*region, o);
  ASSERT_TRUE(sb.is_ok());
  EXPECT_EQ(sb->uuid, o.uuid);
  EXPECT_EQ(sb->geometry.backup_block(), 8 * kMiB / kBlockSize - 1);
  Result<Superblock> back = read_superblock(*region);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->geometry.region_size, 8 * kMiB);
}

TEST(FormatterTest, RegionAlignmentIsTheFloor) {
  auto region = RegionDram::create(64 * kMiB, 2 * kMiB);
  Result<Superblock> sb = Formatter::format(*region, options());
  ASSERT_TRUE(sb.is_ok());
  EXPECT_EQ(sb->geometry.device_alignment, 2 * kMiB);
  EXPECT_EQ(block_offset(sb->geometry.data_start) % (2 * kMiB), 0u);
}

TEST(FormatterTest, BadOptionsAreRejectedBeforeWriting) {
  auto region = RegionDram::create(16 * kMiB);
  region->clear_trace();
  FormatOptions o = options();
  o.label = std::string(64, 'x');
  EXPECT_EQ(Formatter::format(*region, o).status().code(), Code::kInvalid);
  o = options();
  o.label = std::string("a\0b", 3);
  EXPECT_EQ(Formatter::format(*region, o).status().code(), Code::kInvalid);
  o = options();
  o.layout.region_size = 32 * kMiB;
  EXPECT_EQ(Formatter::format(*region, o).status().code(), Code::kInvalid);
  o = options();
  o.layout.device_alignment = 12288;
  EXPECT_EQ(Formatter::format(*region, o).status().code(), Code::kInvalid);
  auto tiny = RegionDram::create(128 * 1024);
  EXPECT_EQ(Formatter::format(*tiny, options()).status().code(), Code::kNoSpace);
  EXPECT_EQ(region->flush_count(), 0u);
  EXPECT_EQ(tiny->flush_count(), 0u);
  EXPECT_TRUE(all_zero(region->data(), region->size()));
}

// Power loss before any drain of the format: no valid sealfs (not even an old
// one) until the backup is durable; from then on a complete one.
void check_crash_points(RegionDram::CrashMode mode, uint64_t seed) {
  const uint64_t size = 8 * kMiB;
  auto dram = RegionDram::create(size);
  // An older filesystem is there first: it must not survive a partial format.
  FormatOptions old = options();
  old.label = "old";
  ASSERT_TRUE(Formatter::format(*dram, old).is_ok());

  CrashPointRegion region(*dram, mode, seed);
  ASSERT_TRUE(Formatter::format(region, options()).is_ok());
  const auto& images = region.images();
  ASSERT_GE(images.size(), 3u);
  // images.back() is just before the primary's drain; the one before it just
  // before the backup's drain.
  // Before the first drain nothing of the new format is durable, so the old
  // filesystem may still be whole; after it, neither old nor new is valid.
  {
    Result<Superblock> sb = read_superblock(*RegionDram::from_image(images[0]));
    if (sb.is_ok()) {
      EXPECT_EQ(sb->label, "old");
    }
  }
  for (size_t i = 1; i + 1 < images.size(); ++i) {
    auto crashed = RegionDram::from_image(images[i]);
    Result<Superblock> sb = read_superblock(*crashed);
    EXPECT_FALSE(sb.is_ok()) << "crash before drain " << i << " left a valid superblock"
                             << (sb.is_ok() ? " labelled " + sb->label : "");
  }
  auto crashed = RegionDram::from_image(images.back());
  bool used_backup = false;
  Result<Superblock> sb = read_superblock(*crashed, &used_backup);
  if (mode == RegionDram::CrashMode::kDrop) {
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    EXPECT_TRUE(used_backup);
  }
  if (sb.is_ok()) {
    expect_formatted(*crashed, size);
  }
}

TEST(FormatterTest, CrashDuringFormatDropLeavesNoValidSuperblock) {
  check_crash_points(RegionDram::CrashMode::kDrop, 0);
}

TEST(FormatterTest, CrashDuringFormatTearLeavesNoValidSuperblock) {
  for (uint64_t seed = 1; seed <= 8; ++seed) check_crash_points(RegionDram::CrashMode::kTear, seed);
}

}  // namespace
}  // namespace sealfs
