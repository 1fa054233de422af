// probe_filesystem on synthetic heads.
#include "tools/fs_probe.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "media/superblock.h"

namespace sealfs {
namespace {

std::vector<std::byte> zeros() { return std::vector<std::byte>(kProbeBytes); }

TEST(FsProbeTest, NothingOnZerosOrShortInput) {
  auto head = zeros();
  EXPECT_FALSE(probe_filesystem(head.data(), head.size()));
  EXPECT_FALSE(probe_filesystem(head.data(), 0));
}

TEST(FsProbeTest, ExtMagicAt1080) {
  auto head = zeros();
  head[1080] = std::byte{0x53};
  head[1081] = std::byte{0xef};
  EXPECT_EQ(probe_filesystem(head.data(), head.size()), "ext2/3/4");
  // Too short to see it.
  EXPECT_FALSE(probe_filesystem(head.data(), 1081));
  head[1081] = std::byte{0xee};
  EXPECT_FALSE(probe_filesystem(head.data(), head.size()));
}

TEST(FsProbeTest, XfsMagicAtZero) {
  auto head = zeros();
  std::memcpy(head.data(), "XFSB", 4);
  EXPECT_EQ(probe_filesystem(head.data(), head.size()), "XFS");
}

TEST(FsProbeTest, SealfsValidAndDamaged) {
  LayoutRequest r;
  r.region_size = 64 << 20;
  Superblock sb;
  sb.geometry = compute_geometry(r).value();
  sb.label = "vol";
  auto head = zeros();
  format::DiskSuperblock d = encode_superblock(sb);
  std::memcpy(head.data(), &d, sizeof(d));
  auto found = probe_filesystem(head.data(), head.size());
  ASSERT_TRUE(found);
  EXPECT_NE(found->find("sealfs (label 'vol'"), std::string::npos) << *found;
  head[100] ^= std::byte{1};
  found = probe_filesystem(head.data(), head.size());
  ASSERT_TRUE(found);
  EXPECT_NE(found->find("damaged"), std::string::npos) << *found;
}

}  // namespace
}  // namespace sealfs
