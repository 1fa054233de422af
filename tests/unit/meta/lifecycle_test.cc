#include <fcntl.h>

#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "media/journal.h"
#include "meta/inode.h"
#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;

class LifecycleTest : public MetaTest {
 protected:
  void SetUp() override { format(); }
};

TEST_F(LifecycleTest, UnlinkedOpenFileLivesUntilRelease) {
  Attr f = make_file(kRootIno, "o");
  write_str(f.ino, 0, std::string(50000, 'o'));
  uint64_t free_with_file = fs_->statfs().free_blocks;
  ASSERT_TRUE(fs_->unlink(kRootIno, "o").is_ok());
  EXPECT_EQ(read_all(f.ino).size(), 50000u);
  EXPECT_EQ(fs_->getattr(f.ino)->nlink, 0u);
  fs_->release(f.ino);
  EXPECT_TRUE(fs_->getattr(f.ino).is_ok());  // still looked up
  fs_->forget(f.ino, 1);
  EXPECT_EQ(fs_->getattr(f.ino).status().code(), Code::kStale);
  EXPECT_EQ(fs_->statfs().free_blocks, free_with_file + 13);
}

// The kernel's lookup count is 64 bits and a forget may drop more than 2^32
// of them at once: the daemon's 32-bit count takes the whole amount.
TEST_F(LifecycleTest, AForgetOfMoreThan32BitsOfLookupsFreesTheFile) {
  Attr f = make_file(kRootIno, "o");
  ASSERT_TRUE(fs_->unlink(kRootIno, "o").is_ok());
  fs_->release(f.ino);
  fs_->forget(f.ino, uint64_t{1} << 32);
  EXPECT_EQ(fs_->getattr(f.ino).status().code(), Code::kStale);
}

TEST_F(LifecycleTest, CrashWithOpenUnlinkedFileFreesAtNextMount) {
  Attr f = make_file(kRootIno, "o");
  write_str(f.ino, 0, std::string(50000, 'o'));
  uint64_t free_with_file = fs_->statfs().free_blocks;
  uint64_t free_inodes = fs_->statfs().free_inodes;
  ASSERT_TRUE(fs_->unlink(kRootIno, "o").is_ok());
  crash_and_remount();
  EXPECT_EQ(stats_.orphans_freed, 1u);
  EXPECT_EQ(fs_->statfs().free_blocks, free_with_file + 13);
  EXPECT_EQ(fs_->statfs().free_inodes, free_inodes + 1);
  // The generation moves on when the number is reused.
  Attr g = make_file(kRootIno, "reuse");
  if (g.ino == f.ino) {
    EXPECT_GT(g.generation, f.generation);
  }
}

// The orphan list is singly linked from the superblock: freeing an inode
// from its middle must relink its predecessor, or every orphan after it is
// lost to the next mount (and its inode and blocks leak).
TEST_F(LifecycleTest, FreeingAMiddleOrphanKeepsTheRestOfTheList) {
  Attr first = make_file(kRootIno, "first");  // the root directory gets its first block
  ASSERT_TRUE(fs_->unlink(kRootIno, "first").is_ok());
  fs_->release(first.ino);
  fs_->forget(first.ino, 1);
  const uint64_t free_inodes = fs_->statfs().free_inodes;
  const uint64_t free_blocks = fs_->statfs().free_blocks;
  std::vector<Attr> files;
  for (int i = 0; i < 4; ++i) {
    files.push_back(make_file(kRootIno, "o" + std::to_string(i)));
    write_str(files.back().ino, 0, std::string(8192, static_cast<char>('a' + i)));
    ASSERT_TRUE(fs_->unlink(kRootIno, "o" + std::to_string(i)).is_ok());
  }
  // The list is o3 -> o2 -> o1 -> o0: free o2 and o1, from its middle.
  for (int i : {2, 1}) {
    fs_->release(files[i].ino);
    fs_->forget(files[i].ino, 1);
  }
  crash_and_remount();
  EXPECT_EQ(stats_.orphans_freed, 2u);
  EXPECT_EQ(fs_->statfs().free_inodes, free_inodes);
  EXPECT_EQ(fs_->statfs().free_blocks, free_blocks);
}

// A damaged orphan list that comes back to an inode already on it: the
// mount's load of the links (load_orphan_links) stops there instead of
// going round it, and the mount refuses the image as before (the orphan
// pass finds the loop), writing nothing.
TEST_F(LifecycleTest, AnOrphanListThatLoopsIsRefused) {
  std::vector<Attr> files;
  for (int i = 0; i < 2; ++i) {
    files.push_back(make_file(kRootIno, "o" + std::to_string(i)));
    ASSERT_TRUE(fs_->unlink(kRootIno, "o" + std::to_string(i)).is_ok());
  }
  // The list is o1 -> o0; point o0 back at o1, in an image whose journal
  // was replayed (a replay would put the slot back).
  auto replayed = RegionDram::from_image(dram()->crash(RegionDram::CrashMode::kDrop));
  {
    auto geo = read_superblock(*replayed);
    ASSERT_TRUE(geo.is_ok());
    const JournalArea area{geo->geometry.journal_start, geo->geometry.journal_blocks};
    ASSERT_TRUE(Journal::open(*replayed, area).is_ok());
  }
  auto image = replayed->crash(RegionDram::CrashMode::kDrop);
  auto sb = read_superblock(*RegionDram::from_image(image));
  ASSERT_TRUE(sb.is_ok());
  ASSERT_EQ(sb->orphan_head, files[1].ino);
  format::DiskInode slot{};
  const uint64_t at = inode_offset(sb->geometry, files[0].ino);
  std::memcpy(&slot, image.data() + at, sizeof(slot));
  ASSERT_EQ(slot.orphan_next.get(), 0u);
  slot.orphan_next.set(files[1].ino);
  seal_inode_crc(slot);
  std::memcpy(image.data() + at, &slot, sizeof(slot));
  fs_.reset();
  auto mounted = Filesystem::mount(RegionDram::from_image(image), MountOptions{});
  ASSERT_FALSE(mounted.is_ok());
  EXPECT_EQ(mounted.status().code(), Code::kCorruption) << mounted.status().to_string();
  EXPECT_NE(mounted.status().message().find("orphan list is broken"), std::string::npos)
      << mounted.status().to_string();
}

TEST_F(LifecycleTest, UnmountFreesRemainingOrphans) {
  Attr f = make_file(kRootIno, "o");
  write_str(f.ino, 0, "x");
  ASSERT_TRUE(fs_->unlink(kRootIno, "o").is_ok());
  clean_remount();
  EXPECT_EQ(stats_.orphans_freed, 0u);
  EXPECT_EQ(fs_->getattr(f.ino).status().code(), Code::kStale);
}

TEST_F(LifecycleTest, ReadOnlyMountRefusesMutations) {
  make_file(kRootIno, "f");
  MountOptions options;
  options.read_only = true;
  clean_remount(options);
  EXPECT_EQ(fs_->mkdir(kRootIno, "d", 0755, user()).status().code(), Code::kReadOnly);
  EXPECT_EQ(fs_->unlink(kRootIno, "f").code(), Code::kReadOnly);
  Ino f = fs_->lookup(kRootIno, "f")->ino;
  EXPECT_EQ(fs_->write(f, 0, "x", 1, false).status().code(), Code::kReadOnly);
  EXPECT_EQ(fs_->setxattr(f, "user.a", "x", 1, 0).code(), Code::kReadOnly);
}

TEST_F(LifecycleTest, CorruptInodeFailsMountWithBadCrc) {
  Attr f = make_file(kRootIno, "f");
  ASSERT_TRUE(fs_->unmount().is_ok());
  auto image = dram()->image();
  fs_.reset();
  auto region = RegionDram::from_image(std::move(image));
  // Flip a byte of the file's inode slot (inode table located through the
  // superblock).
  format::DiskSuperblock sb;
  std::memcpy(&sb, region->data(), sizeof(sb));
  uint64_t at = sb.inode_start.get() * 4096 + (f.ino - 1) * 256 + 40;
  std::byte bad{0x5a};
  region->corrupt(at, &bad, 1);
  auto fs = Filesystem::mount(std::move(region), {});
  ASSERT_FALSE(fs.is_ok());
  EXPECT_EQ(fs.status().code(), Code::kBadCrc);
  EXPECT_NE(fs.status().message().find("inode " + std::to_string(f.ino)), std::string::npos);
}

// A region marked as needing a check (damage found while mounted) mounts
// read-only only, names who had it mounted, and keeps the mark through a
// read-only mount; a read-write mount records its owner.
TEST_F(LifecycleTest, NeedsCheckStateAllowsOnlyReadOnlyMounts) {
  make_file(kRootIno, "f");
  ASSERT_TRUE(fs_->unmount().is_ok());
  auto image = dram()->image();
  fs_.reset();
  MountOptions rw;
  rw.owner = {777, "hostA", "/mnt/a"};
  {
    auto fs = Filesystem::mount(RegionDram::from_image(image), rw);
    ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
    ASSERT_TRUE((*fs)->unmount().is_ok());
    image = static_cast<const RegionDram&>((*fs)->region()).image();
  }
  auto region = RegionDram::from_image(image);
  auto sb = read_superblock(*region);
  ASSERT_TRUE(sb.is_ok());
  EXPECT_EQ(sb->mount_pid, 777u);
  EXPECT_EQ(sb->mount_host, "hostA");
  EXPECT_EQ(sb->mount_point, "/mnt/a");
  EXPECT_EQ(sb->state, format::kStateClean);

  // Mark it the way a daemon that met damage does (format.h), crc and all.
  sb->state = format::kStateNeedsCheck;
  format::DiskSuperblock disk = encode_superblock(*sb);
  region->corrupt(0, reinterpret_cast<const std::byte*>(&disk), sizeof(disk));
  image = region->image();

  auto refused = Filesystem::mount(RegionDram::from_image(image), rw);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), Code::kCorruption);
  EXPECT_NE(refused.status().message().find("needing a check"), std::string::npos);
  EXPECT_NE(refused.status().message().find("pid 777 on host hostA, mounted on /mnt/a"),
            std::string::npos)
      << refused.status().message();

  MountOptions ro;
  ro.read_only = true;
  auto fs = Filesystem::mount(RegionDram::from_image(image), ro);
  ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
  EXPECT_TRUE((*fs)->lookup(kRootIno, "f").is_ok());
  ASSERT_TRUE((*fs)->unmount().is_ok());
}

}  // namespace
}  // namespace sealfs::testing_meta
