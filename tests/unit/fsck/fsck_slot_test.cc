// Crc-valid slots whose bytes disagree with their inode's type (a retyped
// or resized inode sealed again): the daemon refuses each image
// (decode_inode, load_inode), fsck -n reports, -y repairs with the least
// loss, and the repaired image mounts. Each used to be served, and fsck
// called most of them clean (adversarial campaign of 2026-12-07).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>

#include "fsck_fixture.h"

namespace sealfs::fsck::testing {
namespace {

class FsckSlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = populated().image;
    geo_ = populated().geo;
  }
  const Populated& p() const { return populated(); }
  format::DiskInode inode(Ino ino) const { return get_inode(image_, geo_, ino); }
  void put(Ino ino, const format::DiskInode& d) { put_inode(image_, geo_, ino, d); }
  // Writes `d`, a long symlink's slot, as a crash between the two
  // transactions of free_inode leaves it: its block freed, its slot not.
  void put_without_its_block(Ino ino, format::DiskInode d) {
    d.extent_count.set(0);
    d.u.extents[0] = format::DiskExtent{};
    d.blocks.set(d.blocks.get() - 1);
    put(ino, d);
  }
  // The daemon's synchronous mount refuses the damaged image, naming `what`.
  void expect_mount_refused(const std::string& what) {
    auto fs = Filesystem::mount(RegionDram::from_image(image_), mount_options());
    ASSERT_FALSE(fs.is_ok()) << "mounted a slot holding " << what;
    EXPECT_EQ(fs.status().code(), Code::kCorruption) << fs.status().to_string();
    EXPECT_NE(fs.status().message().find(what), std::string::npos) << fs.status().to_string();
  }
  std::string read_file(const Bytes& image, Ino ino, size_t max) {
    auto fs = Filesystem::mount(RegionDram::from_image(image), mount_options());
    EXPECT_TRUE(fs.is_ok()) << fs.status().to_string();
    if (!fs.is_ok()) return "";
    std::string buf(max, '\0');
    auto got = (*fs)->read_copy(ino, 0, buf.data(), buf.size());
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    buf.resize(got.is_ok() ? *got : 0);
    return buf;
  }
  Bytes image_;
  Geometry geo_;
};

// The campaign's case: the daemon served the file as 100 zeros.
TEST_F(FsckSlotTest, AnInlineFileThatLostItsFlagGetsItBack) {
  format::DiskInode d = inode(p().tiny);
  d.flags.set(d.flags.get() & ~format::kInodeInlineData);
  put(p().tiny, d);
  ASSERT_NO_FATAL_FAILURE(expect_mount_refused("bytes in the slot after its 0 extents"));
  Bytes fixed = expect_round_trip(image_, "inline_flag_lost");
  EXPECT_NE(get_inode(fixed, geo_, p().tiny).flags.get() & format::kInodeInlineData, 0u);
  EXPECT_EQ(read_file(fixed, p().tiny, 200), std::string(100, 't'));
}

TEST_F(FsckSlotTest, BytesAfterTheExtentsAreZeroedAndTheFileKept) {
  format::DiskInode d = inode(p().file2);
  const uint32_t count = d.extent_count.get();
  ASSERT_LT(count, format::kInlineExtents);
  reinterpret_cast<unsigned char*>(&d.u.extents[count])[3] = 0x40;
  put(p().file2, d);
  ASSERT_NO_FATAL_FAILURE(expect_mount_refused("bytes in the slot after its"));
  Bytes fixed = expect_round_trip(image_, "slot_stray_bytes");
  EXPECT_EQ(read_file(fixed, p().file2, 200000), std::string(100000, 'y'));
}

TEST_F(FsckSlotTest, ADeviceNumberOnARegularFileIsCleared) {
  format::DiskInode d = inode(p().file2);
  d.rdev.set(0x0103);
  put(p().file2, d);
  ASSERT_NO_FATAL_FAILURE(expect_mount_refused("device number on an inode that is no device"));
  Bytes fixed = expect_round_trip(image_, "rdev_not_device");
  EXPECT_EQ(get_inode(fixed, geo_, p().file2).rdev.get(), 0u);
  EXPECT_EQ(read_file(fixed, p().file2, 200000), std::string(100000, 'y'));
}

// A target kept in the slot holds at most 144 bytes; a longer size there
// was served as 4000 bytes read past the slot's union.
TEST_F(FsckSlotTest, AnInlineSymlinkOfFourThousandBytesIsCleared) {
  format::DiskInode d = inode(p().link_short);
  d.size.set(4000);
  put(p().link_short, d);
  ASSERT_NO_FATAL_FAILURE(expect_mount_refused("symlink target of 4000 bytes with 0 extents"));
  Bytes fixed = expect_round_trip(image_, "symlink_size");
  EXPECT_EQ(get_inode(fixed, geo_, p().link_short).mode.get(), 0u);
}

// A 100,000-byte file retyped as a symlink: the daemon served its first
// block as a 100,000-byte target.
TEST_F(FsckSlotTest, AFileRetypedAsASymlinkIsRefusedAndCleared) {
  format::DiskInode d = inode(p().file2);
  d.mode.set(S_IFLNK | 0777);
  put(p().file2, d);
  ASSERT_NO_FATAL_FAILURE(expect_mount_refused("symlink target of 100000 bytes"));
  Bytes fixed = expect_round_trip(image_, "symlink_size");
  EXPECT_EQ(get_inode(fixed, geo_, p().file2).mode.get(), 0u);
}

// A long target's block holds the target and zeros: a NUL inside it
// would be served as a target the kernel cuts short.
TEST_F(FsckSlotTest, ALongSymlinkWhoseBlockIsNotATargetIsRefused) {
  const uint64_t block = first_block(image_, geo_, p().link_long);
  block_ptr(image_, block)[10] = std::byte{0};
  ASSERT_NO_FATAL_FAILURE(expect_mount_refused("symlink block is not a target followed by zeros"));
  Bytes fixed = expect_round_trip(image_, "symlink_target");
  EXPECT_EQ(get_inode(fixed, geo_, p().link_long).mode.get(), 0u);
}

// An unlinked long symlink whose block was freed before its slot (a crash
// between the two transactions of free_inode) that still has a name (damage):
// fsck removes the name and frees the inode in one run. It used to keep the
// name, fix the link count to 1, and clear the symlink only in a second run.
TEST_F(FsckSlotTest, ANamedUnlinkedSymlinkWithoutItsBlockGoesInOneRun) {
  format::DiskInode d = inode(p().link_long);
  ASSERT_EQ(d.extent_count.get(), 1u);
  d.nlink.set(0);
  put_without_its_block(p().link_long, d);
  Bytes fixed = expect_round_trip(image_, "entry_to_unlinked");
  EXPECT_EQ(get_inode(fixed, geo_, p().link_long).mode.get(), 0u);
}

// The same with the orphan flag and a link count of 1: the name goes and the
// inode is freed, not moved to lost+found (review of e7adf8e).
TEST_F(FsckSlotTest, AFlaggedOrphanSymlinkWithoutItsBlockIsNotReconnected) {
  format::DiskInode d = inode(p().link_long);
  ASSERT_EQ(d.extent_count.get(), 1u);
  d.flags.set(d.flags.get() | format::kInodeOrphan);
  put_without_its_block(p().link_long, d);
  Bytes fixed = expect_round_trip(image_, "entry_to_unlinked");
  EXPECT_EQ(get_inode(fixed, geo_, p().link_long).mode.get(), 0u);
  auto fs = Filesystem::mount(RegionDram::from_image(fixed), mount_options());
  ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
  EXPECT_FALSE((*fs)->lookup(kRootIno, "lost+found").is_ok()) << "a lost+found made for nothing";
}

TEST_F(FsckSlotTest, AFifoWithASizeIsRefused) {
  format::DiskInode d = inode(p().tiny);
  d.mode.set(S_IFIFO | 0644);
  d.flags.set(d.flags.get() & ~format::kInodeInlineData);
  put(p().tiny, d);
  ASSERT_NO_FATAL_FAILURE(expect_mount_refused("fifo, socket or device with a size or a block map"));
  // Kept, as a fifo: nothing tells which of the mode and the size is wrong.
  Bytes fixed = expect_round_trip(image_, "special_extents");
  format::DiskInode after = get_inode(fixed, geo_, p().tiny);
  EXPECT_TRUE(S_ISFIFO(after.mode.get()));
  EXPECT_EQ(after.size.get(), 0u);
}

}  // namespace
}  // namespace sealfs::fsck::testing
