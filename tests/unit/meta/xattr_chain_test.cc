// Extended attributes in a chain of journaled blocks (docs/format.md §9):
// a thousand attributes and 64 KiB values on one inode, the chain grown and
// cut block by block, its limit refusing with kNoSpace and no change, the
// incompat bit set by the first chain, a crash in between, and an image
// with the legacy single block still mounting and read.
#include <fcntl.h>
#include <sys/xattr.h>

#include <cstring>

#include "media/superblock.h"
#include "meta/inode.h"
#include "meta/xattr.h"
#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;

std::string value_for(int i, size_t size) {
  std::string v(size, '\0');
  for (size_t k = 0; k < size; ++k) v[k] = static_cast<char>('a' + (i * 7 + k) % 26);
  return v;
}

class XattrChainTest : public MetaTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(format()); }
  Status set(Ino ino, const std::string& name, const std::string& v, int flags = 0) {
    return fs_->setxattr(ino, name, v.data(), v.size(), flags);
  }
  std::string get(Ino ino, const std::string& name) {
    auto v = fs_->getxattr(ino, name);
    if (!v.is_ok()) return v.status().to_string();
    return std::string(v->begin(), v->end());
  }
  uint64_t blocks_of(Ino ino) { return fs_->getattr(ino)->blocks / 8; }  // 4 KiB blocks
  bool chain_feature() {
    auto sb = read_superblock(fs_->region());
    EXPECT_TRUE(sb.is_ok());
    return (sb->feature_incompat & format::kFeatureIncompatXattrChain) != 0;
  }
};

TEST_F(XattrChainTest, AThousandAttributesGrowAndCutTheChain) {
  Attr f = make_file(kRootIno, "f");
  const uint64_t free_before = fs_->statfs().free_blocks;
  EXPECT_FALSE(chain_feature()) << "mkfs leaves the bit for the first chain";
  size_t stream = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string name = "user.attr." + std::to_string(i);
    std::string v = value_for(i, 16 + i % 50);
    ASSERT_TRUE(set(f.ino, name, v, XATTR_CREATE).is_ok()) << name;
    stream += sizeof(format::DiskXattrChainEntry) + name.size() + v.size();
  }
  EXPECT_TRUE(chain_feature());
  const uint64_t chain = (stream + format::kXattrChainPayload - 1) / format::kXattrChainPayload;
  EXPECT_GT(chain, 10u);
  EXPECT_EQ(blocks_of(f.ino), chain);
  EXPECT_EQ(fs_->statfs().free_blocks, free_before - chain);
  crash_and_remount();
  auto names = fs_->listxattr(f.ino);
  ASSERT_TRUE(names.is_ok());
  ASSERT_EQ(names->size(), 1000u);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ((*names)[i], "user.attr." + std::to_string(i));
    ASSERT_EQ(get(f.ino, (*names)[i]), value_for(i, 16 + i % 50));
  }
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(fs_->removexattr(f.ino, "user.attr." + std::to_string(i)).is_ok());
  }
  EXPECT_EQ(blocks_of(f.ino), 0u);
  EXPECT_EQ(fs_->statfs().free_blocks, free_before);
  clean_remount();
  EXPECT_TRUE(fs_->listxattr(f.ino)->empty());
  EXPECT_TRUE(chain_feature()) << "never cleared";
}

TEST_F(XattrChainTest, SixtyFourKibValuesUpToTheLimit) {
  Attr f = make_file(kRootIno, "f");
  EXPECT_EQ(set(f.ino, "user.over", value_for(0, 65537)).code(), Code::kTooBig);
  int stored = 0;
  Status s = Status::ok();
  while ((s = set(f.ino, "user.big" + std::to_string(stored), value_for(stored, 65536))).is_ok()) {
    ++stored;
  }
  // 128 blocks of 4064 bytes hold seven 64 KiB values, not eight.
  EXPECT_EQ(stored, 7);
  EXPECT_EQ(s.code(), Code::kNoSpace) << s.to_string();
  const uint64_t blocks = blocks_of(f.ino);
  EXPECT_LE(blocks, format::kXattrChainMaxBlocks);
  EXPECT_EQ(fs_->listxattr(f.ino)->size(), 7u);
  // A refused change left every block as it was.
  crash_and_remount();
  for (int i = 0; i < 7; ++i) EXPECT_EQ(get(f.ino, "user.big" + std::to_string(i)), value_for(i, 65536));
  EXPECT_EQ(blocks_of(f.ino), blocks);
  // Replacing a value by a short one in the middle shifts the stream.
  ASSERT_TRUE(set(f.ino, "user.big3", "short", XATTR_REPLACE).is_ok());
  EXPECT_LT(blocks_of(f.ino), blocks);
  crash_and_remount();
  EXPECT_EQ(get(f.ino, "user.big3"), "short");
  EXPECT_EQ(get(f.ino, "user.big6"), value_for(6, 65536));
}

TEST_F(XattrChainTest, NoSpaceInTheRegionLeavesTheOldValue) {
  ASSERT_NO_FATAL_FAILURE(format(8ull << 20, 256));
  Attr f = make_file(kRootIno, "f");
  ASSERT_TRUE(set(f.ino, "user.v", "old").is_ok());
  Attr fill = make_file(kRootIno, "fill");
  std::string chunk(1 << 16, 'f');
  for (uint64_t off = 0;; off += chunk.size()) {
    auto n = fs_->write(fill.ino, off, chunk.data(), chunk.size(), false);
    if (!n.is_ok()) {
      ASSERT_EQ(n.status().code(), Code::kNoSpace);
      break;
    }
  }
  const uint64_t blocks = blocks_of(f.ino);
  EXPECT_EQ(set(f.ino, "user.v", value_for(1, 65536)).code(), Code::kNoSpace);
  EXPECT_EQ(get(f.ino, "user.v"), "old");
  EXPECT_EQ(blocks_of(f.ino), blocks);
  crash_and_remount();
  EXPECT_EQ(get(f.ino, "user.v"), "old");
}

TEST_F(XattrChainTest, CorruptChainBlockIsReportedNotServed) {
  Attr f = make_file(kRootIno, "f");
  ASSERT_TRUE(set(f.ino, "user.big", value_for(2, 20000)).is_ok());
  ASSERT_TRUE(fs_->unmount().is_ok());
  std::vector<std::byte> image = dram()->image();
  fs_.reset();
  auto sb = read_superblock(*RegionDram::from_image(image));
  ASSERT_TRUE(sb.is_ok());
  format::DiskInode d{};
  std::memcpy(&d, image.data() + inode_offset(sb->geometry, f.ino), sizeof(d));
  // The second block: its header says where it sits; make it lie.
  format::DiskXattrChainHeader h{};
  std::memcpy(&h, image.data() + d.xattr_block.get() * format::kBlockSize, sizeof(h));
  const uint64_t second = h.next_block.get();
  ASSERT_NE(second, 0u);
  std::byte* b = image.data() + second * format::kBlockSize;
  std::memcpy(&h, b, sizeof(h));
  encode_xattr_chain_block(b, f.ino, 5, h.next_block.get(),
                           reinterpret_cast<const uint8_t*>(b + sizeof(h)), h.used.get());
  owned_ = RegionDram::from_image(std::move(image));
  mount_region();
  auto v = fs_->getxattr(f.ino, "user.big");
  EXPECT_EQ(v.status().code(), Code::kCorruption);
  EXPECT_NE(v.status().message().find("xattr block " + std::to_string(second)), std::string::npos)
      << v.status().to_string();
}

// A reader that cannot use the primary superblock (and an older one that
// does not know the bit) reads the backup: the bit must be there too.
TEST_F(XattrChainTest, TheBackupSuperblockCarriesTheFeatureBit) {
  Attr f = make_file(kRootIno, "f");
  ASSERT_TRUE(set(f.ino, "user.a", "1").is_ok());
  ASSERT_TRUE(fs_->unmount().is_ok());
  std::vector<std::byte> image = dram()->image();
  fs_.reset();
  image[20] ^= std::byte{0x40};  // the primary's crc no longer matches
  bool used_backup = false;
  auto sb = read_superblock(*RegionDram::from_image(image), &used_backup);
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  EXPECT_TRUE(used_backup);
  EXPECT_NE(sb->feature_incompat & format::kFeatureIncompatXattrChain, 0u);
}

// A daemon that died after the commit that set the bit but before it
// rewrote the backup: the next read-write mount brings the backup up to date.
TEST_F(XattrChainTest, AMountRefreshesABackupSuperblockLeftWithoutTheFeatureBit) {
  auto before = read_superblock(fs_->region());
  ASSERT_TRUE(before.is_ok());
  const uint64_t backup_at = before->geometry.backup_block() * format::kBlockSize;
  std::vector<std::byte> old_backup(format::kBlockSize);
  std::memcpy(old_backup.data(), fs_->region().data() + backup_at, old_backup.size());
  Attr f = make_file(kRootIno, "f");
  ASSERT_TRUE(set(f.ino, "user.a", "1").is_ok());
  ASSERT_TRUE(fs_->unmount().is_ok());
  std::vector<std::byte> image = dram()->image();
  fs_.reset();
  std::memcpy(image.data() + backup_at, old_backup.data(), old_backup.size());
  owned_ = RegionDram::from_image(image);
  mount_region();
  ASSERT_TRUE(fs_->unmount().is_ok());
  image = dram()->image();
  fs_.reset();
  image[20] ^= std::byte{0x40};  // the primary's crc no longer matches
  bool used_backup = false;
  auto sb = read_superblock(*RegionDram::from_image(image), &used_backup);
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  EXPECT_TRUE(used_backup);
  EXPECT_NE(sb->feature_incompat & format::kFeatureIncompatXattrChain, 0u);
}

// An image from before chains: one "SXTR" block and no incompat bit. It
// mounts, reads, and its first change rewrites the block as a chain.
TEST_F(XattrChainTest, LegacyBlockStillMountsAndBecomesAChain) {
  Attr f = make_file(kRootIno, "f");
  ASSERT_TRUE(set(f.ino, "user.a", "one").is_ok());
  ASSERT_TRUE(fs_->unmount().is_ok());
  std::vector<std::byte> image = dram()->image();
  fs_.reset();
  auto sb = read_superblock(*RegionDram::from_image(image));
  ASSERT_TRUE(sb.is_ok());
  format::DiskInode d{};
  std::memcpy(&d, image.data() + inode_offset(sb->geometry, f.ino), sizeof(d));
  const uint64_t xb = d.xattr_block.get();
  XattrList old = {{"user.a", {'o', 'l', 'd'}}, {"trusted.t", {'t'}}};
  encode_xattr_block(image.data() + xb * format::kBlockSize, f.ino, old);
  sb->feature_incompat &= ~format::kFeatureIncompatXattrChain;
  auto disk = encode_superblock(*sb);
  std::memcpy(image.data(), &disk, sizeof(disk));
  std::memcpy(image.data() + sb->geometry.backup_block() * format::kBlockSize, &disk, sizeof(disk));
  owned_ = RegionDram::from_image(std::move(image));
  mount_region();
  EXPECT_FALSE(chain_feature());
  EXPECT_EQ(get(f.ino, "user.a"), "old");
  EXPECT_EQ(get(f.ino, "trusted.t"), "t");
  ASSERT_TRUE(set(f.ino, "user.b", value_for(4, 9000)).is_ok());
  EXPECT_TRUE(chain_feature());
  EXPECT_EQ(blocks_of(f.ino), 3u);
  crash_and_remount();
  EXPECT_EQ(get(f.ino, "user.a"), "old");
  EXPECT_EQ(get(f.ino, "user.b"), value_for(4, 9000));
  EXPECT_EQ(fs_->listxattr(f.ino)->size(), 3u);
}

}  // namespace
}  // namespace sealfs::testing_meta
