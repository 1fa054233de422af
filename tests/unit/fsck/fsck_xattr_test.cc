// fsck.sealfs and xattr chains (docs/format.md §9, docs/fsck.md): a chain
// of several blocks is clean and every block of it counted as used; a bad
// block anywhere in it drops the inode's attributes and frees the whole
// chain; a chain on an image without the incompat bit gets the bit.
#include <gtest/gtest.h>

#include "fsck_fixture.h"
#include "meta/xattr.h"

namespace sealfs::fsck::testing {
namespace {

struct ChainImage {
  Bytes image;
  Geometry geo;
  Ino file = 0;
  std::vector<uint64_t> chain;
};

ChainImage build_chain_image() {
  ChainImage c;
  auto region = RegionDram::create(16ull << 20);
  FormatOptions fo;
  fo.layout.inode_count = 128;
  fo.layout.journal_bytes = 1ull << 20;
  auto sb = Formatter::format(*region, fo);
  EXPECT_TRUE(sb.is_ok()) << sb.status().to_string();
  c.geo = sb->geometry;
  auto fs = Filesystem::mount(std::move(region), mount_options());
  EXPECT_TRUE(fs.is_ok()) << fs.status().to_string();
  auto f = (*fs)->create(kRootIno, "f", 0644, O_RDWR, cred());
  EXPECT_TRUE(f.is_ok());
  c.file = f->ino;
  std::string big(10000, 'v');
  EXPECT_TRUE((*fs)->setxattr(c.file, "user.big", big.data(), big.size(), 0).is_ok());
  EXPECT_TRUE((*fs)->setxattr(c.file, "user.small", "s", 1, 0).is_ok());
  (*fs)->release(c.file);
  EXPECT_TRUE((*fs)->unmount().is_ok());
  c.image = static_cast<const RegionDram&>((*fs)->region()).image();
  const Bytes& img = c.image;
  c.chain = xattr_chain_blocks(get_inode(img, c.geo, c.file).xattr_block.get(), c.file,
                               [&](uint64_t b) { return img.data() + b * format::kBlockSize; });
  return c;
}

class FsckXattrTest : public ::testing::Test {
 protected:
  void SetUp() override { c_ = build_chain_image(); }
  ChainImage c_;
};

TEST_F(FsckXattrTest, ChainIsCleanAndCounted) {
  ASSERT_EQ(c_.chain.size(), 3u);
  FsckRun check = run(c_.image, false);
  EXPECT_EQ(check.report.exit_code, kExitClean) << kinds(check.report);
  EXPECT_EQ(check.report.counts.blocks_referenced, check.report.counts.blocks_marked);
  // A chain block marked free is found (the bitmap phase claims every one).
  set_bit(c_.image, c_.geo, c_.chain[2], false);
  FsckRun missing = run(c_.image, false);
  EXPECT_TRUE(has_kind(missing.report, "used_but_free")) << kinds(missing.report);
}

TEST_F(FsckXattrTest, BadMiddleBlockDropsTheAttributesAndFreesTheChain) {
  block_ptr(c_.image, c_.chain[1])[2000] ^= std::byte{0x08};
  FsckRun check = run(c_.image, false);
  EXPECT_EQ(check.report.exit_code, kExitUncorrected);
  EXPECT_TRUE(has_kind(check.report, "xattr_bad")) << kinds(check.report);
  FsckRun fix = run(c_.image, true);
  EXPECT_EQ(fix.report.exit_code, kExitCorrected) << kinds(fix.report);
  EXPECT_EQ(get_inode(fix.image, c_.geo, c_.file).xattr_block.get(), 0u);
  EXPECT_EQ(get_inode(fix.image, c_.geo, c_.file).blocks.get(), 0u);
  for (uint64_t b : c_.chain) EXPECT_FALSE(get_bit(fix.image, c_.geo, b)) << b;
  FsckRun again = run(fix.image, false);
  EXPECT_EQ(again.report.exit_code, kExitClean) << kinds(again.report);
  auto fs = Filesystem::mount(RegionDram::from_image(fix.image), mount_options());
  ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
  EXPECT_TRUE((*fs)->listxattr(c_.file)->empty());
}

TEST_F(FsckXattrTest, ChainWithoutTheFeatureBitGetsIt) {
  auto sb = read_superblock(*RegionDram::from_image(c_.image));
  ASSERT_TRUE(sb.is_ok());
  ASSERT_NE(sb->feature_incompat & format::kFeatureIncompatXattrChain, 0u);
  sb->feature_incompat &= ~format::kFeatureIncompatXattrChain;
  auto disk = encode_superblock(*sb);
  std::memcpy(c_.image.data(), &disk, sizeof(disk));
  std::memcpy(block_ptr(c_.image, c_.geo.backup_block()), &disk, sizeof(disk));
  FsckRun check = run(c_.image, false);
  EXPECT_TRUE(has_kind(check.report, "xattr_feature")) << kinds(check.report);
  FsckRun fix = run(c_.image, true);
  EXPECT_EQ(fix.report.exit_code, kExitCorrected) << kinds(fix.report);
  auto fixed = read_superblock(*RegionDram::from_image(fix.image));
  ASSERT_TRUE(fixed.is_ok());
  EXPECT_NE(fixed->feature_incompat & format::kFeatureIncompatXattrChain, 0u);
  EXPECT_EQ(run(fix.image, false).report.exit_code, kExitClean);
}

// Writes `list` over the image's chain, whose blocks must hold it, with
// valid crcs: damage no crc can see.
void write_chain(ChainImage& c, const XattrList& list) {
  const std::vector<uint8_t> stream = encode_xattr_stream(list);
  const uint64_t need = xattr_chain_blocks_for(stream.size());
  ASSERT_LE(need, c.chain.size());
  for (uint64_t i = 0; i < need; ++i) {
    uint64_t offset = i * uint64_t{format::kXattrChainPayload};
    auto used = static_cast<uint32_t>(
        std::min<uint64_t>(format::kXattrChainPayload, stream.size() - offset));
    encode_xattr_chain_block(block_ptr(c.image, c.chain[i]), c.file, static_cast<uint32_t>(i),
                             i + 1 < need ? c.chain[i + 1] : 0, stream.data() + offset, used);
  }
}

XattrEntry entry(std::string name, std::string value) {
  return XattrEntry{std::move(name), std::vector<uint8_t>(value.begin(), value.end())};
}

// Blocks that check, holding what setxattr never stores: the daemon refuses
// the store, fsck -y drops exactly those attributes and gives back the
// blocks the rest no longer needs.
TEST_F(FsckXattrTest, AttributesSetxattrWouldRefuseAreDroppedOneByOne) {
  const uint8_t default_acl[] = {2, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 4, 0, 4, 0,
                                 0, 0, 0, 0, 0x20, 0, 4, 0, 0, 0, 0, 0};
  XattrList list = {
      entry("bogus.big", std::string(9000, 'b')),  // no such namespace
      entry("user.small", "s"),
      entry("user.small", "again"),  // a name twice
      entry(std::string("user.n\0ul", 10), "x"),
      entry("system.posix_acl_access", "junk"),
      XattrEntry{"system.posix_acl_default",  // on a regular file
                 std::vector<uint8_t>(default_acl, default_acl + sizeof default_acl)},
      entry("user.kept", "k"),
  };
  ASSERT_NO_FATAL_FAILURE(write_chain(c_, list));

  {
    auto fs = Filesystem::mount(RegionDram::from_image(c_.image), mount_options());
    ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
    EXPECT_EQ((*fs)->listxattr(c_.file).status().code(), Code::kCorruption);
    EXPECT_EQ((*fs)->getxattr(c_.file, "user.kept").status().code(), Code::kCorruption);
    ASSERT_TRUE((*fs)->unmount().is_ok());
  }
  FsckRun check = run(c_.image, false);
  EXPECT_EQ(check.report.exit_code, kExitUncorrected);
  size_t entries = 0;
  for (const auto& p : check.report.problems) entries += p.kind == "xattr_entry" ? 1 : 0;
  EXPECT_EQ(entries, 5u) << kinds(check.report);

  FsckRun fix = run(c_.image, true);
  EXPECT_EQ(fix.report.exit_code, kExitCorrected) << kinds(fix.report);
  EXPECT_EQ(run(fix.image, false).report.exit_code, kExitClean);
  // The two that remain fit the chain's first block; the others are free.
  EXPECT_EQ(get_inode(fix.image, c_.geo, c_.file).xattr_block.get(), c_.chain[0]);
  EXPECT_EQ(get_inode(fix.image, c_.geo, c_.file).blocks.get(), 1u);
  EXPECT_TRUE(get_bit(fix.image, c_.geo, c_.chain[0]));
  for (size_t i = 1; i < c_.chain.size(); ++i) EXPECT_FALSE(get_bit(fix.image, c_.geo, c_.chain[i]));
  auto fs = Filesystem::mount(RegionDram::from_image(fix.image), mount_options());
  ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
  auto names = (*fs)->listxattr(c_.file);
  ASSERT_TRUE(names.is_ok()) << names.status().to_string();
  EXPECT_EQ(*names, (std::vector<std::string>{"user.small", "user.kept"}));
  EXPECT_EQ(*(*fs)->getxattr(c_.file, "user.small"), std::vector<uint8_t>{'s'});
}

}  // namespace
}  // namespace sealfs::fsck::testing
