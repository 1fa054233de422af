// What a mount costs on a large, nearly empty region file: it reads only the
// parts of the inode table and block bitmap that hold data (issue 12). On tmpfs a read of a
// hole through a shared mapping allocates the page, so the file's allocated
// size shows what the mount touched.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "media/formatter.h"
#include "media/region_pmem2.h"
#include "meta/filesystem.h"

namespace sealfs {
namespace {

constexpr uint64_t kRegionBytes = 8ull << 30;  // sparse: costs what is written

class MountScaleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/dev/shm/sealfs-mount-scale-XXXXXX";
    int fd = mkstemp(templ);
    ASSERT_GE(fd, 0);
    path_ = templ;
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(kRegionBytes)), 0);
    close(fd);
  }
  void TearDown() override {
    if (!path_.empty()) unlink(path_.c_str());
  }
  std::unique_ptr<Region> open_region() {
    RegionOptions options;
    options.emulate_pmem = true;
    auto region = RegionPmem2::open(path_, options);
    EXPECT_TRUE(region.is_ok()) << region.status().to_string();
    return region.is_ok() ? std::move(*region) : nullptr;
  }
  uint64_t allocated_bytes() const {
    struct stat st {};
    EXPECT_EQ(stat(path_.c_str(), &st), 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  std::string path_;
};

TEST_F(MountScaleTest, AnEmptyRegionsMountReadsLittleOfItsInodeTableAndBitmap) {
  uint64_t table_bytes = 0, bitmap_bytes = 0;
  {
    auto region = open_region();
    ASSERT_NE(region, nullptr);
    // As mkfs.sealfs on a file: a fresh sparse file reads as zeros already.
    FormatOptions options;
    options.metadata_zeroed = true;
    auto sb = Formatter::format(*region, options);
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    table_bytes = sb->geometry.inode_blocks * format::kBlockSize;
    bitmap_bytes = sb->geometry.bitmap_blocks * format::kBlockSize;
  }
  ASSERT_GE(table_bytes, 64ull << 20) << "the region is too small to tell";
  const uint64_t before = allocated_bytes();

  Ino file = 0;
  {
    FsckLikeStats stats;
    auto fs = Filesystem::mount(open_region(), MountOptions{}, &stats);
    ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
    auto a = (*fs)->create(format::kRootIno, "kept", 0644, O_RDWR, Cred{0, 0, 022, 1});
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    file = a->ino;
    ASSERT_TRUE((*fs)->unmount().is_ok());
  }
  // A mount that read all of the table allocated table_bytes more; one
  // that read the whole block bitmap, bitmap_bytes more.
  EXPECT_LT(allocated_bytes() - before, table_bytes / 8)
      << "inode table " << table_bytes << " bytes; allocated before the mount " << before;
  EXPECT_LT(allocated_bytes() - before, bitmap_bytes / 2)
      << "block bitmap " << bitmap_bytes << " bytes; allocated before the mount " << before;

  // And what is in use is still found.
  FsckLikeStats stats;
  auto fs = Filesystem::mount(open_region(), MountOptions{}, &stats);
  ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
  auto found = (*fs)->lookup(format::kRootIno, "kept");
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  EXPECT_EQ(found->ino, file);
  (*fs)->forget(found->ino, 1);
  ASSERT_TRUE((*fs)->unmount().is_ok());
}

// The block bitmap of a 1 TiB region is 32 MiB; the allocator keeps two
// copies of it in DRAM and the mount's cross-check two more while it runs.
// Pages of them that never held a set bit take no memory
// (util/sparse_bits.h), so mounting an empty region costs little DRAM.
uint64_t rss_anon_bytes() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  uint64_t kib = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "RssAnon: %lu kB", &kib) == 1) break;
  }
  std::fclose(f);
  return kib * 1024;
}

TEST(MountMemoryTest, AnEmptyRegionsMountKeepsNoCopyOfItsBlockBitmap) {
  char templ[] = "/dev/shm/sealfs-mount-memory-XXXXXX";
  int fd = mkstemp(templ);
  ASSERT_GE(fd, 0);
  const std::string path = templ;
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(1ull << 40)), 0);
  close(fd);
  RegionOptions options;
  options.emulate_pmem = true;
  uint64_t bitmap_bytes = 0;
  {
    auto region = RegionPmem2::open(path, options);
    ASSERT_TRUE(region.is_ok()) << region.status().to_string();
    FormatOptions format;
    format.metadata_zeroed = true;
    format.layout.inode_count = 4096;  // keep the inode bitmap out of the figure
    auto sb = Formatter::format(**region, format);
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    bitmap_bytes = sb->geometry.bitmap_blocks * format::kBlockSize;
  }
  const uint64_t before = rss_anon_bytes();
  {
    auto region = RegionPmem2::open(path, options);
    ASSERT_TRUE(region.is_ok()) << region.status().to_string();
    auto fs = Filesystem::mount(std::move(region).value(), MountOptions{});
    ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
    const uint64_t grown = rss_anon_bytes() - before;
    // (What remains is the holder table's DRAM view, about 10 MiB from a
    // 256 GiB region up.)
    EXPECT_LT(grown, bitmap_bytes / 2)
        << "the mount's anonymous memory grew by " << grown << " bytes; the bitmap is "
        << bitmap_bytes;
    ASSERT_TRUE((*fs)->unmount().is_ok());
  }
  unlink(path.c_str());
}

}  // namespace
}  // namespace sealfs
