// Inline data (format.h kInodeInlineData, src/meta/inline_data.cc): small
// regular files keep their bytes in the inode slot, and leave it for a block
// when they grow past kInlineDataMax or are mapped.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "media/superblock.h"
#include "meta/inode.h"
#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kInlineDataMax;
using format::kRootIno;
constexpr uint64_t kBlock = format::kBlockSize;

class InlineDataTest : public MetaTest {
 protected:
  void SetUp() override { format(); }
  uint64_t used_blocks() {
    StatFs s = fs_->statfs();
    return s.blocks - s.free_blocks;
  }
  uint64_t blocks_of(Ino ino) { return fs_->getattr(ino)->blocks; }
  uint64_t extents_of(Ino ino) { return *fs_->extent_count(ino); }
  // The inode's slot as it is on the region.
  format::DiskInode slot_of(Ino ino) {
    const Region& r = fs_->region();
    auto sb = read_superblock(r);
    EXPECT_TRUE(sb.is_ok());
    format::DiskInode d{};
    std::memcpy(&d, r.data() + inode_offset(sb->geometry, ino), sizeof(d));
    return d;
  }
};

std::string pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 23);
  return s;
}

TEST_F(InlineDataTest, HundredByteFileTakesNoBlockAndSurvivesCrashAndRemount) {
  Attr f = make_file(kRootIno, "small");
  const uint64_t before = used_blocks();  // the root's directory block counted
  const std::string bytes = pattern(100, 'a');
  write_str(f.ino, 0, bytes);
  EXPECT_EQ(fs_->getattr(f.ino)->size, 100u);
  EXPECT_EQ(blocks_of(f.ino), 0u);
  EXPECT_EQ(extents_of(f.ino), 0u);
  EXPECT_EQ(used_blocks(), before);
  EXPECT_EQ(read_all(f.ino), bytes);
  EXPECT_EQ(read_all(f.ino, 40, 10), bytes.substr(40, 10));
  EXPECT_EQ(read_all(f.ino, 100, 10), "");
  // On media: the flag, the bytes in the slot, zeros after them.
  format::DiskInode d = slot_of(f.ino);
  EXPECT_NE(d.flags.get() & format::kInodeInlineData, 0u);
  EXPECT_EQ(std::memcmp(d.u.data, bytes.data(), bytes.size()), 0);
  for (uint32_t i = 100; i < kInlineDataMax; ++i) ASSERT_EQ(d.u.data[i], 0) << i;
  crash_and_remount(RegionDram::CrashMode::kTear, 3);
  EXPECT_EQ(read_all(f.ino), bytes);
  clean_remount();
  EXPECT_EQ(read_all(f.ino), bytes);
  EXPECT_EQ(blocks_of(f.ino), 0u);
}

// DRAM holds no copy of an inline file's bytes (inline_data.cc): every
// other change of the inode rewrites its slot from the committed one, and
// must carry the bytes over.
TEST_F(InlineDataTest, OtherChangesOfTheInodeKeepItsBytes) {
  Attr f = make_file(kRootIno, "kept");
  const std::string bytes = pattern(120, 'q');
  write_str(f.ino, 0, bytes);
  clean_remount();  // the inode is read back from its slot
  SetAttr chmod;
  chmod.valid = SetAttr::kMode;
  chmod.mode = S_IFREG | 0600;
  ASSERT_TRUE(fs_->setattr(f.ino, chmod).is_ok());
  ASSERT_TRUE(fs_->setxattr(f.ino, "user.k", "v", 1, 0).is_ok());
  ASSERT_TRUE(fs_->rename(kRootIno, "kept", kRootIno, "renamed", 0).is_ok());
  ASSERT_TRUE(fs_->link(f.ino, kRootIno, "second").is_ok());
  EXPECT_EQ(read_all(f.ino), bytes);
  EXPECT_EQ(std::memcmp(slot_of(f.ino).u.data, bytes.data(), bytes.size()), 0);
  crash_and_remount(RegionDram::CrashMode::kTear, 5);
  EXPECT_EQ(read_all(f.ino), bytes);
  // A later change of the bytes starts from the committed ones.
  write_str(f.ino, 10, "mid");
  std::string expect = bytes;
  expect.replace(10, 3, "mid");
  EXPECT_EQ(read_all(f.ino), expect);
  clean_remount();
  EXPECT_EQ(read_all(f.ino), expect);
}

TEST_F(InlineDataTest, WritesAtOffsetsAndAppendsStayInline) {
  Attr f = make_file(kRootIno, "w");
  write_str(f.ino, 10, "hello");  // a hole in front reads as zeros
  EXPECT_EQ(read_all(f.ino), std::string(10, '\0') + "hello");
  write_str(f.ino, 2, "ab");
  auto appended = fs_->write(f.ino, 0, "tail", 4, true);
  ASSERT_TRUE(appended.is_ok());
  std::string expect = std::string(2, '\0') + "ab" + std::string(6, '\0') + "hellotail";
  EXPECT_EQ(read_all(f.ino), expect);
  // Exactly the capacity still fits.
  std::string full = pattern(kInlineDataMax, 'k');
  write_str(f.ino, 0, full);
  EXPECT_EQ(read_all(f.ino), full);
  EXPECT_EQ(blocks_of(f.ino), 0u);
  crash_and_remount();
  EXPECT_EQ(read_all(f.ino), full);
}

TEST_F(InlineDataTest, WritePastCapacityMovesToABlockInOneTransaction) {
  Attr f = make_file(kRootIno, "grow");
  std::string bytes = pattern(100, 'g');
  write_str(f.ino, 0, bytes);
  write_str(f.ino, 140, "0123456789");  // ends at 150 > 144
  bytes += std::string(40, '\0') + "0123456789";
  EXPECT_EQ(read_all(f.ino), bytes);
  EXPECT_EQ(blocks_of(f.ino), kBlock / 512);
  EXPECT_EQ(extents_of(f.ino), 1u);
  EXPECT_EQ(slot_of(f.ino).flags.get() & format::kInodeInlineData, 0u);
  crash_and_remount(RegionDram::CrashMode::kTear, 11);
  EXPECT_EQ(read_all(f.ino), bytes);
  // Further writes are ordinary block writes.
  write_str(f.ino, 3 * kBlock, "far");
  bytes.resize(3 * kBlock, '\0');
  bytes += "far";
  EXPECT_EQ(read_all(f.ino), bytes);
}

TEST_F(InlineDataTest, AWriteFarAwayKeepsTheInlineBytesAtTheStart) {
  Attr f = make_file(kRootIno, "sparse");
  write_str(f.ino, 0, "head");
  write_str(f.ino, 1 << 20, "far");
  EXPECT_EQ(read_all(f.ino, 0, 8), std::string("head") + std::string(4, '\0'));
  EXPECT_EQ(read_all(f.ino, 1 << 20, 8), "far");
  EXPECT_EQ(blocks_of(f.ino), 2 * kBlock / 512);
  EXPECT_EQ(*fs_->lseek(f.ino, 0, SEEK_HOLE), kBlock);
}

TEST_F(InlineDataTest, AnEmptyFileThatGrowsLargeNeedsNoBlockForItsSlot) {
  Attr f = make_file(kRootIno, "empty");
  write_str(f.ino, 0, std::string(3 * kBlock, 'e'));
  EXPECT_EQ(blocks_of(f.ino), 3 * kBlock / 512);
  EXPECT_EQ(read_all(f.ino), std::string(3 * kBlock, 'e'));
}

TEST_F(InlineDataTest, TruncateUpDownPastCapacityAndBackToInline) {
  Attr f = make_file(kRootIno, "t");
  write_str(f.ino, 0, "abcdefgh");
  SetAttr sa;
  sa.valid = SetAttr::kSize;
  sa.size = 20;
  ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  EXPECT_EQ(read_all(f.ino), std::string("abcdefgh") + std::string(12, '\0'));
  sa.size = 3;
  ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  EXPECT_EQ(read_all(f.ino), "abc");
  sa.size = 10;  // the cut bytes do not come back
  ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  EXPECT_EQ(read_all(f.ino), std::string("abc") + std::string(7, '\0'));
  EXPECT_EQ(blocks_of(f.ino), 0u);
  // Past the capacity: block 0 holds the bytes, the rest is a hole.
  sa.size = 5 * kBlock;
  ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  EXPECT_EQ(blocks_of(f.ino), kBlock / 512);
  EXPECT_EQ(read_all(f.ino), std::string("abc") + std::string(5 * kBlock - 3, '\0'));
  crash_and_remount();
  EXPECT_EQ(read_all(f.ino), std::string("abc") + std::string(5 * kBlock - 3, '\0'));
  // Down to a small size keeps the block (documented: only an empty file
  // returns to the slot).
  sa.size = 50;
  ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  EXPECT_EQ(blocks_of(f.ino), kBlock / 512);
  EXPECT_EQ(slot_of(f.ino).flags.get() & format::kInodeInlineData, 0u);
  // To zero: inline again, and the next small write takes no block.
  const uint64_t before = used_blocks();
  sa.size = 0;
  ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  EXPECT_EQ(blocks_of(f.ino), 0u);
  EXPECT_EQ(used_blocks(), before - 1);
  EXPECT_NE(slot_of(f.ino).flags.get() & format::kInodeInlineData, 0u);
  write_str(f.ino, 0, "again");
  EXPECT_EQ(blocks_of(f.ino), 0u);
  crash_and_remount();
  EXPECT_EQ(read_all(f.ino), "again");
  EXPECT_EQ(blocks_of(f.ino), 0u);
}

TEST_F(InlineDataTest, OTruncOfABlockFileReturnsItToTheSlot) {
  Attr f = make_file(kRootIno, "rewrite");
  write_str(f.ino, 0, std::string(10000, 'r'));
  ASSERT_TRUE(fs_->open(f.ino, O_WRONLY | O_TRUNC).is_ok());
  EXPECT_EQ(blocks_of(f.ino), 0u);
  write_str(f.ino, 0, "short");
  EXPECT_EQ(blocks_of(f.ino), 0u);
  EXPECT_EQ(read_all(f.ino), "short");
}

TEST_F(InlineDataTest, FallocateModesInsideTheSlot) {
  Attr f = make_file(kRootIno, "fa");
  write_str(f.ino, 0, pattern(60, 'p'));
  ASSERT_TRUE(fs_->fallocate(f.ino, 0, 0, 100).is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->size, 100u);
  EXPECT_EQ(read_all(f.ino), pattern(60, 'p') + std::string(40, '\0'));
  ASSERT_TRUE(fs_->fallocate(f.ino, FALLOC_FL_KEEP_SIZE, 0, 120).is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->size, 100u);
  ASSERT_TRUE(fs_->fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10, 20).is_ok());
  std::string expect = pattern(60, 'p') + std::string(40, '\0');
  std::memset(expect.data() + 10, 0, 20);
  EXPECT_EQ(read_all(f.ino), expect);
  ASSERT_TRUE(fs_->fallocate(f.ino, FALLOC_FL_ZERO_RANGE, 50, 80).is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->size, 130u);
  expect.resize(130, '\0');
  std::memset(expect.data() + 50, 0, 80);
  EXPECT_EQ(read_all(f.ino), expect);
  EXPECT_EQ(blocks_of(f.ino), 0u);
  // A punch far past EOF neither grows nor moves it.
  ASSERT_TRUE(
      fs_->fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1 << 20).is_ok());
  EXPECT_EQ(read_all(f.ino), std::string(130, '\0'));
  EXPECT_EQ(blocks_of(f.ino), 0u);
  crash_and_remount();
  EXPECT_EQ(read_all(f.ino), std::string(130, '\0'));
}

TEST_F(InlineDataTest, FallocatePastTheSlotMovesTheBytesFirst) {
  Attr a = make_file(kRootIno, "a");
  write_str(a.ino, 0, "keep me");
  ASSERT_TRUE(fs_->fallocate(a.ino, 0, 0, 3 * kBlock).is_ok());
  EXPECT_EQ(fs_->getattr(a.ino)->size, 3 * kBlock);
  EXPECT_EQ(blocks_of(a.ino), 3 * kBlock / 512);
  EXPECT_EQ(read_all(a.ino), std::string("keep me") + std::string(3 * kBlock - 7, '\0'));
  EXPECT_EQ(*fs_->lseek(a.ino, 0, SEEK_DATA), 0u);
  EXPECT_EQ(*fs_->lseek(a.ino, 0, SEEK_HOLE), kBlock);  // the rest is unwritten

  Attr b = make_file(kRootIno, "b");
  write_str(b.ino, 0, "0123456789");
  ASSERT_TRUE(fs_->fallocate(b.ino, FALLOC_FL_KEEP_SIZE, 0, 2 * kBlock).is_ok());
  EXPECT_EQ(fs_->getattr(b.ino)->size, 10u);
  EXPECT_EQ(blocks_of(b.ino), 2 * kBlock / 512);
  EXPECT_EQ(read_all(b.ino), "0123456789");

  Attr c = make_file(kRootIno, "c");
  write_str(c.ino, 0, "0123456789");
  ASSERT_TRUE(fs_->fallocate(c.ino, FALLOC_FL_ZERO_RANGE, 4, 2 * kBlock).is_ok());
  EXPECT_EQ(fs_->getattr(c.ino)->size, 4 + 2 * kBlock);
  EXPECT_EQ(read_all(c.ino), std::string("0123") + std::string(2 * kBlock, '\0'));
  crash_and_remount();
  EXPECT_EQ(read_all(a.ino), std::string("keep me") + std::string(3 * kBlock - 7, '\0'));
  EXPECT_EQ(read_all(b.ino), "0123456789");
  EXPECT_EQ(read_all(c.ino), std::string("0123") + std::string(2 * kBlock, '\0'));
}

TEST_F(InlineDataTest, SeekDataAndHoleSeeOneRunOfData) {
  Attr f = make_file(kRootIno, "seek");
  write_str(f.ino, 0, std::string(50, 's'));
  EXPECT_EQ(*fs_->lseek(f.ino, 0, SEEK_DATA), 0u);
  EXPECT_EQ(*fs_->lseek(f.ino, 20, SEEK_DATA), 20u);
  EXPECT_EQ(*fs_->lseek(f.ino, 0, SEEK_HOLE), 50u);
  EXPECT_EQ(fs_->lseek(f.ino, 50, SEEK_DATA).status().code(), Code::kNxio);
}

TEST_F(InlineDataTest, CopyFileRangeBetweenInlineFiles) {
  Attr a = make_file(kRootIno, "a");
  Attr b = make_file(kRootIno, "b");
  write_str(a.ino, 0, "source bytes");
  write_str(b.ino, 0, "xxxx");
  auto n = fs_->copy_file_range(a.ino, 7, b.ino, 2, 100);
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(*n, 5u);
  EXPECT_EQ(read_all(b.ino), "xxbytes");
  EXPECT_EQ(blocks_of(b.ino), 0u);
}

TEST_F(InlineDataTest, AnImageWithoutTheFeatureKeepsBlockFiles) {
  inline_data_ = false;
  format();
  Attr f = make_file(kRootIno, "old");
  write_str(f.ino, 0, "100 bytes or so");
  EXPECT_EQ(blocks_of(f.ino), kBlock / 512);
  EXPECT_EQ(slot_of(f.ino).flags.get() & format::kInodeInlineData, 0u);
  SetAttr sa;
  sa.valid = SetAttr::kSize;
  sa.size = 0;
  ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  EXPECT_EQ(slot_of(f.ino).flags.get() & format::kInodeInlineData, 0u);
  auto sb = read_superblock(fs_->region());
  ASSERT_TRUE(sb.is_ok());
  EXPECT_EQ(sb->feature_incompat & format::kFeatureIncompatInlineData, 0u);
}

TEST_F(InlineDataTest, TheGateRefusesGrowthOfASealedInlineFile) {
  SealedInodeGate gate;
  MountOptions options;
  options.gate = &gate;
  clean_remount(options);
  Attr f = make_file(kRootIno, "g");
  write_str(f.ino, 0, "1234");
  gate.sealed_ino = f.ino;
  write_str(f.ino, 0, "ab");  // inside the size: no layout change
  EXPECT_EQ(fs_->write(f.ino, 4, "x", 1, false).status().code(), Code::kLayoutSealed);
  EXPECT_EQ(fs_->write(f.ino, 0, std::string(200, 'y').data(), 200, false).status().code(),
            Code::kLayoutSealed);
  EXPECT_EQ(fs_->fallocate(f.ino, 0, 0, 100).code(), Code::kLayoutSealed);
  auto lock = fs_->lock_layout(f.ino);
  ASSERT_TRUE(lock.is_ok());
  EXPECT_EQ(fs_->layout_extents(**lock, 0, kBlock, 0, nullptr).status().code(), Code::kNxio);
  lock->reset();
  EXPECT_EQ(read_all(f.ino), "ab34");
  EXPECT_EQ(blocks_of(f.ino), 0u);
}

TEST_F(InlineDataTest, MappingMovesTheFileToAnAlignedBlockFirst) {
  Attr f = make_file(kRootIno, "map");
  const std::string bytes = pattern(77, 'm');
  write_str(f.ino, 0, bytes);
  {
    auto lock = fs_->lock_layout(f.ino);
    ASSERT_TRUE(lock.is_ok());
    auto pieces = fs_->layout_extents(**lock, 0, kBlock, kLayoutWritable, nullptr);
    ASSERT_TRUE(pieces.is_ok()) << pieces.status().to_string();
    ASSERT_EQ(pieces->size(), 1u);
    EXPECT_EQ((*pieces)[0].length, kBlock);
    const std::byte* at = fs_->region().data() + (*pieces)[0].region_offset;
    EXPECT_EQ(std::memcmp(at, bytes.data(), bytes.size()), 0);
    for (uint64_t i = bytes.size(); i < kBlock; ++i) ASSERT_EQ(at[i], std::byte{0}) << i;
  }
  EXPECT_EQ(blocks_of(f.ino), kBlock / 512);
  EXPECT_EQ(slot_of(f.ino).flags.get() & format::kInodeInlineData, 0u);
  crash_and_remount();
  EXPECT_EQ(read_all(f.ino), bytes);
  EXPECT_EQ(extents_of(f.ino), 1u);
}

// A read-only mount cannot move a file out of its slot, so it cannot map
// it (docs/protocol.md, "Grant"); reading it is fine.
TEST_F(InlineDataTest, AReadOnlyMountDoesNotMapAnInlineFile) {
  Attr f = make_file(kRootIno, "ro");
  write_str(f.ino, 0, "read only");
  MountOptions options;
  options.read_only = true;
  clean_remount(options);
  auto lock = fs_->lock_layout(f.ino);
  ASSERT_TRUE(lock.is_ok());
  EXPECT_EQ(fs_->layout_extents(**lock, 0, kBlock, 0, nullptr).status().code(), Code::kReadOnly);
  lock->reset();
  EXPECT_EQ(read_all(f.ino), "read only");
  EXPECT_EQ(blocks_of(f.ino), 0u);
}

TEST_F(InlineDataTest, ExtendForALeaseMovesTheFileOut) {
  Attr f = make_file(kRootIno, "ext");
  write_str(f.ino, 0, "xyz");
  auto lock = fs_->lock_layout(f.ino);
  ASSERT_TRUE(lock.is_ok());
  auto old_size = fs_->grow_for_lease(**lock, 2 * kBlock);
  ASSERT_TRUE(old_size.is_ok()) << old_size.status().to_string();
  EXPECT_EQ(*old_size, 3u);
  lock->reset();
  EXPECT_EQ(fs_->getattr(f.ino)->size, 2 * kBlock);
  EXPECT_EQ(blocks_of(f.ino), kBlock / 512);
  EXPECT_EQ(read_all(f.ino), std::string("xyz") + std::string(2 * kBlock - 3, '\0'));
}

// The slot's checks, as mount and fsck apply them (decode_inode).
TEST_F(InlineDataTest, DecodeRefusesInconsistentInlineSlots) {
  Attr f = make_file(kRootIno, "d");
  write_str(f.ino, 0, "abc");
  const format::DiskInode good = slot_of(f.ino);
  ASSERT_TRUE(decode_inode(good, f.ino, 4096).is_ok());
  EXPECT_EQ(decode_inode(good, f.ino, 4096)->inline_bytes, "abc");
  auto corrupt = [&](auto edit) {
    format::DiskInode d = good;
    edit(d);
    seal_inode_crc(d);
    return decode_inode(d, f.ino, 4096).status().code();
  };
  EXPECT_EQ(corrupt([](format::DiskInode& d) { d.size.set(kInlineDataMax + 1); }),
            Code::kCorruption);
  EXPECT_EQ(corrupt([](format::DiskInode& d) { d.mode.set(S_IFDIR | 0755); }), Code::kCorruption);
  EXPECT_EQ(corrupt([](format::DiskInode& d) { d.extent_count.set(1); }), Code::kCorruption);
  EXPECT_EQ(corrupt([](format::DiskInode& d) { d.extent_block.set(99); }), Code::kCorruption);
  // The crc covers the bytes.
  format::DiskInode flipped = good;
  flipped.u.data[1] ^= 1;
  EXPECT_EQ(decode_inode(flipped, f.ino, 4096).status().code(), Code::kBadCrc);
}

}  // namespace
}  // namespace sealfs::testing_meta
