// File data through a mounted sealfs: reads and writes, holes, large files,
// open flags, fallocate, SEEK_DATA/SEEK_HOLE, copy_file_range, mmap, ENOSPC.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>

#include "fs_helpers.h"
#include "mount_fixture.h"
#include "support/errno_expect.h"

namespace sealfs::itest {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kGiB = 1ull << 30;

class DataTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(format_and_mount());
  }
  int open_file(const std::string& rel, int flags = O_RDWR | O_CREAT) {
    return open(path(rel).c_str(), flags | O_CLOEXEC, 0644);
  }
  // Checks [off, off+len) of fd against the pattern (or zeros if seed 0).
  void expect_content(int fd, uint64_t seed, uint64_t off, size_t len, size_t chunk) {
    std::vector<uint8_t> buf(chunk);
    for (uint64_t pos = off; pos < off + len; pos += chunk) {
      size_t n = std::min<uint64_t>(chunk, off + len - pos);
      ASSERT_EQ(pread_all(fd, buf.data(), n, static_cast<off_t>(pos)), static_cast<ssize_t>(n));
      for (size_t i = 0; i < n; ++i) {
        uint8_t want = seed == 0 ? 0 : pattern_byte(seed, pos + i);
        ASSERT_EQ(buf[i], want) << "offset " << pos + i;
      }
    }
  }
};

TEST_F(DataTest, WriteAndReadBackInOddChunks) {
  int fd = open_file("f");
  ASSERT_GE(fd, 0);
  const uint64_t size = 3 * kMiB + 777;
  uint64_t pos = 0;
  size_t chunk = 1;
  while (pos < size) {
    size_t n = std::min<uint64_t>(chunk, size - pos);
    auto data = pattern(7, pos, n);
    ASSERT_TRUE(pwrite_all(fd, data.data(), n, static_cast<off_t>(pos))) << std::strerror(errno);
    pos += n;
    chunk = chunk * 3 + 1;
    if (chunk > 1500000) chunk = 4095;
  }
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), size);
  for (size_t read_chunk : {size_t{1} << 20, size_t{4096}, size_t{65537}}) {
    ASSERT_NO_FATAL_FAILURE(expect_content(fd, 7, 0, size, read_chunk));
  }
  // Reads past the end return nothing; a read across it is short.
  char c;
  EXPECT_EQ(pread(fd, &c, 1, static_cast<off_t>(size)), 0);
  std::vector<char> buf(100);
  EXPECT_EQ(pread(fd, buf.data(), 100, static_cast<off_t>(size - 10)), 10);
  close(fd);
}

// Two files written in interleaved 4 KiB pieces get fragmented extents; a
// 1 MiB read then spans many segments of the region.
TEST_F(DataTest, FragmentedFilesReadCorrectly) {
  int a = open_file("a");
  int b = open_file("b");
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  for (uint64_t off = 0; off < 4 * kMiB; off += 4096) {
    auto da = pattern(11, off, 4096);
    auto db = pattern(12, off, 4096);
    ASSERT_TRUE(pwrite_all(a, da.data(), 4096, static_cast<off_t>(off)));
    ASSERT_TRUE(pwrite_all(b, db.data(), 4096, static_cast<off_t>(off)));
  }
  ASSERT_NO_FATAL_FAILURE(expect_content(a, 11, 0, 4 * kMiB, kMiB));
  ASSERT_NO_FATAL_FAILURE(expect_content(b, 12, 0, 4 * kMiB, kMiB));
  close(a);
  close(b);
}

TEST_F(DataTest, HolesReadAsZerosAndSeekDataHole) {
  int fd = open_file("sparse");
  ASSERT_GE(fd, 0);
  auto head = pattern(3, 0, 4096);
  auto tail = pattern(3, 10 * kMiB, 4096);
  ASSERT_TRUE(pwrite_all(fd, head.data(), 4096, 0));
  ASSERT_TRUE(pwrite_all(fd, tail.data(), 4096, 10 * kMiB));
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 0, 4096, 10 * kMiB - 4096, kMiB));
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 3, 0, 4096, 4096));
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 3, 10 * kMiB, 4096, 4096));
  // A read mixing data and hole.
  std::vector<uint8_t> buf(8192);
  ASSERT_EQ(pread_all(fd, buf.data(), 8192, 0), 8192);
  EXPECT_EQ(std::memcmp(buf.data(), head.data(), 4096), 0);
  EXPECT_EQ(buf[4096], 0);
  EXPECT_EQ(buf[8191], 0);

  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), 0);
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 4096);
  EXPECT_EQ(lseek(fd, 4096, SEEK_DATA), static_cast<off_t>(10 * kMiB));
  EXPECT_EQ(lseek(fd, 10 * kMiB, SEEK_HOLE), static_cast<off_t>(10 * kMiB + 4096));
  EXPECT_ERRNO(lseek(fd, 10 * kMiB + 4096, SEEK_DATA), ENXIO);
  EXPECT_ERRNO(lseek(fd, 20 * kMiB, SEEK_HOLE), ENXIO);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_LT(st.st_blocks * 512, static_cast<blkcnt_t>(kMiB));  // still sparse
  close(fd);
}

TEST_F(DataTest, FileLargerThanFourGiB) {
  int fd = open_file("huge");
  ASSERT_GE(fd, 0);
  const uint64_t off = 5 * kGiB;
  auto data = pattern(21, off, kMiB);
  ASSERT_TRUE(pwrite_all(fd, data.data(), kMiB, static_cast<off_t>(off))) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), off + kMiB);
  EXPECT_LT(st.st_blocks * 512, static_cast<blkcnt_t>(4 * kMiB));
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 21, off, kMiB, 128 * 1024));
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 0, 4 * kGiB - 4096, 8192, 8192));
  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), static_cast<off_t>(off));
  close(fd);
  ASSERT_NO_FATAL_FAILURE(remount());
  fd = open_file("huge", O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 21, off, kMiB, kMiB));
  close(fd);
}

TEST_F(DataTest, AppendTruncAndExcl) {
  int a = open_file("log", O_WRONLY | O_CREAT | O_APPEND);
  int b = open_file("log", O_WRONLY | O_APPEND);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    std::string line = "line " + std::to_string(i) + "\n";
    int fd = i % 2 == 0 ? a : b;
    ASSERT_EQ(write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    expected += line;
  }
  // pwrite on O_APPEND appends too (Linux).
  ASSERT_EQ(pwrite(a, "end", 3, 0), 3);
  expected += "end";
  close(a);
  close(b);
  EXPECT_EQ(read_file(path("log")), expected);

  int t = open_file("log", O_WRONLY | O_TRUNC);
  ASSERT_GE(t, 0);
  struct stat st {};
  ASSERT_EQ(fstat(t, &st), 0);
  EXPECT_EQ(st.st_size, 0);
  ASSERT_EQ(write(t, "new", 3), 3);
  close(t);
  EXPECT_EQ(read_file(path("log")), "new");
  EXPECT_ERRNO(open_file("log", O_WRONLY | O_CREAT | O_EXCL), EEXIST);

  // ftruncate grows with zeros and shrinks.
  int f = open_file("log");
  ASSERT_EQ(ftruncate(f, 10000), 0);
  ASSERT_NO_FATAL_FAILURE(expect_content(f, 0, 3, 10000 - 3, 4096));
  ASSERT_EQ(ftruncate(f, 2), 0);
  close(f);
  EXPECT_EQ(read_file(path("log")), "ne");
  int ro = open_file("log", O_RDONLY);
  ASSERT_GE(ro, 0);
  EXPECT_ERRNO(ftruncate(ro, 0), EINVAL);
  close(ro);
}

// Linux truncates on open(O_RDONLY | O_TRUNC) when the caller may write.
TEST_F(DataTest, ReadOnlyOpenWithTruncTruncates) {
  write_file(path("t"), "some bytes");
  int fd = open_file("t", O_RDONLY | O_TRUNC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 0);
  close(fd);
  EXPECT_EQ(read_file(path("t")), "");
}

TEST_F(DataTest, FallocateModes) {
  int fd = open_file("fa");
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, 0, 0, 2 * kMiB), 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 2 * kMiB);
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, 2 * kMiB);
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 0, 0, 2 * kMiB, kMiB));

  auto data = pattern(5, 0, 2 * kMiB);
  ASSERT_TRUE(pwrite_all(fd, data.data(), data.size(), 0));
  ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192), 0);
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 5, 0, 4096, 4096));
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 0, 4096, 8192, 8192));
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 5, 12288, 4096, 4096));
  EXPECT_ERRNO(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), EOPNOTSUPP);  // needs KEEP_SIZE
  close(fd);
}

// Keep-size allocation past the end and zero range, apart from allocate
// and punch: an NFSv4.2 client carries only those two.
TEST_F(DataTest, FallocateKeepSizeZeroRangeAndCollapse) {
  int fd = open_file("fz");
  ASSERT_GE(fd, 0);
  auto data = pattern(5, 0, 2 * kMiB);
  ASSERT_TRUE(pwrite_all(fd, data.data(), data.size(), 0));
  ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 2 * kMiB, kMiB), 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 2 * kMiB);
  ASSERT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, 100000, 5000), 0) << std::strerror(errno);
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 5, 0, 100000, 100000));
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 0, 100000, 5000, 5000));
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 5, 105000, 1000, 1000));
  ASSERT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, 2 * kMiB - 10, 4096), 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 2 * kMiB - 10 + 4096);
  EXPECT_ERRNO(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096), EOPNOTSUPP);
  close(fd);
}

TEST_F(DataTest, CopyFileRange) {
  int in = open_file("src");
  int out = open_file("dst");
  ASSERT_GE(in, 0);
  ASSERT_GE(out, 0);
  auto data = pattern(9, 0, 3 * kMiB);
  ASSERT_TRUE(pwrite_all(in, data.data(), data.size(), 0));
  loff_t off_in = 4096;
  loff_t off_out = 100;
  uint64_t left = 2 * kMiB;
  while (left > 0) {
    ssize_t n = copy_file_range(in, &off_in, out, &off_out, left, 0);
    ASSERT_GT(n, 0) << std::strerror(errno);
    left -= static_cast<uint64_t>(n);
  }
  std::vector<uint8_t> buf(2 * kMiB);
  ASSERT_EQ(pread_all(out, buf.data(), buf.size(), 100), static_cast<ssize_t>(buf.size()));
  EXPECT_EQ(std::memcmp(buf.data(), data.data() + 4096, buf.size()), 0);
  ASSERT_NO_FATAL_FAILURE(expect_content(out, 0, 0, 100, 100));
  close(in);
  close(out);
}

TEST_F(DataTest, SharedMmapReadsAndWrites) {
  int fd = open_file("mapped");
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 4 * kMiB), 0);
  void* p = mmap(nullptr, 4 * kMiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
  auto* bytes = static_cast<uint8_t*>(p);
  auto data = pattern(31, 0, 4 * kMiB);
  std::memcpy(bytes, data.data(), data.size());
  ASSERT_EQ(msync(p, 4 * kMiB, MS_SYNC), 0);
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 31, 0, 4 * kMiB, kMiB));
  // write(2) is visible through the mapping.
  ASSERT_EQ(pwrite(fd, "XYZ", 3, 5000), 3);
  EXPECT_EQ(std::memcmp(bytes + 5000, "XYZ", 3), 0);
  ASSERT_EQ(munmap(p, 4 * kMiB), 0);
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  ASSERT_NO_FATAL_FAILURE(remount());
  fd = open_file("mapped", O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> buf(3);
  ASSERT_EQ(pread_all(fd, buf.data(), 3, 5000), 3);
  EXPECT_EQ(std::memcmp(buf.data(), "XYZ", 3), 0);
  ASSERT_NO_FATAL_FAILURE(expect_content(fd, 31, 0, 5000, 5000));
  close(fd);
}

TEST_F(DataTest, FsyncAndFdatasync) {
  int fd = open_file("s");
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "abc", 3), 3);
  EXPECT_EQ(fsync(fd), 0);
  EXPECT_EQ(fdatasync(fd), 0);
  int d = open(mountpoint().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(d, 0);
  EXPECT_EQ(fsync(d), 0);
  close(d);
  close(fd);
}

// Freeing a fragmented file takes a while (bounded transactions,
// file_layout.cc; on a region file on disk, persisted with msync, seconds)
// and starts when the kernel forgets the inode, after unlink has returned:
// df right after rm showed the blocks still in use (a new user's trial).
// statfs now waits for that free.
TEST_F(DataTest, StatfsRightAfterUnlinkCountsTheFreedBlocks) {
  // Two files written in turns, 4 KiB at a time: 8192 one-block extents
  // each, freed in 64 transactions (tens of milliseconds here, in /dev/shm).
  constexpr uint64_t kSize = 32 * kMiB;
  int a = open(path("a").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  int b = open(path("b").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  const std::vector<uint8_t> block = pattern(5, 0, 4096);
  for (uint64_t off = 0; off < kSize; off += 4096) {
    ASSERT_TRUE(pwrite_all(a, block.data(), 4096, static_cast<off_t>(off)));
    ASSERT_TRUE(pwrite_all(b, block.data(), 4096, static_cast<off_t>(off)));
  }
  close(a);
  close(b);
  struct statvfs before {};
  ASSERT_EQ(statvfs(mountpoint().c_str(), &before), 0);
  ASSERT_EQ(unlink(path("a").c_str()), 0);
  struct statvfs after {};
  ASSERT_EQ(statvfs(mountpoint().c_str(), &after), 0);
  EXPECT_GE(after.f_bfree, before.f_bfree + kSize / 4096)
      << (after.f_bfree - before.f_bfree) << " of " << kSize / 4096
      << " blocks counted free by the first statfs after unlink";
}

class SmallRegionTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    MountConfig config;
    config.region_size = 64 * kMiB;
    config.mkfs_args = {"-J", "1M"};
    ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  }
};

TEST_F(SmallRegionTest, FullRegionGivesEnospcAndSpaceComesBack) {
  int fd = open(path("fill").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> chunk = pattern(2, 0, kMiB);
  uint64_t written = 0;
  int err = 0;
  while (written < 128 * kMiB) {
    ssize_t n = write(fd, chunk.data(), chunk.size());
    if (n < 0) {
      err = errno;
      break;
    }
    written += static_cast<uint64_t>(n);
  }
  EXPECT_EQ(err, ENOSPC) << std::strerror(err);
  EXPECT_GT(written, 16 * kMiB);
  close(fd);
  // Other files can't grow either, but metadata-only operations still work.
  int g = open(path("other").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(g, 0);
  EXPECT_ERRNO(write(g, chunk.data(), chunk.size()), ENOSPC);
  close(g);
  struct statvfs full {};
  ASSERT_EQ(statvfs(mountpoint().c_str(), &full), 0);
  ASSERT_EQ(unlink(path("fill").c_str()), 0);
  // The blocks are freed once the kernel forgets the inode, which it does
  // asynchronously after the unlink: wait (bounded) for the space.
  struct statvfs freed {};
  for (int attempt = 0; attempt < 500; ++attempt) {
    ASSERT_EQ(statvfs(mountpoint().c_str(), &freed), 0);
    if (freed.f_bfree >= full.f_bfree + (16 * kMiB) / 4096) break;
    usleep(10000);
  }
  EXPECT_GE(freed.f_bfree, full.f_bfree + (16 * kMiB) / 4096);
  g = open(path("other").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(g, 0);
  EXPECT_EQ(write(g, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()))
      << std::strerror(errno);
  close(g);
}

}  // namespace
}  // namespace sealfs::itest
