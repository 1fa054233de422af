// Inline files (format.h kInodeInlineData): a sound one is clean; each
// disagreement of the flag with the slot is found by -n, repaired by -y
// without clearing the inode, and the repaired image mounts.
#include <gtest/gtest.h>

#include <cstring>

#include "fsck_fixture.h"

namespace sealfs::fsck::testing {
namespace {

class FsckInlineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = populated().image;
    geo_ = populated().geo;
  }
  const Populated& p() const { return populated(); }
  format::DiskInode tiny() { return get_inode(image_, geo_, p().tiny); }
  void put_tiny(const format::DiskInode& d) { put_inode(image_, geo_, p().tiny, d); }
  Bytes round_trip(const std::string& kind) { return expect_round_trip(image_, kind); }
  Bytes image_;
  Geometry geo_;
};

TEST_F(FsckInlineTest, TheInlineFileIsSoundAndHoldsItsBytes) {
  format::DiskInode d = tiny();
  ASSERT_NE(d.flags.get() & format::kInodeInlineData, 0u);
  EXPECT_EQ(d.size.get(), 100u);
  EXPECT_EQ(d.blocks.get(), 0u);
  EXPECT_EQ(d.u.data[0], 't');
  EXPECT_EQ(run(image_, false).report.exit_code, kExitClean);
}

TEST_F(FsckInlineTest, SizePastTheSlot) {
  format::DiskInode d = tiny();
  d.size.set(format::kInlineDataMax + 50);
  put_tiny(d);
  Bytes fixed = round_trip("inline_size");
  EXPECT_EQ(get_inode(fixed, geo_, p().tiny).size.get(), format::kInlineDataMax);
}

TEST_F(FsckInlineTest, ExtentCountOnAnInlineFile) {
  format::DiskInode d = tiny();
  d.extent_count.set(2);
  put_tiny(d);
  Bytes fixed = round_trip("inline_extents");
  format::DiskInode after = get_inode(fixed, geo_, p().tiny);
  EXPECT_EQ(after.extent_count.get(), 0u);
  EXPECT_EQ(std::memcmp(after.u.data, std::string(100, 't').data(), 100), 0);
}

TEST_F(FsckInlineTest, BytesAfterTheEnd) {
  format::DiskInode d = tiny();
  d.u.data[120] = 0x5a;
  put_tiny(d);
  Bytes fixed = round_trip("inline_tail");
  EXPECT_EQ(get_inode(fixed, geo_, p().tiny).u.data[120], 0);
}

TEST_F(FsckInlineTest, FlagOnADirectory) {
  format::DiskInode d = get_inode(image_, geo_, p().dir_b);
  d.flags.set(d.flags.get() | format::kInodeInlineData);
  put_inode(image_, geo_, p().dir_b, d);
  Bytes fixed = round_trip("inline_not_regular");
  EXPECT_EQ(get_inode(fixed, geo_, p().dir_b).flags.get() & format::kInodeInlineData, 0u);
  EXPECT_EQ(get_inode(fixed, geo_, p().dir_b).mode.get(), d.mode.get());
}

TEST_F(FsckInlineTest, BlockCountOnAnInlineFile) {
  format::DiskInode d = tiny();
  d.blocks.set(1);
  put_tiny(d);
  Bytes fixed = round_trip("block_count");
  EXPECT_EQ(get_inode(fixed, geo_, p().tiny).blocks.get(), 0u);
}

TEST_F(FsckInlineTest, InlineFileOnAnImageWithoutTheFeature) {
  auto sb = read_superblock(*RegionDram::from_image(image_));
  ASSERT_TRUE(sb.is_ok());
  sb->feature_incompat &= ~format::kFeatureIncompatInlineData;
  for (uint64_t block : {uint64_t{0}, geo_.region_blocks - 1}) {
    auto disk = encode_superblock(*sb);
    std::memcpy(image_.data() + block * format::kBlockSize, &disk, sizeof(disk));
  }
  // The other inline files (empty ones made by mknod) are repaired too.
  Bytes fixed = round_trip("inline_without_feature");
  format::DiskInode after = get_inode(fixed, geo_, p().tiny);
  EXPECT_EQ(after.flags.get() & format::kInodeInlineData, 0u);
  EXPECT_EQ(after.size.get(), 0u);
}


// The flag on a larger file with extents (a flipped bit, or a flag an older
// image never had) is what goes: the extents and the size stay.
TEST_F(FsckInlineTest, FlagOnAFileWithExtentsIsDroppedNotTheExtents) {
  format::DiskInode d = get_inode(image_, geo_, p().file1);
  ASSERT_GT(d.extent_count.get(), 0u);
  ASSERT_GT(d.size.get(), format::kInlineDataMax);
  d.flags.set(d.flags.get() | format::kInodeInlineData);
  put_inode(image_, geo_, p().file1, d);
  Bytes fixed = round_trip("inline_stray_flag");
  format::DiskInode after = get_inode(fixed, geo_, p().file1);
  EXPECT_EQ(after.flags.get() & format::kInodeInlineData, 0u);
  EXPECT_EQ(after.extent_count.get(), d.extent_count.get());
  EXPECT_EQ(after.size.get(), d.size.get());
  EXPECT_EQ(std::memcmp(&after.u, &d.u, sizeof(d.u)), 0);
}

// An xattr repair rewrites the inode; an inline file's bytes must survive
// it (the block-map rewrite that follows such a repair zeroed them).
TEST_F(FsckInlineTest, AnXattrRepairKeepsTheInlineBytes) {
  format::DiskInode d = tiny();
  // A block of the data area nobody uses: no xattr block header there.
  d.xattr_block.set(geo_.data_start + geo_.data_blocks - 1);
  put_tiny(d);
  FsckRun check = run(image_, false);
  EXPECT_EQ(check.report.exit_code, kExitUncorrected) << kinds(check.report);
  FsckRun fix = run(image_, true);
  EXPECT_EQ(fix.report.exit_code, kExitCorrected) << kinds(fix.report);
  format::DiskInode after = get_inode(fix.image, geo_, p().tiny);
  EXPECT_EQ(after.xattr_block.get(), 0u);
  EXPECT_NE(after.flags.get() & format::kInodeInlineData, 0u);
  EXPECT_EQ(after.size.get(), 100u);
  EXPECT_EQ(std::memcmp(after.u.data, std::string(100, 't').data(), 100), 0);
  EXPECT_EQ(run(fix.image, false).report.exit_code, kExitClean);
  auto fs = Filesystem::mount(RegionDram::from_image(fix.image), mount_options());
  ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
  char buf[200] = {};
  auto got = (*fs)->read_copy(p().tiny, 0, buf, sizeof(buf));
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_EQ(std::string(buf, *got), std::string(100, 't'));
}

}  // namespace
}  // namespace sealfs::fsck::testing
