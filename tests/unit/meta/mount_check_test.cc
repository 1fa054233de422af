// Mount-time cross-checks (mount_checks.cc): a block bitmap that disagrees
// with the blocks files reference, and link counts below the names that
// point at an inode, refuse the mount with kCorruption; harmless excess
// (leaked bits, counts above the names) mounts with a warning.
//
// Each refusal test also shows what a mount that trusted the image would
// do: that branch runs only when the mount wrongly succeeds.
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>

#include <cstring>

#include "media/superblock.h"
#include "meta/directory.h"
#include "meta/inode.h"
#include "meta_fixture.h"
#include "sealfs/format.h"
#include "support/log_capture.h"
#include "util/crc32c.h"
#include "util/log.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;
using Bytes = std::vector<std::byte>;

using testing_support::LogCapture;

// 4 KiB blocks, each starting with its own number, so a misplaced block shows.
std::string pattern(int blocks, char fill) {
  std::string s(static_cast<size_t>(blocks) * format::kBlockSize, fill);
  for (int b = 0; b < blocks; ++b) {
    std::string tag = "block " + std::to_string(b);
    std::memcpy(s.data() + static_cast<size_t>(b) * format::kBlockSize, tag.data(), tag.size());
  }
  return s;
}

class MountCheckTest : public MetaTest {
 protected:
  void SetUp() override { format(16ull << 20, 1024); }

  Attr file_with(const std::string& name, const std::string& data) {
    Attr a = make_file(kRootIno, name);
    write_str(a.ino, 0, data);
    fs_->release(a.ino);
    return a;
  }
  // Clean unmount; the image is then edited in image_.
  void unmount_to_image() {
    ASSERT_TRUE(fs_->unmount().is_ok());
    image_ = dram()->image();
    fs_.reset();
    auto sb = read_superblock(*RegionDram::from_image(image_));
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    geo_ = sb->geometry;
  }
  Result<std::unique_ptr<Filesystem>> mount_image(MountOptions options = {}) {
    return Filesystem::mount(RegionDram::from_image(image_), options, &stats_);
  }
  // Takes a mount that should have been refused, to show what it serves.
  void adopt(Result<std::unique_ptr<Filesystem>>& mounted) { fs_ = std::move(*mounted); }

  format::DiskInode inode(Ino ino) const {
    format::DiskInode d{};
    std::memcpy(&d, image_.data() + inode_offset(geo_, ino), sizeof(d));
    return d;
  }
  void put_inode(Ino ino, format::DiskInode d) {
    seal_inode_crc(d);  // a structurally valid lie
    std::memcpy(image_.data() + inode_offset(geo_, ino), &d, sizeof(d));
  }
  void set_bits(uint64_t block, uint64_t count, bool on) {
    for (uint64_t b = block; b < block + count; ++b) {
      uint64_t i = b - geo_.data_start;
      auto& byte = image_[geo_.bitmap_start * format::kBlockSize + i / 8];
      auto mask = std::byte{static_cast<unsigned char>(1u << (i % 8))};
      byte = on ? (byte | mask) : (byte & ~mask);
    }
  }
  void put_orphan_head(Ino ino) {
    auto sb = read_superblock(*RegionDram::from_image(image_));
    ASSERT_TRUE(sb.is_ok());
    sb->orphan_head = ino;
    auto disk = encode_superblock(*sb);
    std::memcpy(image_.data(), &disk, sizeof(disk));
    std::memcpy(image_.data() + geo_.backup_block() * format::kBlockSize, &disk, sizeof(disk));
  }
  // One live quarantine entry (flags 0: the blocks belong to the table)
  // in the first holder block, as the allocator writes it.
  void put_quarantine(uint64_t block, uint64_t count, Ino from) {
    std::byte* hb = image_.data() + geo_.holder_start * format::kBlockSize;
    format::DiskHolderEntry e{};
    e.pid.set(4242);
    e.start_time.set(7);
    e.ino.set(from);
    e.region_block.set(block);
    e.block_count.set(count);
    std::memcpy(hb + sizeof(format::DiskHolderBlockHeader), &e, sizeof(e));
    format::DiskHolderBlockHeader h{};
    h.magic.set(format::kHolderMagic);
    h.count.set(1);
    std::memcpy(hb, &h, sizeof(h));
    h.crc.set(crc32c_with_hole(hb, format::kBlockSize,
                               offsetof(format::DiskHolderBlockHeader, crc)));
    std::memcpy(hb, &h, sizeof(h));
  }
  static MountOptions holders_alive() {
    MountOptions options;
    options.holder_alive = [](uint32_t, uint64_t) { return true; };
    return options;
  }
  static bool mentions(const Status& s, const std::string& what) {
    return s.message().find(what) != std::string::npos;
  }

  Bytes image_;
  Geometry geo_;
};

// --------------------------------------------------------------- bitmap

TEST_F(MountCheckTest, BitsClearedInTheMiddleOfAnExtentRefuseTheMount) {
  const std::string data = pattern(16, 'o');
  Attr f = file_with("old", data);
  unmount_to_image();
  format::DiskInode d = inode(f.ino);
  ASSERT_EQ(d.extent_count.get(), 1u);
  const uint64_t start = d.u.extents[0].region_block.get();
  ASSERT_EQ(d.u.extents[0].length.get(), 16u);
  // The first and last block keep their bits: only a check of every block
  // sees the damage.
  set_bits(start + 6, 4, false);

  auto mounted = mount_image();
  if (mounted.is_ok()) {
    // What trusting the bitmap does: the next writer gets the old file's
    // blocks and overwrites its data.
    // (A new file of the hole's size: best fit puts it there.)
    adopt(mounted);
    Attr g = file_with("new", pattern(4, 'N'));
    EXPECT_TRUE(read_all(f.ino, 0, data.size()) == data) << "inode " << g.ino << " took its blocks";
    FAIL() << "mounted a bitmap with 4 referenced blocks cleared";
  }
  const Status& s = mounted.status();
  EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
  EXPECT_TRUE(mentions(s, "inode " + std::to_string(f.ino))) << s.to_string();
  EXPECT_TRUE(mentions(s, "[" + std::to_string(start + 6) + ", +4)")) << s.to_string();
  EXPECT_TRUE(mentions(s, "run fsck.sealfs")) << s.to_string();
}

TEST_F(MountCheckTest, ReadOnlyMountChecksTheBitmapToo) {
  Attr f = file_with("old", pattern(8, 'o'));
  unmount_to_image();
  set_bits(inode(f.ino).u.extents[0].region_block.get() + 3, 1, false);
  MountOptions ro;
  ro.read_only = true;
  auto mounted = mount_image(ro);
  ASSERT_FALSE(mounted.is_ok());
  EXPECT_EQ(mounted.status().code(), Code::kCorruption) << mounted.status().to_string();
}

TEST_F(MountCheckTest, XattrBlockFreeInTheBitmapRefusesTheMount) {
  Attr f = file_with("x", "data");
  ASSERT_TRUE(fs_->setxattr(f.ino, "user.k", "v", 1, 0).is_ok());
  unmount_to_image();
  const uint64_t xb = inode(f.ino).xattr_block.get();
  ASSERT_NE(xb, 0u);
  set_bits(xb, 1, false);
  auto mounted = mount_image();
  ASSERT_FALSE(mounted.is_ok());
  EXPECT_EQ(mounted.status().code(), Code::kCorruption);
  EXPECT_TRUE(mentions(mounted.status(), "xattr block " + std::to_string(xb)))
      << mounted.status().to_string();
}

TEST_F(MountCheckTest, CrossLinkedExtentRefusesTheMount) {
  const std::string a_data = pattern(4, 'a');
  Attr a = file_with("a", a_data);
  Attr b = file_with("b", pattern(4, 'b'));
  unmount_to_image();
  const uint64_t a_start = inode(a.ino).u.extents[0].region_block.get();
  format::DiskInode bd = inode(b.ino);
  bd.u.extents[0].region_block.set(a_start + 1);  // b now maps a's blocks 1..4
  put_inode(b.ino, bd);

  auto mounted = mount_image();
  if (mounted.is_ok()) {
    // What serving it does: a write through b lands in a.
    adopt(mounted);
    write_str(b.ino, 0, std::string(format::kBlockSize, 'B'));
    EXPECT_TRUE(read_all(a.ino, 0, a_data.size()) == a_data) << "a write to b changed a";
    FAIL() << "mounted two files sharing blocks";
  }
  const Status& s = mounted.status();
  EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
  EXPECT_TRUE(mentions(s, "cross-linked")) << s.to_string();
  EXPECT_TRUE(mentions(s, "block " + std::to_string(a_start + 1))) << s.to_string();
  EXPECT_TRUE(mentions(s, "inode " + std::to_string(a.ino))) << s.to_string();
  EXPECT_TRUE(mentions(s, "inode " + std::to_string(b.ino))) << s.to_string();
}

TEST_F(MountCheckTest, LeakedBitsMountWithAWarning) {
  const std::string data = pattern(4, 'k');
  Attr f = file_with("kept", data);
  unmount_to_image();
  set_bits(geo_.data_start + geo_.data_blocks - 3, 3, true);
  LogCapture log;
  auto mounted = mount_image();
  ASSERT_TRUE(mounted.is_ok()) << mounted.status().to_string();
  adopt(mounted);
  EXPECT_NE(log.text().find("3 block(s) marked used in the bitmap belong to nothing"),
            std::string::npos)
      << log.text();
  EXPECT_TRUE(read_all(f.ino, 0, data.size()) == data);
}

TEST_F(MountCheckTest, CleanImageMountsWithoutWarnings) {
  Attr f = file_with("f", pattern(40, 'c'));
  ASSERT_TRUE(fs_->setxattr(f.ino, "user.k", "v", 1, 0).is_ok());
  ASSERT_TRUE(fs_->mkdir(kRootIno, "d", 0755, user()).is_ok());
  Attr s = make_file(kRootIno, "sparse");
  for (int i = 0; i < 400; i += 2) write_str(s.ino, uint64_t(i) * format::kBlockSize, "z");
  ASSERT_TRUE(fs_->link(f.ino, kRootIno, "g").is_ok());
  LogCapture log;
  clean_remount();
  EXPECT_EQ(log.text().find("[warning]"), std::string::npos) << log.text();
}

// --------------------------------------------------------------- link counts

TEST_F(MountCheckTest, NamedInodeWithLinkCountZeroRefusesTheMount) {
  const std::string data = pattern(3, 'n');
  Attr f = file_with("named", data);
  unmount_to_image();
  format::DiskInode d = inode(f.ino);
  d.nlink.set(0);
  put_inode(f.ino, d);

  auto mounted = mount_image();
  if (mounted.is_ok()) {
    // What serving it does: the unmount frees the "unlinked" inode and the
    // name is left pointing at a free inode.
    adopt(mounted);
    ASSERT_TRUE(fs_->unmount().is_ok());
    auto again = Filesystem::mount(RegionDram::from_image(dram()->image()), {});
    EXPECT_TRUE(again.is_ok()) << "after one mount and unmount: " << again.status().to_string();
    FAIL() << "mounted a named inode with link count 0";
  }
  const Status& s = mounted.status();
  EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
  EXPECT_TRUE(mentions(s, "inode " + std::to_string(f.ino) + ": link count 0 but 1 name(s)"))
      << s.to_string();
  EXPECT_TRUE(mentions(s, "run fsck.sealfs")) << s.to_string();
}

TEST_F(MountCheckTest, OrphanListedInodeWithANameIsNotFreed) {
  const std::string data = pattern(3, 'p');
  Attr f = file_with("listed", data);
  unmount_to_image();
  format::DiskInode d = inode(f.ino);
  d.nlink.set(0);
  d.flags.set(format::kInodeOrphan);
  put_inode(f.ino, d);
  put_orphan_head(f.ino);

  auto mounted = mount_image();
  if (mounted.is_ok()) {
    // What the mount's orphan pass does with it: frees it under its name.
    adopt(mounted);
    EXPECT_EQ(stats_.orphans_freed, 0u);
    EXPECT_TRUE(fs_->getattr(f.ino).is_ok()) << "freed under its name";
    FAIL() << "mounted a named inode listed as an orphan with link count 0";
  }
  EXPECT_EQ(mounted.status().code(), Code::kCorruption) << mounted.status().to_string();
  EXPECT_TRUE(mentions(mounted.status(), "inode " + std::to_string(f.ino)));
}

TEST_F(MountCheckTest, LinkCountBelowTheNamesRefusesTheMount) {
  Attr f = file_with("one", "x");
  ASSERT_TRUE(fs_->link(f.ino, kRootIno, "two").is_ok());
  unmount_to_image();
  format::DiskInode d = inode(f.ino);
  ASSERT_EQ(d.nlink.get(), 2u);
  d.nlink.set(1);
  put_inode(f.ino, d);
  auto mounted = mount_image();
  ASSERT_FALSE(mounted.is_ok());
  EXPECT_EQ(mounted.status().code(), Code::kCorruption);
  EXPECT_TRUE(mentions(mounted.status(), "link count 1 but 2 name(s)"))
      << mounted.status().to_string();
}

TEST_F(MountCheckTest, DirectoryLinkCountBelowItsSubdirectoriesRefusesTheMount) {
  auto d = fs_->mkdir(kRootIno, "d", 0755, user());
  ASSERT_TRUE(d.is_ok());
  ASSERT_TRUE(fs_->mkdir(d->ino, "e", 0755, user()).is_ok());
  unmount_to_image();
  format::DiskInode disk = inode(d->ino);
  ASSERT_EQ(disk.nlink.get(), 3u);
  disk.nlink.set(2);
  put_inode(d->ino, disk);
  auto mounted = mount_image();
  ASSERT_FALSE(mounted.is_ok());
  EXPECT_EQ(mounted.status().code(), Code::kCorruption);
  EXPECT_TRUE(mentions(mounted.status(), "inode " + std::to_string(d->ino) + ": link count 2"))
      << mounted.status().to_string();
}

TEST_F(MountCheckTest, LinkCountAboveTheNamesMountsWithAWarning) {
  const std::string data = pattern(2, 'h');
  Attr f = file_with("high", data);
  unmount_to_image();
  format::DiskInode d = inode(f.ino);
  d.nlink.set(3);
  put_inode(f.ino, d);
  LogCapture log;
  auto mounted = mount_image();
  ASSERT_TRUE(mounted.is_ok()) << mounted.status().to_string();
  adopt(mounted);
  EXPECT_NE(log.text().find("1 inode(s) have a link count above their names (first: inode " +
                            std::to_string(f.ino) + ")"),
            std::string::npos)
      << log.text();
  EXPECT_TRUE(read_all(f.ino, 0, data.size()) == data);
}

// --------------------------------------------------------------- holder table

TEST_F(MountCheckTest, QuarantinedBlocksAreReferencedNotLeaked) {
  Attr f = file_with("f", "x");
  unmount_to_image();
  const uint64_t last = geo_.data_start + geo_.data_blocks - 2;
  set_bits(last, 2, true);
  put_quarantine(last, 2, f.ino);
  LogCapture log;
  auto mounted = mount_image(holders_alive());
  ASSERT_TRUE(mounted.is_ok()) << mounted.status().to_string();
  adopt(mounted);
  ASSERT_EQ(fs_->quarantine_entries().size(), 1u);
  EXPECT_EQ(log.text().find("belong to nothing"), std::string::npos) << log.text();
}

TEST_F(MountCheckTest, FileBlocksAlsoQuarantinedRefuseTheMount) {
  Attr f = file_with("f", pattern(4, 'q'));
  unmount_to_image();
  const uint64_t start = inode(f.ino).u.extents[0].region_block.get();
  put_quarantine(start + 1, 2, f.ino);  // blocks the file still maps
  auto mounted = mount_image(holders_alive());
  ASSERT_FALSE(mounted.is_ok());
  const Status& s = mounted.status();
  EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
  EXPECT_TRUE(mentions(s, "cross-linked")) << s.to_string();
  EXPECT_TRUE(mentions(s, "quarantined for pid 4242")) << s.to_string();
  EXPECT_TRUE(mentions(s, "inode " + std::to_string(f.ino) + ": extent")) << s.to_string();
}

// A directory whose size lies (a damaged inode, re-sealed): looking a name
// up in it is Corruption, found at its first unmapped block, and costs no
// more memory than the blocks it has. The index used to be sized from the
// size alone: 1 TiB asked for 512 MiB here, and a size past 2^44 wrapped
// in 32 bits and hid the directory's entries. (tests/fuzz/image_fuzz found
// the first: an out-of-memory.)
// A directory is blocks 0..k-1 and its size is k blocks (fsck's dir_layout).
// A size below its blocks was served (entries past it hidden), and the next
// create in it mapped block 0 again and aborted the daemon; a size past
// them must not make a lookup allocate for it. Both refuse the mount, with
// no memory spent on the size (adversarial campaign of 2026-12-07).
TEST_F(MountCheckTest, DirectorySizeOtherThanItsBlocksRefusesTheMount) {
  const Ino dir = fs_->mkdir(kRootIno, "d", 0755, Cred{})->ino;
  fs_->forget(dir, 1);
  for (int i = 0; i < 200; ++i) {  // several blocks of names
    ASSERT_TRUE(fs_->mknod(dir, "a_longish_name_for_entry_" + std::to_string(i), S_IFREG | 0644, 0,
                           Cred{})
                    .is_ok());
  }
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  const uint64_t real_size = inode(dir).size.get();
  ASSERT_GE(real_size, 2 * format::kBlockSize);
  for (uint64_t size : {uint64_t{0}, uint64_t{format::kBlockSize}, real_size + 1000,
                        uint64_t{1} << 40, ((uint64_t{1} << 32) + 1) * format::kBlockSize}) {
    SCOPED_TRACE("size " + std::to_string(size));
    format::DiskInode d = inode(dir);
    d.size.set(size);
    put_inode(dir, d);
    struct rusage before {}, after {};
    getrusage(RUSAGE_SELF, &before);
    auto mounted = mount_image();
    getrusage(RUSAGE_SELF, &after);
    ASSERT_FALSE(mounted.is_ok());
    EXPECT_EQ(mounted.status().code(), Code::kCorruption);
    EXPECT_TRUE(mentions(mounted.status(), "directory size")) << mounted.status().to_string();
    EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 64 * 1024) << "KiB of peak RSS for one mount";
  }
  format::DiskInode d = inode(dir);
  d.size.set(real_size);
  put_inode(dir, d);
  auto mounted = mount_image();
  ASSERT_TRUE(mounted.is_ok()) << mounted.status().to_string();
}


// ------------------------------------------------------- directory entries

// An entry that calls a directory a file refuses the mount, and with the
// verifier in the background nothing moves: every change waits for the
// verifier, which finds the entry. (Behind that, rename orders the
// children's locks by the types in their entries and then checks the types
// against the modes, so that a move of that directory into its own subtree
// could not slip past the loop check that only directories get; no image
// reaches that check any more.)
TEST_F(MountCheckTest, RenameRefusesAnEntryWhoseTypeIsNotItsInodes) {
  auto top = fs_->mkdir(kRootIno, "top", 0755, Cred{});
  ASSERT_TRUE(top.is_ok()) << top.status().to_string();
  auto below = fs_->mkdir(top->ino, "below", 0755, Cred{});
  ASSERT_TRUE(below.is_ok()) << below.status().to_string();
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  // The root's entry for "top", retyped as a regular file.
  format::DiskInode root = inode(kRootIno);
  ASSERT_EQ(root.extent_count.get(), 1u);
  std::byte* block = image_.data() + root.u.extents[0].region_block.get() * format::kBlockSize;
  bool retyped = false;
  dir_block_for_each(block, [&](const DirBlockEntry& e) {
    if (e.name != "top") return;
    dir_block_retarget(block, e.offset, e.ino, DT_REG);
    retyped = true;
  });
  ASSERT_TRUE(retyped);
  dir_block_seal(block);  // a structurally valid lie
  auto refused = mount_image();
  ASSERT_FALSE(refused.is_ok());
  EXPECT_TRUE(mentions(refused.status(), "has type 8")) << refused.status().to_string();
  MountOptions background;
  background.background_verify = true;
  auto mounted = mount_image(background);
  ASSERT_TRUE(mounted.is_ok()) << mounted.status().to_string();
  adopt(mounted);
  Status moved = fs_->rename(kRootIno, "top", below->ino, "loop", 0);
  EXPECT_FALSE(moved.is_ok());
  // Nothing moved: "top" is still in the root, "below" still in "top".
  bool listed = false;
  ASSERT_TRUE(fs_->readdir(kRootIno, 0, [&](const DirEntry& e) {
                   listed = listed || e.name == "top";
                   return true;
                 }).is_ok());
  EXPECT_TRUE(listed);
  EXPECT_EQ(fs_->lookup(below->ino, "loop").status().code(), Code::kNotFound);
}

// An unlinked directory or long symlink has its blocks freed in one
// transaction and its slot in the next (free_inode): a crash between the
// two leaves a size without blocks, which the mount frees instead of
// refusing (the review of the slot checks, 2026-12-07; a directory's case
// was refused since the directory-size check).
TEST_F(MountCheckTest, AnUnlinkedInodeWhoseBlocksWereFreedBeforeItsSlotMounts) {
  const Ino dir = fs_->mkdir(kRootIno, "gone", 0755, Cred{})->ino;
  ASSERT_TRUE(fs_->mknod(dir, "was_here", S_IFREG | 0644, 0, Cred{}).is_ok());
  ASSERT_TRUE(fs_->unlink(dir, "was_here").is_ok());
  const Ino link = fs_->symlink(kRootIno, "far", std::string(300, 'L'), Cred{})->ino;
  fs_->forget(dir, 1);
  fs_->forget(link, 1);
  ASSERT_NO_FATAL_FAILURE(unmount_to_image());
  // The state between free_inode's two transactions, after the name went.
  format::DiskInode root = inode(kRootIno);
  std::byte* block = image_.data() + root.u.extents[0].region_block.get() * format::kBlockSize;
  std::vector<uint16_t> names;
  dir_block_for_each(block, [&](const DirBlockEntry& e) {
    if (e.name == "gone" || e.name == "far") names.push_back(e.offset);
  });
  ASSERT_EQ(names.size(), 2u);
  for (uint16_t at : names) dir_block_remove(block, at);
  dir_block_seal(block);
  root.nlink.set(root.nlink.get() - 1);
  put_inode(kRootIno, root);
  for (Ino ino : {dir, link}) {
    format::DiskInode d = inode(ino);
    ASSERT_EQ(d.extent_count.get(), 1u);
    set_bits(d.u.extents[0].region_block.get(), d.u.extents[0].length.get(), false);
    d.nlink.set(0);
    d.flags.set(d.flags.get() | format::kInodeOrphan);  // held by the kernel when unlinked
    d.orphan_next.set(ino == dir ? link : 0);
    d.extent_count.set(0);
    d.blocks.set(0);
    std::memset(static_cast<void*>(&d.u), 0, sizeof(d.u));
    ASSERT_NE(d.size.get(), 0u);
    put_inode(ino, d);
  }
  put_orphan_head(dir);
  auto mounted = mount_image();
  ASSERT_TRUE(mounted.is_ok()) << mounted.status().to_string();
  adopt(mounted);
  const StatFs counts = fs_->statfs();
  EXPECT_EQ(counts.inodes - counts.free_inodes, 1u) << "the two unlinked inodes were not freed";
  EXPECT_EQ(stats_.orphans_freed, 2u);
}

}  // namespace
}  // namespace sealfs::testing_meta
