// A region file whose backing filesystem fills up (docs/daemon.md, "Media
// errors"): writes fail with EIO, the daemon lives on read-only and keeps
// serving what it has, and once space is back fsck and a new mount bring
// back every byte that was fsync'd.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fs_helpers.h"
#include "mount_fixture.h"
#include "sealfs/sealfs.h"

namespace sealfs::itest {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kFileBytes = 2 * kMiB;

// The daemon's region lives on a 48 MiB tmpfs while the region is 256 MiB:
// the backing store runs out long before sealfs does. The tmpfs is mounted
// in a private mount namespace of the test (the daemon, mkfs and fsck are
// its children), so a crashed test leaves nothing mounted.
class BackingStoreTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    static bool unshared = [] {
      return unshare(CLONE_NEWNS) == 0 &&
             ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
    }();
    ASSERT_TRUE(unshared) << "a private mount namespace needs root: " << std::strerror(errno);
    backing_ = dir() + "/backing";
    ASSERT_EQ(mkdir(backing_.c_str(), 0700), 0) << std::strerror(errno);
    ASSERT_EQ(::mount("sealfs-test", backing_.c_str(), "tmpfs", 0, "size=48m"), 0)
        << std::strerror(errno);
  }
  void TearDown() override {
    MountFixture::TearDown();
    if (!backing_.empty()) umount2(backing_.c_str(), MNT_DETACH);
  }

  // Writes and fsyncs one file; errno of the first failure, 0 on success.
  int write_synced(const std::string& rel, uint64_t seed) {
    int fd = open(path(rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    std::vector<uint8_t> data = pattern(seed, 0, kFileBytes);
    int err = 0;
    if (!pwrite_all(fd, data.data(), data.size(), 0)) err = errno;
    if (err == 0 && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && err == 0) err = errno;
    return err;
  }
  bool content_is(const std::string& rel, uint64_t seed) {
    int fd = open(path(rel).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::vector<uint8_t> got(kFileBytes + 1);
    ssize_t n = pread_all(fd, got.data(), got.size(), 0);
    close(fd);
    got.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return got == pattern(seed, 0, kFileBytes);
  }

  std::string backing_;
};

TEST_F(BackingStoreTest, AFullBackingStoreFailsWritesNotTheDaemon) {
  MountConfig config;
  config.region_dir = backing_;
  config.region_size = 256 * kMiB;
  config.mkfs_args = {"--sparse-ok", "-J", "4M"};
  ASSERT_NO_FATAL_FAILURE(format_and_mount(config));

  // Fill: every file whose write and fsync both succeeded must survive.
  std::vector<std::string> synced;
  int failure = 0;
  for (int i = 0; i < 200 && failure == 0; ++i) {
    std::string name = "f" + std::to_string(i);
    failure = write_synced(name, 100 + static_cast<uint64_t>(i));
    if (failure == 0) synced.push_back(name);
  }
  ASSERT_NE(failure, 0) << "256 MiB of region on a 48 MiB tmpfs never ran out";
  EXPECT_TRUE(failure == EIO || failure == ENOSPC || failure == EROFS)
      << "unexpected error: " << std::strerror(failure);
  ASSERT_GT(synced.size(), 5u) << "the backing store filled before anything was written";

  // The daemon lives on, mounted, and serves what it had.
  ASSERT_FALSE(wait_child(daemon_pid(), std::chrono::milliseconds(0)).has_value())
      << "the daemon died";
  ASSERT_TRUE(is_mounted(mountpoint()));
  for (size_t i = 0; i < synced.size(); ++i) {
    EXPECT_TRUE(content_is(synced[i], 100 + i)) << synced[i] << " reads back wrong while mounted";
  }
  // Read-only from now on: every change fails, nothing is half done.
  EXPECT_EQ(write_synced("after", 7), EROFS);
  EXPECT_NE(mkdir(path("dir-after").c_str(), 0755), 0);
  EXPECT_EQ(errno, EROFS);
  std::string log = read_file(log_path());
  EXPECT_NE(log.find("media error (SIGBUS) at region offset"), std::string::npos) << log;

  // Unmount works; the daemon says the filesystem was not left clean.
  const pid_t first_daemon = daemon_pid();
  auto status = signal_daemon(SIGTERM);
  ASSERT_TRUE(status.has_value()) << "the daemon did not exit";
  EXPECT_TRUE(WIFEXITED(*status)) << "raw wait status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  ASSERT_TRUE(wait_for_mount_state(mountpoint(), false, std::chrono::seconds(10)));

  // Space is back: fsck recovers the journal, the next mount has every
  // fsync'd byte.
  ASSERT_EQ(::mount(nullptr, backing_.c_str(), nullptr, MS_REMOUNT, "size=512m"), 0)
      << std::strerror(errno);
  // The unmount stamped the region "needs check": a read-write mount is
  // refused (naming the last owner) until fsck -y, and fsck -n says why.
  std::string output;
  int rc = run_command({"timeout", "20", sealfs_bin(), "-f", region_path(), mountpoint()},
                       &output);
  EXPECT_EQ(rc, 1) << output;
  EXPECT_NE(output.find("marked as needing a check"), std::string::npos) << output;
  EXPECT_NE(output.find("pid " + std::to_string(first_daemon)), std::string::npos) << output;
  output.clear();
  run_command({fsck_bin(), "-n", region_path()}, &output);
  EXPECT_NE(output.find("note marked_needs_check"), std::string::npos) << output;
  output.clear();
  rc = run_command({fsck_bin(), "-y", region_path()}, &output);
  EXPECT_TRUE(rc == 0 || rc == 1) << "fsck -y exit " << rc << ":\n" << output;
  rc = run_command({fsck_bin(), "-n", region_path()}, &output);
  EXPECT_EQ(rc, 0) << "fsck -n after repair:\n" << output;
  ASSERT_NO_FATAL_FAILURE(mount());
  for (size_t i = 0; i < synced.size(); ++i) {
    EXPECT_TRUE(content_is(synced[i], 100 + i)) << synced[i] << " lost after recovery";
  }
  // And the filesystem is writable again.
  EXPECT_EQ(write_synced("after", 7), 0);
  EXPECT_TRUE(content_is("after", 7));
}

std::atomic<int> g_break_reason{0};
void let_go_at_break(struct sealfs_map* map, const struct sealfs_break_event* ev, void*) {
  g_break_reason = ev->reason;
  if (map != nullptr) sealfs_unmap(map);
}

// The first media error makes the mount read-only; a holder of a writable
// direct mapping must then stop storing behind the daemon's back (its
// stores would land in a filesystem that refuses every change and is
// marked for fsck): the daemon breaks its lease, and a new writable map is
// refused. Before, such holders kept their mappings to the end.
TEST_F(BackingStoreTest, AMediaErrorBreaksWritableDirectMappings) {
  MountConfig config;
  config.region_dir = backing_;
  config.region_size = 256 * kMiB;
  config.mkfs_args = {"--sparse-ok", "-J", "4M"};
  ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  ASSERT_EQ(write_synced("held", 3), 0);
  const int fd = open(path("held").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  g_break_reason = 0;
  ASSERT_EQ(sealfs_set_break_handler(let_go_at_break, nullptr), 0);
  struct sealfs_map* map = nullptr;
  ASSERT_EQ(sealfs_map(fd, 0, kFileBytes, PROT_READ | PROT_WRITE, 0, &map), 0) << sealfs_last_error();

  int failure = 0;
  for (int i = 0; i < 200 && failure == 0; ++i) failure = write_synced("f" + std::to_string(i), 50);
  ASSERT_NE(failure, 0) << "256 MiB of region on a 48 MiB tmpfs never ran out";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (g_break_reason == 0 && std::chrono::steady_clock::now() < deadline) usleep(10'000);
  EXPECT_EQ(g_break_reason, SEALFS_BREAK_OTHER) << "the writable mapping was not broken";
  struct sealfs_map* again = nullptr;
  const int rc = sealfs_map(fd, 0, kFileBytes, PROT_READ | PROT_WRITE, 0, &again);
  EXPECT_NE(rc, 0) << "a writable map was granted after the media error";
  if (rc == 0) sealfs_unmap(again);
  close(fd);
  const std::string log = read_file(log_path());
  EXPECT_NE(log.find("read-only after a media error"), std::string::npos) << log;
  auto status = signal_daemon(SIGTERM);
  ASSERT_TRUE(status.has_value()) << "the daemon did not exit";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << "raw wait status " << *status;
}

// A --size larger than the filesystem holding the region allows for one
// file (ext4's 16 TiB; here a file-size limit of 1 MiB stands for it) is
// refused with what to do, and leaves no file behind. mkfs said only
// "cannot grow X to 109951162777600: File too large" and left the empty
// file it had created (adversarial campaign of 2026-12-07).
TEST_F(BackingStoreTest, ASizeTheBackingFilesystemCannotHoldIsExplainedAndLeavesNothing) {
  const std::string target = backing_ + "/too-big";
  std::string out;
  const int rc = run_command({"sh", "-c",
                              "trap '' XFSZ; ulimit -f 1024; exec \"$0\" --sparse-ok --size 1G \"$1\"",
                              mkfs_bin(), target},
                             &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("cannot grow " + target + " to 1 GiB: the filesystem holding it allows no "
                     "file that large"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("use a smaller --size"), std::string::npos) << out;
  EXPECT_NE(access(target.c_str(), F_OK), 0) << "mkfs left " << target << " behind";
}

}  // namespace
}  // namespace sealfs::itest
