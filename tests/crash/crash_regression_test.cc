// Crash regressions found by the enumerator, each pinned to one hand-built
// image so it stays fixed whatever the random workloads happen to reach.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "media/formatter.h"
#include "media/region_dram.h"
#include "meta/filesystem.h"

namespace sealfs::crash {
namespace {

// An 8 MiB region with 256 inodes, formatted and mounted; `*dram` is set to
// the region, which the mount owns.
Result<std::unique_ptr<Filesystem>> mount_small_region(RegionDram** dram,
                                                       uint64_t journal_bytes = 256ull << 10) {
  auto region = RegionDram::create(8ull << 20);
  FormatOptions options;
  options.layout.inode_count = 256;
  options.layout.journal_bytes = journal_bytes;
  RETURN_IF_ERROR(Formatter::format(*region, options).status());
  *dram = region.get();
  return Filesystem::mount(std::move(region), MountOptions{});
}

// A power loss while the superblock's home copy of a committed transaction is
// half written leaves a primary superblock that fails its crc. Mount read the
// backup to find the journal, and kept using the backup's (stale) fields even
// after replay had rewritten the primary: the orphan list head was lost, the
// open-unlinked file was never freed and its blocks leaked.
TEST(CrashRegression, TornPrimarySuperblockIsRepairedByReplay) {
  RegionDram* dram = nullptr;
  auto fs = mount_small_region(&dram);
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

// Truncating down zeroed the rest of the new last block (drained) before the
// transaction with the new size committed: a crash in between showed the old
// size with zeros in the middle of the file's data.
TEST(CrashRegression, TruncateDownIsAllOrNothing) {
  RegionDram* dram = nullptr;
  auto fs = mount_small_region(&dram);
  ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
  Cred cred{1000, 1000, 022, 1};
  auto a = (*fs)->create(1, "f", 0644, O_RDWR, cred);
  ASSERT_TRUE(a.is_ok());
  std::string bytes(10000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>('a' + i % 23);
  ASSERT_TRUE((*fs)->write(a->ino, 0, bytes.data(), bytes.size(), false).is_ok());

  std::vector<std::vector<std::byte>> images;
  dram->set_drain_observer(
      [&](uint64_t) { images.push_back(dram->crash(RegionDram::CrashMode::kDrop)); });
  SetAttr set;
  set.valid = SetAttr::kSize;
  set.size = 176;
  ASSERT_TRUE((*fs)->setattr(a->ino, set).is_ok());
  dram->set_drain_observer(nullptr);
  images.push_back(dram->crash(RegionDram::CrashMode::kDrop));

  for (size_t i = 0; i < images.size(); ++i) {
    SCOPED_TRACE("crash image " + std::to_string(i));
    auto r = Filesystem::mount(RegionDram::from_image(std::move(images[i])), MountOptions{});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    auto attr = (*r)->getattr(a->ino);
    ASSERT_TRUE(attr.is_ok());
    ASSERT_TRUE(attr->size == 10000 || attr->size == 176) << attr->size;
    // Grow it back: what was cut off must read as zeros, the rest as before.
    set.size = 10000;
    ASSERT_TRUE((*r)->setattr(a->ino, set).is_ok());
    std::string got(10000, '\0');
    auto n = (*r)->read_copy(a->ino, 0, got.data(), got.size());
    ASSERT_TRUE(n.is_ok());
    std::string want = bytes;
    if (attr->size == 176) std::fill(want.begin() + 176, want.end(), '\0');
    EXPECT_EQ(got, want);
  }
}

// A full filesystem whose only free block just held an xattr block, freed
// by a transaction that is still in the log (no checkpoint since): whatever
// allocates next gets that block.
struct FreedXattrBlockImage {
  RegionDram* dram = nullptr;
  std::unique_ptr<Filesystem> fs;
  Ino target = 0;  // an empty regular file to put data in
};

void make_freed_xattr_block_image(FreedXattrBlockImage* out) {
  auto mounted = mount_small_region(&out->dram, 2ull << 20);  // no checkpoint by itself
  ASSERT_TRUE(mounted.is_ok()) << mounted.status().to_string();
  out->fs = std::move(*mounted);
  Filesystem& fs = *out->fs;
  Cred cred{1000, 1000, 022, 1};
  auto a = fs.create(1, "a", 0644, O_RDWR, cred);
  auto b = fs.create(1, "b", 0644, O_RDWR, cred);
  auto filler = fs.create(1, "filler", 0644, O_RDWR, cred);
  ASSERT_TRUE(a.is_ok() && b.is_ok() && filler.is_ok());
  std::string value(2000, 'X');
  ASSERT_TRUE(fs.setxattr(a->ino, "user.big", value.data(), value.size(), 0).is_ok());
  std::string chunk(64 * 1024, 'f');
  for (uint64_t off = 0;; off += chunk.size()) {
    auto w = fs.write(filler->ino, off, chunk.data(), chunk.size(), false);
    if (!w.is_ok() || *w < chunk.size()) break;
  }
  ASSERT_EQ(fs.statfs().free_blocks, 0u);
  ASSERT_TRUE(fs.removexattr(a->ino, "user.big").is_ok());
  ASSERT_EQ(fs.statfs().free_blocks, 1u);
  out->target = b->ino;
}

void expect_survives_power_loss(const FreedXattrBlockImage& image, const std::string& data) {
  auto r = Filesystem::mount(
      RegionDram::from_image(image.dram->crash(RegionDram::CrashMode::kDrop)), MountOptions{});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  std::string got(data.size(), '\0');
  auto n = (*r)->read_copy(image.target, 0, got.data(), got.size());
  ASSERT_TRUE(n.is_ok());
  EXPECT_TRUE(got == data) << "data replaced by: " << got.substr(0, 24);
}

// A block that held journaled metadata (here an xattr block) was reused for
// file data while the transaction that logged it was still before the log
// tail: recovery replayed the old xattr block over the new data.
TEST(CrashRegression, FreedMetadataBlockReusedForDataSurvivesReplay) {
  FreedXattrBlockImage image;
  ASSERT_NO_FATAL_FAILURE(make_freed_xattr_block_image(&image));
  std::string data(4096, 'D');
  auto w = image.fs->write(image.target, 0, data.data(), data.size(), false);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  expect_survives_power_loss(image, data);
}

// The same hazard on the direct-mapping path: ALLOCATE hands a holder fresh
// blocks it stores into directly.
TEST(CrashRegression, FreedMetadataBlockAllocatedForLeaseSurvivesReplay) {
  FreedXattrBlockImage image;
  ASSERT_NO_FATAL_FAILURE(make_freed_xattr_block_image(&image));
  Filesystem& fs = *image.fs;
  SetAttr grow;
  grow.valid = SetAttr::kSize;
  grow.size = 4096;
  ASSERT_TRUE(fs.setattr(image.target, grow).is_ok());
  auto lock = fs.lock_layout(image.target);
  ASSERT_TRUE(lock.is_ok()) << lock.status().to_string();
  auto pieces = fs.layout_extents(**lock, 0, 4096, kLayoutAllocate);
  ASSERT_TRUE(pieces.is_ok()) << pieces.status().to_string();
  ASSERT_EQ(pieces->size(), 1u);
  // The holder's store through its mapping, made durable.
  std::string data(4096, 'D');
  image.dram->corrupt((*pieces)[0].region_offset, data.data(), data.size());
  lock->reset();
  expect_survives_power_loss(image, data);
}

// A small file moves out of its inode slot to a block inside the write that
// grows it past the slot (src/meta/inline_data.cc), and back into the slot
// after a truncate to 0. At every drain of those calls, a power loss (durable
// bytes only, or with newer words torn in) leaves the file as it was before
// the call or as it is after, never empty or mixed.
TEST(CrashRegression, InlineFileMovesToABlockAndBackAtomically) {
  RegionDram* dram = nullptr;
  auto fs = mount_small_region(&dram);
  ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
  Cred cred{1000, 1000, 022, 1};
  auto a = (*fs)->create(1, "small", 0644, O_RDWR, cred);
  ASSERT_TRUE(a.is_ok());
  const Ino ino = a->ino;
  const std::string small(100, 's');
  ASSERT_TRUE((*fs)->write(ino, 0, small.data(), small.size(), false).is_ok());
  ASSERT_EQ((*fs)->getattr(ino)->blocks, 0u);

  // Contents of the file in an image, or a description of why there are none.
  auto contents = [&](std::vector<std::byte> image) -> std::string {
    auto mounted = Filesystem::mount(RegionDram::from_image(std::move(image)), MountOptions{});
    if (!mounted.is_ok()) return "mount failed: " + mounted.status().to_string();
    std::string out(3 * 4096, '\0');
    auto n = (*mounted)->read_copy(ino, 0, out.data(), out.size());
    if (!n.is_ok()) return "read failed: " + n.status().to_string();
    out.resize(*n);
    return out;
  };
  // Runs `call`, crashing at each of its drains; every image must read as
  // `before` or `after`.
  auto every_drain = [&](const std::string& what, const std::string& before,
                         const std::string& after, const std::function<void()>& call) {
    std::vector<std::vector<std::byte>> images;
    dram->set_drain_observer([&](uint64_t drain) {
      images.push_back(dram->crash(RegionDram::CrashMode::kDrop));
      images.push_back(dram->crash(RegionDram::CrashMode::kTear, drain * 7 + 1));
    });
    call();
    dram->set_drain_observer(nullptr);
    images.push_back(dram->crash(RegionDram::CrashMode::kDrop));
    EXPECT_GE(images.size(), 3u) << what << ": no drain observed";
    bool saw_after = false;
    for (size_t i = 0; i < images.size(); ++i) {
      std::string got = contents(std::move(images[i]));
      EXPECT_TRUE(got == before || got == after)
          << what << ", image " << i << ": " << got.size() << " bytes: " << got.substr(0, 60);
      saw_after |= got == after;
    }
    EXPECT_TRUE(saw_after) << what << ": no image shows the change";
  };

  std::string grown = small + std::string(3000, 'g');
  every_drain("write past the slot", small, grown, [&] {
    ASSERT_TRUE((*fs)->write(ino, 100, grown.data() + 100, 3000, false).is_ok());
  });
  ASSERT_EQ((*fs)->getattr(ino)->blocks, 8u);

  SetAttr to_zero;
  to_zero.valid = SetAttr::kSize;
  to_zero.size = 0;
  every_drain("truncate to 0", grown, "", [&] {
    ASSERT_TRUE((*fs)->setattr(ino, to_zero).is_ok());
  });
  ASSERT_EQ((*fs)->getattr(ino)->blocks, 0u);

  const std::string again(50, 'a');
  every_drain("small write after the truncate", "", again, [&] {
    ASSERT_TRUE((*fs)->write(ino, 0, again.data(), again.size(), false).is_ok());
  });
  EXPECT_EQ((*fs)->getattr(ino)->blocks, 0u);
}

}  // namespace
}  // namespace sealfs::crash
