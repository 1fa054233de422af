// fsck's memory and time grow with the metadata in use, not with the region
// (issue 9): an empty sparse 256 GiB region (a 4 GiB inode table, an 8 MiB
// bitmap, 16M inode slots) is checked quickly in a child whose heap is
// capped and whose peak RSS is measured. fsck before the fix kept a state
// per inode slot (about 2 GiB here: the cap turns that into "out of
// memory") and read every inode table block (4 GiB of page cache in the
// RSS).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "fsck/checker.h"
#include "media/formatter.h"
#include "media/region_pmem2.h"

namespace sealfs::fsck {
namespace {

constexpr uint64_t kRegionBytes = 256ull << 30;
constexpr uint64_t kHeapCap = 256ull << 20;  // RLIMIT_DATA of the checking child
constexpr long kMaxRssKiB = 96 << 10;        // peak RSS of the checking child

std::string temp_dir() {
  const char* env = std::getenv("TMPDIR");
  std::string base = env != nullptr && *env != '\0' ? env : "/var/tmp";
  std::string pattern = base + "/fsck_scale_XXXXXX";
  char* made = ::mkdtemp(pattern.data());
  return made == nullptr ? "" : made;
}

class FsckScaleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir();
    ASSERT_FALSE(dir_.empty()) << "mkdtemp";
    path_ = dir_ + "/region";
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(kRegionBytes)), 0);
    ::close(fd);
    auto region = RegionPmem2::open(path_, RegionOptions{});
    ASSERT_TRUE(region.is_ok()) << region.status().to_string();
    FormatOptions fo;
    fo.metadata_zeroed = true;  // a new sparse file: what mkfs.sealfs --sparse-ok does
    auto sb = Formatter::format(**region, fo);
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    inode_count_ = sb->geometry.inode_count;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string dir_, path_;
  uint64_t inode_count_ = 0;
};

TEST_F(FsckScaleTest, EmptySparseRegionNeedsLittleMemoryAndTime) {
  ASSERT_GE(inode_count_, 16ull << 20);
  auto region = RegionPmem2::open(path_, RegionOptions{.read_only = true});
  ASSERT_TRUE(region.is_ok()) << region.status().to_string();
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    rlimit cap{kHeapCap, kHeapCap};
    if (::setrlimit(RLIMIT_DATA, &cap) != 0) ::_exit(100);
    FsckOptions o;
    o.target = path_;
    Report r = run_fsck(**region, o);
    // The exit code says what the check found; "out of memory" is an 8.
    bool counted = r.counts.inodes_total == inode_count_ && r.counts.inodes_used == 1;
    ::_exit(r.exit_code == kExitClean && counted ? 0 : 10 + r.exit_code);
  }
  int status = 0;
  rusage usage{};
  ASSERT_EQ(::wait4(pid, &status, 0, &usage), pid);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(WIFEXITED(status)) << "child died, status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "check of the empty region failed (10 + its exit code; 18 includes out of memory "
         "under a "
      << (kHeapCap >> 20) << " MiB heap cap)";
  EXPECT_LT(usage.ru_maxrss, kMaxRssKiB) << "peak RSS in KiB";
  EXPECT_LT(seconds, 10.0);
  std::printf("empty 256 GiB region: %.2f s, peak RSS %ld KiB\n", seconds, usage.ru_maxrss);
}

}  // namespace
}  // namespace sealfs::fsck
