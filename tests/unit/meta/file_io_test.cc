#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <random>
#include <vector>

#include "meta/xattr.h"
#include "meta_fixture.h"
#include "util/crc32c.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;

class FileIoTest : public MetaTest {
 protected:
  void SetUp() override { format(); }
};

TEST_F(FileIoTest, RandomWritesMatchModelAndSurviveCrash) {
  Attr f = make_file(kRootIno, "data");
  std::string model;
  std::mt19937_64 rng(42);
  for (int i = 0; i < 300; ++i) {
    uint64_t off = rng() % (3 << 20);
    size_t len = 1 + rng() % 20000;
    std::string buf(len, '\0');
    for (auto& c : buf) c = static_cast<char>('a' + rng() % 26);
    write_str(f.ino, off, buf);
    if (model.size() < off + len) model.resize(off + len, '\0');
    model.replace(off, len, buf);
    if (i % 50 == 0) {
      uint64_t roff = rng() % model.size();
      ASSERT_EQ(read_all(f.ino, roff, 5000), model.substr(roff, 5000));
    }
  }
  EXPECT_EQ(fs_->getattr(f.ino)->size, model.size());
  ASSERT_EQ(read_all(f.ino, 0, model.size() + 100), model);
  crash_and_remount(RegionDram::CrashMode::kTear, 7);
  ASSERT_EQ(read_all(f.ino, 0, model.size() + 100), model);
}

TEST_F(FileIoTest, LargeOffsetsBeyond4GiB) {
  Attr f = make_file(kRootIno, "big");
  uint64_t off = (5ull << 30) + 123;
  write_str(f.ino, off, "far away");
  EXPECT_EQ(fs_->getattr(f.ino)->size, off + 8);
  EXPECT_EQ(read_all(f.ino, off - 4, 12), std::string(4, '\0') + "far away");
  EXPECT_EQ(fs_->getattr(f.ino)->blocks, 8u);  // one 4 KiB block
  char c = 'x';
  EXPECT_EQ(fs_->write(f.ino, 1ull << 44, &c, 1, false).status().code(), Code::kTooBig);
  auto short_write = fs_->write(f.ino, (1ull << 44) - 1, "ab", 2, false);
  ASSERT_TRUE(short_write.is_ok());
  EXPECT_EQ(*short_write, 1u);
  auto hole = fs_->lseek(f.ino, 0, SEEK_HOLE);
  ASSERT_TRUE(hole.is_ok());
  EXPECT_EQ(*hole, 0u);
  auto data = fs_->lseek(f.ino, 0, SEEK_DATA);
  ASSERT_TRUE(data.is_ok());
  EXPECT_EQ(*data, off & ~uint64_t{4095});  // block granularity, as ext4
}

TEST_F(FileIoTest, TruncateDownZeroesTailAndUpReadsZeros) {
  Attr f = make_file(kRootIno, "t");
  write_str(f.ino, 0, std::string(10000, 'x'));
  SetAttr sa;
  sa.valid = SetAttr::kSize;
  sa.size = 5000;
  ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->blocks, 16u);
  sa.size = 12000;
  ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  std::string expect = std::string(5000, 'x') + std::string(7000, '\0');
  EXPECT_EQ(read_all(f.ino), expect);
  crash_and_remount();
  EXPECT_EQ(read_all(f.ino), expect);
  ASSERT_TRUE(fs_->open(f.ino, O_RDWR | O_TRUNC).is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->size, 0u);
  EXPECT_EQ(fs_->getattr(f.ino)->blocks, 0u);
}

// Found by fsck's random corruption test: padding after the last entry that
// `used` covers moved the cursor past the end, the unsigned remainder wrapped,
// and bytes beyond `used` were decoded as a further entry.
TEST(XattrBlockDecode, PaddingPastUsedIsCorruption) {
  std::vector<std::byte> block(format::kBlockSize);
  format::DiskXattrBlockHeader h{};
  h.magic.set(format::kXattrBlockMagic);
  h.owner_ino.set(5);
  h.count.set(2);
  h.used.set(sizeof(format::DiskXattrEntry) + 1);  // one 1-byte name, unpadded
  auto put_entry = [&](size_t at, char name) {
    format::DiskXattrEntry e{};
    e.name_len = 1;
    e.value_len.set(0);
    std::memcpy(block.data() + at, &e, sizeof(e));
    block[at + sizeof(e)] = std::byte(name);
  };
  put_entry(sizeof(h), 'a');
  put_entry(sizeof(h) + 8, 'b');  // beyond `used`: must not be read
  std::memcpy(block.data(), &h, sizeof(h));
  uint32_t crc = crc32c_with_hole(block.data(), block.size(),
                                  offsetof(format::DiskXattrBlockHeader, crc));
  h.crc.set(crc);
  std::memcpy(block.data(), &h, sizeof(h));
  auto list = decode_xattr_block(block.data(), 5);
  EXPECT_EQ(list.status().code(), Code::kCorruption);
}

// Found by the differential tester: Linux and tmpfs truncate on O_TRUNC even
// when the file is opened read-only, and mark mtime on an empty file too.
TEST_F(FileIoTest, OTruncTruncatesWhateverTheAccessMode) {
  Attr f = make_file(kRootIno, "ro-trunc");
  write_str(f.ino, 0, std::string(6000, 'y'));
  ASSERT_TRUE(fs_->open(f.ino, O_RDONLY | O_TRUNC).is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->size, 0u);
  EXPECT_EQ(fs_->getattr(f.ino)->blocks, 0u);
  fs_->release(f.ino);

  Attr before = *fs_->getattr(f.ino);
  struct timespec pause = {0, 2'000'000};
  nanosleep(&pause, nullptr);
  ASSERT_TRUE(fs_->open(f.ino, O_WRONLY | O_TRUNC).is_ok());
  Attr after = *fs_->getattr(f.ino);
  EXPECT_GT(after.mtime.tv_sec * 1'000'000'000ll + after.mtime.tv_nsec,
            before.mtime.tv_sec * 1'000'000'000ll + before.mtime.tv_nsec);
  fs_->release(f.ino);
}

TEST_F(FileIoTest, TruncateOfHugelyFragmentedFileUsesSeveralTransactions) {
  Attr f = make_file(kRootIno, "frag");
  Attr g = make_file(kRootIno, "spacer");
  // Interleave two files so neither is contiguous: thousands of extents.
  for (int i = 0; i < 3000; ++i) {
    write_str(f.ino, uint64_t(i) * 8192, "f");
    write_str(g.ino, uint64_t(i) * 4096, "g");
  }
  uint64_t free_before = fs_->statfs().free_blocks;
  SetAttr sa;
  sa.valid = SetAttr::kSize;
  sa.size = 0;
  ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->blocks, 0u);
  EXPECT_GT(fs_->statfs().free_blocks, free_before + 3000);
  crash_and_remount();
  EXPECT_EQ(fs_->getattr(f.ino)->size, 0u);
  EXPECT_EQ(read_all(g.ino, 4096 * 2999, 1), "g");
}

TEST_F(FileIoTest, FallocateModes) {
  Attr f = make_file(kRootIno, "fa");
  ASSERT_TRUE(fs_->fallocate(f.ino, 0, 0, 3 * 4096).is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->size, 3u * 4096);
  EXPECT_EQ(fs_->getattr(f.ino)->blocks, 24u);
  EXPECT_EQ(read_all(f.ino), std::string(3 * 4096, '\0'));
  // Unwritten extents are holes for SEEK_DATA.
  EXPECT_EQ(fs_->lseek(f.ino, 0, SEEK_DATA).status().code(), Code::kNxio);
  EXPECT_EQ(*fs_->lseek(f.ino, 0, SEEK_HOLE), 0u);
  // A write converts its whole 64-block chunk inside EOF (zeroout,
  // file_io.cc): all three blocks are data now, zeros around the write.
  write_str(f.ino, 4096 + 10, "abc");
  EXPECT_EQ(*fs_->lseek(f.ino, 0, SEEK_DATA), 0u);
  EXPECT_EQ(*fs_->lseek(f.ino, 4096, SEEK_HOLE), 3u * 4096);
  EXPECT_EQ(read_all(f.ino), std::string(4096 + 10, '\0') + "abc" + std::string(8192 - 13, '\0'));
  EXPECT_EQ(fs_->lseek(f.ino, 3 * 4096, SEEK_DATA).status().code(), Code::kNxio);
  // KEEP_SIZE beyond EOF.
  ASSERT_TRUE(fs_->fallocate(f.ino, FALLOC_FL_KEEP_SIZE, 3 * 4096, 4096).is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->size, 3u * 4096);
  EXPECT_EQ(fs_->getattr(f.ino)->blocks, 32u);
  EXPECT_EQ(read_all(f.ino, 3 * 4096, 100), "");
  // Punch needs KEEP_SIZE.
  EXPECT_EQ(fs_->fallocate(f.ino, FALLOC_FL_PUNCH_HOLE, 0, 4096).code(), Code::kNotSupported);
  write_str(f.ino, 0, std::string(3 * 4096, 'z'));
  ASSERT_TRUE(fs_->fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 8192).is_ok());
  std::string expect = std::string(100, 'z') + std::string(8192, '\0') +
                       std::string(3 * 4096 - 8292, 'z');
  EXPECT_EQ(read_all(f.ino), expect);
  EXPECT_EQ(fs_->getattr(f.ino)->blocks, 24u);  // block 1 punched, block 3 preallocated
  // ZERO_RANGE extends the size without KEEP_SIZE.
  ASSERT_TRUE(fs_->fallocate(f.ino, FALLOC_FL_ZERO_RANGE, 50, 5 * 4096).is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->size, 50u + 5 * 4096);
  EXPECT_EQ(read_all(f.ino), std::string(50, 'z') + std::string(5 * 4096, '\0'));
  EXPECT_EQ(fs_->fallocate(f.ino, FALLOC_FL_COLLAPSE_RANGE, 0, 4096).code(), Code::kNotSupported);
  crash_and_remount();
  EXPECT_EQ(read_all(f.ino), std::string(50, 'z') + std::string(5 * 4096, '\0'));
}

TEST_F(FileIoTest, CopyFileRangeAndAppend) {
  Attr a = make_file(kRootIno, "a");
  Attr b = make_file(kRootIno, "b");
  std::string payload(200000, 'q');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
  write_str(a.ino, 0, payload);
  auto n = fs_->copy_file_range(a.ino, 1000, b.ino, 10, 150000);
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(*n, 150000u);
  EXPECT_EQ(read_all(b.ino, 10, 150000), payload.substr(1000, 150000));
  auto w = fs_->write(b.ino, 0, "END", 3, true);
  ASSERT_TRUE(w.is_ok());
  EXPECT_EQ(read_all(b.ino, 150010, 10), "END");
}

TEST_F(FileIoTest, Xattrs) {
  Attr f = make_file(kRootIno, "x");
  ASSERT_TRUE(fs_->setxattr(f.ino, "user.a", "1", 1, 0).is_ok());
  EXPECT_EQ(fs_->setxattr(f.ino, "user.a", "2", 1, XATTR_CREATE).code(), Code::kExists);
  EXPECT_EQ(fs_->setxattr(f.ino, "user.b", "2", 1, XATTR_REPLACE).code(), Code::kNoData);
  EXPECT_EQ(fs_->setxattr(f.ino, "system.sockprotoname", "2", 1, 0).code(), Code::kNotSupported);
  EXPECT_EQ(fs_->setxattr(f.ino, "system.posix_acl_access", "2", 1, 0).code(), Code::kInvalid);
  EXPECT_EQ(fs_->setxattr(f.ino, "user." + std::string(260, 'n'), "2", 1, 0).code(), Code::kRange);
  ASSERT_TRUE(fs_->setxattr(f.ino, "trusted.t", "tv", 2, 0).is_ok());
  EXPECT_EQ(fs_->getxattr(f.ino, "user.missing").status().code(), Code::kNoData);
  std::string big(5000, 'v');  // more than one block: a chain of two
  ASSERT_TRUE(fs_->setxattr(f.ino, "user.big", big.data(), big.size(), 0).is_ok());
  std::string over(65537, 'v');
  EXPECT_EQ(fs_->setxattr(f.ino, "user.over", over.data(), over.size(), 0).code(), Code::kTooBig);
  crash_and_remount();
  auto v = fs_->getxattr(f.ino, "user.a");
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ(std::string(v->begin(), v->end()), "1");
  EXPECT_EQ(fs_->getxattr(f.ino, "user.big")->size(), big.size());
  EXPECT_EQ(fs_->listxattr(f.ino)->size(), 3u);
  ASSERT_TRUE(fs_->removexattr(f.ino, "user.big").is_ok());
  ASSERT_TRUE(fs_->removexattr(f.ino, "user.a").is_ok());
  ASSERT_TRUE(fs_->removexattr(f.ino, "trusted.t").is_ok());
  EXPECT_EQ(fs_->removexattr(f.ino, "trusted.t").code(), Code::kNoData);
  EXPECT_EQ(fs_->getattr(f.ino)->blocks, 0u);
}

TEST_F(FileIoTest, NoSpaceThenReuse) {
  Attr f = make_file(kRootIno, "fill");
  std::string chunk(1 << 20, 'F');
  uint64_t off = 0;
  Status last;
  while (true) {
    auto n = fs_->write(f.ino, off, chunk.data(), chunk.size(), false);
    if (!n.is_ok()) {
      last = n.status();
      break;
    }
    off += *n;
    if (*n < chunk.size()) continue;
  }
  EXPECT_EQ(last.code(), Code::kNoSpace);
  EXPECT_EQ(fs_->statfs().free_blocks, 0u);
  EXPECT_EQ(fs_->getattr(f.ino)->size, off);
  crash_and_remount();
  EXPECT_EQ(fs_->getattr(f.ino)->size, off);
  EXPECT_EQ(read_all(f.ino, off - 10, 10), std::string(10, 'F'));
  ASSERT_TRUE(fs_->unlink(kRootIno, "fill").is_ok());
  fs_->release(f.ino);
  fs_->forget(f.ino, 1);
  EXPECT_GT(fs_->statfs().free_blocks, off / 4096 - 16);
  Attr g = make_file(kRootIno, "again");
  write_str(g.ino, 0, chunk);
}

TEST_F(FileIoTest, LayoutGateRefusesWithoutSideEffects) {
  SealedInodeGate gate;
  MountOptions options;
  options.gate = &gate;
  clean_remount(options);
  Attr f = make_file(kRootIno, "g");
  write_str(f.ino, 0, std::string(8192, 'a'));
  gate.sealed_ino = f.ino;
  write_str(f.ino, 100, "in place is fine");
  EXPECT_EQ(fs_->write(f.ino, 8192, "x", 1, false).status().code(), Code::kLayoutSealed);
  SetAttr sa;
  sa.valid = SetAttr::kSize;
  sa.size = 0;
  EXPECT_EQ(fs_->setattr(f.ino, sa).status().code(), Code::kLayoutSealed);
  EXPECT_EQ(fs_->fallocate(f.ino, 0, 0, 100000).code(), Code::kLayoutSealed);
  EXPECT_EQ(fs_->open(f.ino, O_RDWR | O_TRUNC).code(), Code::kLayoutSealed);
  EXPECT_EQ(fs_->getattr(f.ino)->size, 8192u);
  EXPECT_EQ(fs_->getattr(f.ino)->blocks, 16u);
}

// One question to the gate per layout change: setattr(size) used to ask it,
// then truncate asked again (issue 13); the permit the first answer gives
// (meta/layout_permit.h) is what the change now runs with.
TEST_F(FileIoTest, TheGateIsAskedOncePerLayoutChange) {
  struct Gate : LayoutGate {
    Ino watched = 0;
    int asked = 0;
    bool sealed(Ino ino) override {
      if (ino == watched) ++asked;
      return false;
    }
  } gate;
  MountOptions options;
  options.gate = &gate;
  clean_remount(options);
  Attr f = make_file(kRootIno, "once");
  write_str(f.ino, 0, std::string(3 * 4096, 'a'));
  gate.watched = f.ino;
  auto count = [&](const char* what, const std::function<void()>& op, int expected = 1) {
    gate.asked = 0;
    op();
    EXPECT_EQ(gate.asked, expected) << what;
  };
  count("truncate down", [&] {
    SetAttr sa;
    sa.valid = SetAttr::kSize;
    sa.size = 100;
    ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  });
  count("truncate up", [&] {
    SetAttr sa;
    sa.valid = SetAttr::kSize;
    sa.size = 1 << 20;
    ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  });
  count("O_TRUNC", [&] { ASSERT_TRUE(fs_->open(f.ino, O_RDWR | O_TRUNC).is_ok()); });
  fs_->release(f.ino);
  count("allocating write", [&] { write_str(f.ino, 0, std::string(5000, 'b')); });
  count("fallocate", [&] { ASSERT_TRUE(fs_->fallocate(f.ino, 0, 0, 1 << 16).is_ok()); });
  count("punch", [&] {
    ASSERT_TRUE(fs_->fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 8192).is_ok());
  });
  count("write into unwritten blocks", [&] { write_str(f.ino, 9000, "c"); });
  // In place, inside EOF, into written blocks: no layout change, not asked
  // (without -o strict_write_break).
  count("overwrite", [&] { write_str(f.ino, 9001, "d"); }, 0);
}

// -o strict_write_break: an overwrite in place (no allocation, no size
// change) asks the gate too, and asks it while holding the inode's lock, so
// that no lease is granted between the answer and the write. (The daemon
// used to ask the gate itself before calling write(), with no lock held.)
TEST_F(FileIoTest, GateEveryWriteAsksUnderTheInodeLock) {
  struct Gate : LayoutGate {
    Filesystem* fs = nullptr;
    Ino sealed_ino = 0;
    int asked = 0;
    bool lock_was_free = false;
    bool sealed(Ino ino) override {
      if (ino != sealed_ino) return false;
      ++asked;
      // A grant takes the inode's layout lock: it must not get it now.
      std::atomic<bool> got{false};
      std::thread grant([&] {
        auto held = fs->lock_layout(ino);
        got = held.is_ok();
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      lock_was_free = got.load();
      probe = std::move(grant);
      return true;
    }
    std::thread probe;  // joined once the write has let the lock go
  } gate;
  MountOptions options;
  options.gate = &gate;
  options.gate_every_write = true;
  clean_remount(options);
  gate.fs = fs_.get();
  Attr f = make_file(kRootIno, "strict");
  write_str(f.ino, 0, std::string(8192, 'a'));
  gate.sealed_ino = f.ino;
  auto written = fs_->write(f.ino, 100, "bbbb", 4, false);
  ASSERT_FALSE(written.is_ok());
  EXPECT_TRUE(is_layout_sealed(written.status())) << written.status().to_string();
  ASSERT_TRUE(gate.probe.joinable());
  gate.probe.join();
  EXPECT_EQ(gate.asked, 1);
  EXPECT_FALSE(gate.lock_was_free) << "the gate was asked without the inode's lock held";
  EXPECT_EQ(read_all(f.ino, 96, 8), std::string(8, 'a'));
}

}  // namespace
}  // namespace sealfs::testing_meta
