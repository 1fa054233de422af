// fsck -y on an image whose journal replay faults (a sparse region file on a
// full filesystem): an operational error, and the journal is left whole for
// the next run instead of being reset as corrupt.
//
// The full filesystem is a 16 MiB tmpfs mounted in a private mount namespace
// of this test process (nothing stays mounted if it dies); that needs
// CAP_SYS_ADMIN.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>

#include <cstring>
#include <string>
#include <vector>

#include "fsck/checker.h"
#include "media/formatter.h"
#include "media/journal.h"
#include "media/media_fault.h"
#include "media/region_pmem2.h"

namespace sealfs {
namespace {

constexpr uint64_t kRegionBytes = 64ull << 20;

TEST(FsckMediaErrorTest, AReplayThatFaultsKeepsTheJournal) {
  ASSERT_TRUE(install_media_fault_handler());
  ASSERT_EQ(unshare(CLONE_NEWNS), 0) << std::strerror(errno);
  ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
  char tmpl[] = "/tmp/fsck_media_error_test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_EQ(::mount("sealfs-test", dir.c_str(), "tmpfs", 0, "size=16m"), 0) << std::strerror(errno);
  const std::string path = dir + "/region.img";
  const std::string filler = dir + "/filler";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, kRegionBytes), 0);
  ::close(fd);

  auto region = RegionPmem2::open(path, RegionOptions{});
  ASSERT_TRUE(region.is_ok());
  FormatOptions options;
  options.layout.inode_count = 1024;
  options.layout.journal_bytes = 2ull << 20;
  auto sb = Formatter::format(**region, options);
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  const Geometry g = sb->geometry;
  const JournalArea area{g.journal_start, g.journal_blocks};
  {
    auto journal = Journal::open(**region, area);
    ASSERT_TRUE(journal.is_ok());
  }
  // The tmpfs is full: a never-written data block cannot be had.
  struct statvfs v;
  ASSERT_EQ(statvfs(dir.c_str(), &v), 0);
  int filler_fd = ::open(filler.c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(filler_fd, 0);
  ASSERT_EQ(fallocate(filler_fd, 0, 0, static_cast<off_t>(v.f_bavail * v.f_frsize)), 0)
      << std::strerror(errno);
  ::close(filler_fd);
  // A committed transaction whose home write faulted (the daemon's case).
  const uint64_t home = block_offset(g.data_start + g.data_blocks / 2);
  const std::vector<std::byte> bytes(format::kBlockSize, std::byte{0});
  {
    auto journal = Journal::open(**region, area);
    ASSERT_TRUE(journal.is_ok());
    Transaction t = (*journal)->begin();
    t.write(home, bytes.data(), bytes.size());
    ASSERT_EQ((*journal)->commit(std::move(t)).code(), Code::kIoError);
  }
  region->reset();

  // fsck -y while the tmpfs is still full.
  auto again = RegionPmem2::open(path, RegionOptions{});
  ASSERT_TRUE(again.is_ok());
  fsck::FsckOptions fsck_options;
  fsck_options.repair = true;
  fsck::Report report = fsck::run_fsck(**again, fsck_options);
  EXPECT_EQ(report.exit_code, fsck::kExitOperational);
  EXPECT_NE(report.operational_error.find("media error"), std::string::npos)
      << report.operational_error;
  again->reset();

  // Room again: the transaction is still in the log.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  auto whole = RegionPmem2::open(path, RegionOptions{});
  ASSERT_TRUE(whole.is_ok());
  RecoveryStats stats;
  auto journal = Journal::open(**whole, area, &stats);
  ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
  EXPECT_EQ(stats.replayed_transactions, 1u) << "fsck reset the journal";
  journal->reset();
  whole->reset();
  umount2(dir.c_str(), MNT_DETACH);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sealfs
