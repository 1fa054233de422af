// Crash regressions found by the enumerator, each pinned to one hand-built
// image so it stays fixed whatever the random workloads happen to reach.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>

#include "media/formatter.h"
#include "media/region_dram.h"
#include "meta/filesystem.h"

namespace sealfs::crash {
namespace {

// A power loss while the superblock's home copy of a committed transaction is
// half written leaves a primary superblock that fails its crc. Mount read the
// backup to find the journal, and kept using the backup's (stale) fields even
// after replay had rewritten the primary: the orphan list head was lost, the
// open-unlinked file was never freed and its blocks leaked.
TEST(CrashRegression, TornPrimarySuperblockIsRepairedByReplay) {
  auto region = RegionDram::create(8ull << 20);
  FormatOptions options;
  options.layout.inode_count = 256;
  options.layout.journal_bytes = 256ull << 10;
  ASSERT_TRUE(Formatter::format(*region, options).is_ok());
  RegionDram* dram = region.get();
  auto fs = Filesystem::mount(std::move(region), MountOptions{});
  ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
  Cred cred{1000, 1000, 022, 1};
  auto a = (*fs)->create(1, "open-unlinked", 0644, O_RDWR, cred);
  ASSERT_TRUE(a.is_ok());
  // The root's directory block stays; the file's blocks must come back.
  const uint64_t free_empty = (*fs)->statfs().free_blocks;
  std::string bytes(5 * 4096, 'x');
  ASSERT_TRUE((*fs)->write(a->ino, 0, bytes.data(), bytes.size(), false).is_ok());
  ASSERT_TRUE((*fs)->unlink(1, "open-unlinked").is_ok());  // still open: an orphan

  // Committed, home copies flushed but not drained. Tear the primary: one
  // word of the new superblock reached the media, the rest did not.
  auto image = dram->crash(RegionDram::CrashMode::kDrop);
  auto visible = dram->image();
  bool torn = false;
  for (uint64_t off = 0; off < 4096 && !torn; off += 8) {
    if (std::memcmp(image.data() + off, visible.data() + off, 8) != 0) {
      std::memcpy(image.data() + off, visible.data() + off, 8);
      torn = true;
    }
  }
  ASSERT_TRUE(torn) << "the unlink did not change the superblock";

  FsckLikeStats stats;
  auto recovered = Filesystem::mount(RegionDram::from_image(std::move(image)), MountOptions{},
                                     &stats);
  ASSERT_TRUE(recovered.is_ok()) << recovered.status().to_string();
  EXPECT_EQ(stats.orphans_freed, 1u);
  EXPECT_EQ((*recovered)->statfs().free_blocks, free_empty);
  EXPECT_EQ((*recovered)->statfs().inodes - (*recovered)->statfs().free_inodes, 1u);
  EXPECT_TRUE((*recovered)->unmount().is_ok());
}

}  // namespace
}  // namespace sealfs::crash
