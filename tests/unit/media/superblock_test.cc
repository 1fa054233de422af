// Superblock: encode/decode round trip, one test per corruption with the
// exact code, backup fallback, and the layout computation.
#include "media/superblock.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <functional>

#include "media/region_dram.h"
#include "media/region_pmem2.h"
#include "util/crc32c.h"

namespace sealfs {
namespace {

using format::DiskSuperblock;
using format::kBlockSize;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

Superblock sample(uint64_t region_size = 64 * kMiB) {
  LayoutRequest request;
  request.region_size = region_size;
  Result<Geometry> g = compute_geometry(request);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  Superblock sb;
  sb.geometry = *g;
  sb.label = "scratch";
  for (size_t i = 0; i < sb.uuid.size(); ++i) sb.uuid[i] = static_cast<uint8_t>(i * 7 + 1);
  sb.mkfs_time_ns = 1'700'000'000'000'000'000ull;
  sb.mount_count = 3;
  sb.orphan_head = 5;
  sb.state = format::kStateMounted;
  sb.mount_pid = 4242;
  sb.mount_host = "pmem-host-1";
  sb.mount_point = "/mnt/sealfs";
  sb.last_mount_time_ns = 1'764'964'800'000'000'000ull;  // 2025-12-05 20:00:00 UTC
  return sb;
}

void refresh_crc(DiskSuperblock& d) {
  d.crc.set(crc32c_with_hole(&d, sizeof(d), offsetof(DiskSuperblock, crc)));
}

// Applies `mutate` to an encoded sample, fixes the crc, decodes.
Status decode_mutated(const std::function<void(DiskSuperblock&)>& mutate,
                      uint64_t available = 64 * kMiB) {
  DiskSuperblock d = encode_superblock(sample());
  mutate(d);
  refresh_crc(d);
  return decode_superblock(d, available).status();
}

TEST(SuperblockTest, RoundTripKeepsEveryField) {
  const Superblock sb = sample();
  DiskSuperblock d = encode_superblock(sb);
  Result<Superblock> back = decode_superblock(d, 64 * kMiB);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->label, "scratch");
  EXPECT_EQ(back->uuid, sb.uuid);
  EXPECT_EQ(back->mkfs_time_ns, sb.mkfs_time_ns);
  EXPECT_EQ(back->mount_count, 3u);
  EXPECT_EQ(back->orphan_head, 5u);
  EXPECT_EQ(back->state, format::kStateMounted);
  EXPECT_EQ(back->mount_pid, 4242u);
  EXPECT_EQ(back->mount_host, "pmem-host-1");
  EXPECT_EQ(back->mount_point, "/mnt/sealfs");
  EXPECT_EQ(back->describe_last_mount(),
            "pid 4242 on host pmem-host-1, mounted on /mnt/sealfs at 2025-12-05 20:00:00 UTC");
  EXPECT_EQ(back->geometry.data_start, sb.geometry.data_start);
  EXPECT_EQ(back->geometry.data_blocks, sb.geometry.data_blocks);
  EXPECT_EQ(back->geometry.inode_count, sb.geometry.inode_count);
  EXPECT_EQ(back->geometry.journal_blocks, sb.geometry.journal_blocks);
  EXPECT_EQ(back->geometry.bitmap_blocks, sb.geometry.bitmap_blocks);
  // Encoding the decoded value gives the same bytes.
  DiskSuperblock again = encode_superblock(*back);
  EXPECT_EQ(std::memcmp(&again, &d, sizeof(d)), 0);
  EXPECT_FALSE(needs_read_only(*back));
}

TEST(SuperblockTest, LabelOfSixtyFourBytesWithoutNulDecodes) {
  Superblock sb = sample();
  sb.label = std::string(64, 'x');
  Result<Superblock> back = decode_superblock(encode_superblock(sb), 64 * kMiB);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->label, std::string(64, 'x'));
}

TEST(SuperblockTest, BadMagicIsCorruptionBeforeAnythingElse) {
  DiskSuperblock d = encode_superblock(sample());
  d.magic.set(0x1234);
  d.version.set(99);  // also wrong, but magic is checked first
  Status s = decode_superblock(d, 64 * kMiB).status();
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("bad magic"), std::string::npos) << s.message();
}

TEST(SuperblockTest, UnknownVersionIsUnsupportedBeforeCrc) {
  DiskSuperblock d = encode_superblock(sample());
  d.version.set(2);  // crc left stale: version comes first
  Status s = decode_superblock(d, 64 * kMiB).status();
  EXPECT_EQ(s.code(), Code::kUnsupportedFeature);
  EXPECT_NE(s.message().find("format version 2"), std::string::npos) << s.message();
}

TEST(SuperblockTest, FlippedBitIsBadCrc) {
  DiskSuperblock d = encode_superblock(sample());
  d.mount_count.set(d.mount_count.get() ^ 1);
  EXPECT_EQ(decode_superblock(d, 64 * kMiB).status().code(), Code::kBadCrc);
  DiskSuperblock e = encode_superblock(sample());
  e.crc.set(e.crc.get() + 1);
  EXPECT_EQ(decode_superblock(e, 64 * kMiB).status().code(), Code::kBadCrc);
  // A byte in the reserved tail is covered too.
  DiskSuperblock f = encode_superblock(sample());
  reinterpret_cast<uint8_t*>(&f)[511] = 1;
  EXPECT_EQ(decode_superblock(f, 64 * kMiB).status().code(), Code::kBadCrc);
}

TEST(SuperblockTest, UnknownIncompatFeatureRefuses) {
  Status s = decode_mutated([](DiskSuperblock& d) { d.feature_incompat.set(0x8); });
  EXPECT_EQ(s.code(), Code::kUnsupportedFeature);
  EXPECT_NE(s.message().find("incompat features 0x8"), std::string::npos) << s.message();
}

TEST(SuperblockTest, UnknownRoCompatFeatureDecodesButNeedsReadOnly) {
  DiskSuperblock d = encode_superblock(sample());
  d.feature_ro_compat.set(0x4);
  refresh_crc(d);
  Result<Superblock> sb = decode_superblock(d, 64 * kMiB);
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  EXPECT_TRUE(needs_read_only(*sb));
}

TEST(SuperblockTest, UnknownCompatFeatureIsHarmless) {
  DiskSuperblock d = encode_superblock(sample());
  d.feature_compat.set(0x80000000u);
  refresh_crc(d);
  Result<Superblock> sb = decode_superblock(d, 64 * kMiB);
  ASSERT_TRUE(sb.is_ok());
  EXPECT_FALSE(needs_read_only(*sb));
}

struct GeometryCorruption {
  const char* name;
  std::function<void(DiskSuperblock&)> mutate;
};

class GeometryCorruptionTest : public ::testing::TestWithParam<GeometryCorruption> {};

TEST_P(GeometryCorruptionTest, IsCorruption) {
  Status s = decode_mutated(GetParam().mutate);
  EXPECT_EQ(s.code(), Code::kCorruption) << GetParam().name << ": " << s.to_string();
}

const GeometryCorruption kGeometryCorruptions[] = {
    {"block size 8192", [](DiskSuperblock& d) { d.block_size.set(8192); }},
    {"label garbage after NUL",
     [](DiskSuperblock& d) {
       d.label[10] = '\0';
       d.label[20] = 'z';
     }},
    {"state 0", [](DiskSuperblock& d) { d.state.set(0); }},
    {"state 7", [](DiskSuperblock& d) { d.state.set(7); }},
    {"region size not a block multiple",
     [](DiskSuperblock& d) { d.region_size.set(d.region_size.get() - 1); }},
    {"region blocks disagree with size",
     [](DiskSuperblock& d) { d.region_blocks.set(d.region_blocks.get() - 1); }},
    {"region larger than available",
     [](DiskSuperblock& d) {
       d.region_size.set(128 * kMiB);
       d.region_blocks.set(128 * kMiB / kBlockSize);
     }},
    {"alignment not a power of two", [](DiskSuperblock& d) { d.device_alignment.set(12288); }},
    {"alignment below a block", [](DiskSuperblock& d) { d.device_alignment.set(2048); }},
    {"journal over the superblock", [](DiskSuperblock& d) { d.journal_start.set(0); }},
    {"journal too small", [](DiskSuperblock& d) { d.journal_blocks.set(8); }},
    {"journal overlaps holder table",
     [](DiskSuperblock& d) { d.journal_blocks.set(d.journal_blocks.get() + 1); }},
    {"holder table empty", [](DiskSuperblock& d) { d.holder_blocks.set(0); }},
    {"holder table overlaps inodes",
     [](DiskSuperblock& d) { d.holder_blocks.set(d.holder_blocks.get() + 1); }},
    {"inode table before holder table",
     [](DiskSuperblock& d) { d.inode_start.set(d.holder_start.get()); }},
    {"inode table overlaps bitmap",
     [](DiskSuperblock& d) { d.inode_blocks.set(d.inode_blocks.get() + 1); }},
    {"no inodes", [](DiskSuperblock& d) { d.inode_count.set(0); }},
    {"inode count beyond the table",
     [](DiskSuperblock& d) { d.inode_count.set(d.inode_blocks.get() * 16 + 1); }},
    {"bitmap overlaps data",
     [](DiskSuperblock& d) { d.bitmap_blocks.set(d.data_start.get() - d.bitmap_start.get() + 1); }},
    {"data runs over the backup",
     [](DiskSuperblock& d) { d.data_blocks.set(d.data_blocks.get() + 1); }},
    {"data start huge (overflow)",
     [](DiskSuperblock& d) { d.data_start.set(~0ull - 2); }},
    {"data blocks huge (overflow)", [](DiskSuperblock& d) { d.data_blocks.set(~0ull); }},
    {"data area empty", [](DiskSuperblock& d) { d.data_blocks.set(0); }},
    {"data start unaligned",
     [](DiskSuperblock& d) {
       // 64 KiB alignment: the sample's data_start is only 4 KiB aligned.
       d.device_alignment.set(1ull << 30);
     }},
    {"root inode 2", [](DiskSuperblock& d) { d.root_ino.set(2); }},
    {"orphan head beyond inodes",
     [](DiskSuperblock& d) { d.orphan_head.set(d.inode_count.get() + 1); }},
};

INSTANTIATE_TEST_SUITE_P(AllFields, GeometryCorruptionTest,
                         ::testing::ValuesIn(kGeometryCorruptions),
                         [](const ::testing::TestParamInfo<GeometryCorruption>& info) {
                           std::string name;
                           for (char c : std::string(info.param.name)) {
                             name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           }
                           return name;
                         });

TEST(SuperblockTest, BitmapTooSmallForDataIsCorruption) {
  // 1 GiB: the data area needs 8 bitmap blocks; claim 7 (the gap before
  // data_start is legal, so only the coverage check can catch this).
  DiskSuperblock d = encode_superblock(sample(kGiB));
  ASSERT_EQ(d.bitmap_blocks.get(), 8u);
  d.bitmap_blocks.set(7);
  refresh_crc(d);
  Status s = decode_superblock(d, kGiB).status();
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("cannot cover"), std::string::npos) << s.message();
}

// read_superblock on a DRAM region.
class ReadSuperblockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    region_ = RegionDram::create(64 * kMiB);
    sb_ = sample();
    sb_.orphan_head = 0;
    disk_ = encode_superblock(sb_);
  }
  void put(uint64_t block, const DiskSuperblock& d) {
    region_->corrupt(block_offset(block), &d, sizeof(d));
  }
  std::unique_ptr<RegionDram> region_;
  Superblock sb_;
  DiskSuperblock disk_;
};

TEST_F(ReadSuperblockTest, PrimaryWins) {
  put(0, disk_);
  put(sb_.geometry.backup_block(), disk_);
  bool used_backup = true;
  Result<Superblock> sb = read_superblock(*region_, &used_backup);
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  EXPECT_FALSE(used_backup);
}

TEST_F(ReadSuperblockTest, BadPrimaryFallsBackToBackup) {
  DiskSuperblock bad = disk_;
  bad.mount_count.set(99);  // crc no longer matches
  put(0, bad);
  put(sb_.geometry.backup_block(), disk_);
  bool used_backup = false;
  Result<Superblock> sb = read_superblock(*region_, &used_backup);
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  EXPECT_TRUE(used_backup);
  EXPECT_EQ(sb->label, "scratch");
}

TEST_F(ReadSuperblockTest, BothBadReturnsThePrimaryError) {
  DiskSuperblock bad = disk_;
  bad.mount_count.set(99);
  put(0, bad);
  DiskSuperblock bad_backup = disk_;
  bad_backup.magic.set(0);
  put(sb_.geometry.backup_block(), bad_backup);
  bool used_backup = true;
  Result<Superblock> sb = read_superblock(*region_, &used_backup);
  EXPECT_EQ(sb.status().code(), Code::kBadCrc);
  EXPECT_FALSE(used_backup);
}

TEST_F(ReadSuperblockTest, EmptyRegionIsBadMagic) {
  EXPECT_EQ(read_superblock(*region_).status().code(), Code::kCorruption);
}

TEST_F(ReadSuperblockTest, BackupOfAnotherGeometryIsNotUsed) {
  // A format of 32 MiB would put its backup elsewhere; a copy of it in this
  // region's last block is stale and must not be trusted.
  Superblock small = sample(32 * kMiB);
  put(sb_.geometry.backup_block(), encode_superblock(small));
  EXPECT_EQ(read_superblock(*region_).status().code(), Code::kCorruption);
}

// A region file grown after mkfs (truncate -s) keeps its backup where mkfs
// wrote it, at the end of the formatted size; the growth is a hole. With
// the primary bad, the reader looked only at the region's last block and
// found no superblock at all: fsck could not repair what one bad block
// broke (adversarial campaign of 2026-12-07).
TEST(ReadSuperblockFileTest, ARegionFileGrownAfterMkfsStillFindsItsBackup) {
  char path[] = "/tmp/sealfs-sb-grown-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  const Superblock sb = sample(16 * kMiB);
  const DiskSuperblock disk = encode_superblock(sb);
  ASSERT_EQ(::ftruncate(fd, 16 * kMiB), 0);
  ASSERT_EQ(::pwrite(fd, &disk, sizeof(disk), 0), static_cast<ssize_t>(sizeof(disk)));
  ASSERT_EQ(::pwrite(fd, &disk, sizeof(disk), block_offset(sb.geometry.backup_block())),
            static_cast<ssize_t>(sizeof(disk)));
  ASSERT_EQ(::ftruncate(fd, 64 * kMiB), 0);  // grown: a hole after the backup
  const char garbage[64] = "not a superblock";
  ASSERT_EQ(::pwrite(fd, garbage, sizeof(garbage), 0), static_cast<ssize_t>(sizeof(garbage)));
  ::close(fd);
  auto region = RegionPmem2::open(path, RegionOptions{.read_only = true});
  ::unlink(path);
  ASSERT_TRUE(region.is_ok()) << region.status().to_string();
  bool used_backup = false;
  Result<Superblock> found = read_superblock(**region, &used_backup);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  EXPECT_TRUE(used_backup);
  EXPECT_EQ(found->geometry.region_size, 16 * kMiB);
}

// compute_geometry.
TEST(GeometryTest, DefaultLayoutOfOneGiB) {
  LayoutRequest r;
  r.region_size = kGiB;
  Result<Geometry> g = compute_geometry(r);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_EQ(g->region_blocks, kGiB / kBlockSize);
  EXPECT_EQ(g->journal_start, 1u);
  EXPECT_EQ(g->journal_blocks, 16 * kMiB / kBlockSize);
  EXPECT_EQ(g->holder_start, g->journal_start + g->journal_blocks);
  EXPECT_EQ(g->holder_blocks, 16u);
  EXPECT_EQ(g->inode_count, kGiB / (16 << 10));
  EXPECT_EQ(g->inode_blocks, g->inode_count / 16);
  EXPECT_EQ(g->bitmap_start, g->inode_start + g->inode_blocks);
  EXPECT_GE(g->bitmap_blocks * 32768, g->data_blocks);
  // Not oversized either: one block fewer would not do.
  EXPECT_LT((g->bitmap_blocks - 1) * 32768, g->data_blocks);
  EXPECT_EQ(g->data_start, g->bitmap_start + g->bitmap_blocks);
  EXPECT_EQ(g->data_start + g->data_blocks, g->backup_block());
  // The computed geometry decodes.
  Superblock sb;
  sb.geometry = *g;
  EXPECT_TRUE(decode_superblock(encode_superblock(sb), kGiB).is_ok());
}

TEST(GeometryTest, HolderTableGrowsWithTheRegion) {
  for (auto [size, blocks] : {std::pair{kGiB, 16u}, {16 * kGiB, 64u}, {256 * kGiB, 1024u},
                              {4096 * kGiB, 1024u}}) {
    LayoutRequest r;
    r.region_size = size;
    Result<Geometry> g = compute_geometry(r);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    EXPECT_EQ(g->holder_blocks, blocks) << size / kGiB << " GiB";
    Superblock sb;
    sb.geometry = *g;
    EXPECT_TRUE(decode_superblock(encode_superblock(sb), size).is_ok());
  }
}

TEST(GeometryTest, SmallRegionGetsAnEighthForTheJournal) {
  LayoutRequest r;
  r.region_size = 8 * kMiB;
  Result<Geometry> g = compute_geometry(r);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_EQ(g->journal_blocks, 8 * kMiB / kBlockSize / 8);
  EXPECT_EQ(g->inode_count, 512u);
}

TEST(GeometryTest, TinyRegionKeepsMinimums) {
  LayoutRequest r;
  r.region_size = 512 * 1024;
  Result<Geometry> g = compute_geometry(r);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_EQ(g->journal_blocks, 64u);
  EXPECT_EQ(g->inode_count, 64u);
  EXPECT_GE(g->data_blocks, 16u);
}

TEST(GeometryTest, TooSmallIsNoSpaceWithTheMinimum) {
  LayoutRequest r;
  r.region_size = 256 * 1024;
  Result<Geometry> g = compute_geometry(r);
  EXPECT_EQ(g.status().code(), Code::kNoSpace);
  EXPECT_NE(g.status().message().find("too small: needs at least"), std::string::npos)
      << g.status().message();
  r.region_size = 0;
  EXPECT_EQ(compute_geometry(r).status().code(), Code::kNoSpace);
  r.region_size = 4096;
  EXPECT_EQ(compute_geometry(r).status().code(), Code::kNoSpace);
}

TEST(GeometryTest, SmallestRegionThatFitsHasSixteenDataBlocks) {
  uint64_t lo = 4096, hi = 4 * kMiB;  // first size (in blocks) that formats
  while (lo < hi) {
    uint64_t mid = (lo + hi) / 2 / kBlockSize * kBlockSize;
    LayoutRequest r;
    r.region_size = mid;
    if (compute_geometry(r).is_ok()) hi = mid; else lo = mid + kBlockSize;
  }
  LayoutRequest r;
  r.region_size = lo;
  Result<Geometry> g = compute_geometry(r);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(g->data_blocks, 16u);
}

TEST(GeometryTest, BadAlignmentIsInvalid) {
  LayoutRequest r;
  r.region_size = kGiB;
  for (uint64_t a : {0ull, 1ull, 2048ull, 12288ull, 3ull << 20}) {
    r.device_alignment = a;
    EXPECT_EQ(compute_geometry(r).status().code(), Code::kInvalid) << a;
  }
}

TEST(GeometryTest, TwoMiBAlignmentAlignsDataStart) {
  LayoutRequest r;
  r.region_size = kGiB;
  r.device_alignment = 2 * kMiB;
  Result<Geometry> g = compute_geometry(r);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(block_offset(g->data_start) % (2 * kMiB), 0u);
  EXPECT_GT(g->data_start, g->bitmap_start + g->bitmap_blocks - 1);
  EXPECT_EQ(g->data_start + g->data_blocks, g->backup_block());
  Superblock sb;
  sb.geometry = *g;
  EXPECT_TRUE(decode_superblock(encode_superblock(sb), kGiB).is_ok());
}

TEST(GeometryTest, JournalOverride) {
  LayoutRequest r;
  r.region_size = kGiB;
  r.journal_bytes = 64 * kMiB;
  Result<Geometry> g = compute_geometry(r);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(g->journal_blocks, 64 * kMiB / kBlockSize);
  r.journal_bytes = 63 * kBlockSize;
  EXPECT_EQ(compute_geometry(r).status().code(), Code::kInvalid);
  r.journal_bytes = 64 * kBlockSize;
  EXPECT_TRUE(compute_geometry(r).is_ok());
  r.journal_bytes = 2 * kGiB;  // more than the region
  EXPECT_EQ(compute_geometry(r).status().code(), Code::kNoSpace);
}

TEST(GeometryTest, InodeCountRoundsToWholeBlocksAndIsBounded) {
  LayoutRequest r;
  r.region_size = kGiB;
  r.inode_count = 100;
  Result<Geometry> g = compute_geometry(r);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(g->inode_count, 112u);
  EXPECT_EQ(g->inode_blocks, 7u);
  r.inode_count = (1ull << 32);
  EXPECT_EQ(compute_geometry(r).status().code(), Code::kInvalid);
  r.inode_count = (1ull << 32) - 1;  // legal count, but 1 TiB of table
  EXPECT_EQ(compute_geometry(r).status().code(), Code::kNoSpace);
}

TEST(GeometryTest, LargeRegionBitmapConverges) {
  LayoutRequest r;
  r.region_size = 16ull << 40;  // 16 TiB: the bitmap takes many blocks
  r.device_alignment = 2 * kMiB;
  Result<Geometry> g = compute_geometry(r);
  ASSERT_TRUE(g.is_ok());
  EXPECT_GE(g->bitmap_blocks * 32768, g->data_blocks);
  EXPECT_EQ(g->inode_count, (16ull << 40) / (16 << 10));
  Superblock sb;
  sb.geometry = *g;
  EXPECT_TRUE(decode_superblock(encode_superblock(sb), 16ull << 40).is_ok());
}

TEST(SuperblockTest, MountRecordIsTruncatedNotOverflowed) {
  Superblock sb = sample();
  sb.mount_host = std::string(300, 'h');
  sb.mount_point = "/" + std::string(300, 'p');
  Result<Superblock> back = decode_superblock(encode_superblock(sb), 64 * kMiB);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->mount_host, std::string(63, 'h'));
  EXPECT_EQ(back->mount_point, sb.mount_point.substr(0, 127));
}

TEST(SuperblockTest, NeedsCheckIsAKnownStateAndOthersAreNot) {
  EXPECT_TRUE(decode_mutated([](DiskSuperblock& d) { d.state.set(format::kStateNeedsCheck); })
                  .is_ok());
  Status bad = decode_mutated([](DiskSuperblock& d) { d.state.set(4); });
  EXPECT_EQ(bad.code(), Code::kCorruption);
}

}  // namespace
}  // namespace sealfs
