// Small files kept in their inode slot (docs/format.md §6 "Inline data"), on
// a real mount: 100-byte files take no data block and read back after a
// remount; one grows past the slot; one is mapped with libsealfs, which
// first moves it to a block; fsck finds the image clean afterwards.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "lease_fixture.h"
#include "sealfs/sealfs.h"

namespace sealfs::itest {
namespace {

class InlineDataTest : public LeaseFixture {
 protected:
  static std::string hundred(int i) {
    std::string s(100, '\0');
    for (size_t k = 0; k < s.size(); ++k) s[k] = static_cast<char>('a' + (i + k) % 26);
    return s;
  }
  // st_blocks as the daemon reports it (512-byte units).
  uint64_t blocks_of(const std::string& name) {
    struct stat st{};
    EXPECT_EQ(stat(path(name).c_str(), &st), 0) << name << ": " << std::strerror(errno);
    return static_cast<uint64_t>(st.st_blocks);
  }
  static constexpr int kFiles = 200;
};

TEST_F(InlineDataTest, HundredByteFilesTakeNoBlockGrowAndMap) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  write_file(path("first"), hundred(0));  // the root's directory block
  const uint64_t free_before = free_blocks();
  for (int i = 1; i <= kFiles; ++i) write_file(path("f" + std::to_string(i)), hundred(i));
  // 200 files of 100 bytes: their names fit in the root's first block (one
  // more at most), not one block each.
  EXPECT_LE(free_before - free_blocks(), 2u);
  EXPECT_EQ(blocks_of("f7"), 0u);

  ASSERT_NO_FATAL_FAILURE(remount());
  for (int i = 1; i <= kFiles; ++i) {
    ASSERT_EQ(read_file(path("f" + std::to_string(i))), hundred(i)) << i;
  }

  // Past the slot's 144 bytes: one block, the bytes kept.
  {
    int fd = open(path("f1").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::string more(100, 'M');
    ASSERT_EQ(write(fd, more.data(), more.size()), static_cast<ssize_t>(more.size()));
    ASSERT_EQ(fsync(fd), 0);
    close(fd);
  }
  EXPECT_EQ(read_file(path("f1")), hundred(1) + std::string(100, 'M'));
  EXPECT_EQ(blocks_of("f1"), 8u);

  // A direct mapping of an inline file: the daemon moves it to a block
  // first; the mapping shows its bytes, and a store through it is the file's.
  {
    int fd = open(path("f2").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    struct sealfs_map* map = nullptr;
    ASSERT_EQ(sealfs_map(fd, 0, 4096, PROT_READ | PROT_WRITE, 0, &map), 0) << sealfs_last_error();
    auto* bytes = static_cast<char*>(sealfs_map_addr(map));
    EXPECT_EQ(std::string(bytes, 100), hundred(2));
    EXPECT_EQ(std::string(bytes + 100, 4096 - 100), std::string(4096 - 100, '\0'));
    std::memcpy(bytes, "MAPPED", 6);
    ASSERT_EQ(sealfs_persist(map, bytes, 6), 0) << sealfs_last_error();
    ASSERT_EQ(sealfs_unmap(map), 0) << sealfs_last_error();
    close(fd);
  }
  const std::string mapped = "MAPPED" + hundred(2).substr(6);
  EXPECT_EQ(read_file(path("f2")), mapped);

  // Truncated to 0 and rewritten small: back in its slot.
  ASSERT_EQ(truncate(path("f1").c_str(), 0), 0);
  write_file(path("f1"), "short again");

  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_EQ(read_file(path("f2")), mapped);
  EXPECT_EQ(blocks_of("f2"), 8u);
  EXPECT_EQ(read_file(path("f1")), "short again");
  EXPECT_EQ(blocks_of("f1"), 0u);
  EXPECT_EQ(read_file(path("f3")), hundred(3));
  EXPECT_EQ(blocks_of("f3"), 0u);

  ASSERT_NO_FATAL_FAILURE(unmount());
  std::string output;
  EXPECT_EQ(run_command({fsck_bin(), "-n", region_path()}, &output), 0) << output;
}

// An image made with --no-inline-data keeps a block per file, as before.
TEST_F(InlineDataTest, AnImageWithoutTheFeatureKeepsBlocks) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "", 64 * kMiB, {"--no-inline-data"}));
  write_file(path("first"), hundred(0));
  const uint64_t free_before = free_blocks();
  for (int i = 1; i <= 20; ++i) write_file(path("f" + std::to_string(i)), hundred(i));
  EXPECT_EQ(free_before - free_blocks(), 20u);
  EXPECT_EQ(blocks_of("f3"), 8u);
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_EQ(read_file(path("f3")), hundred(3));
}

}  // namespace
}  // namespace sealfs::itest
