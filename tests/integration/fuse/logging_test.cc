// Where the daemon's messages go (docs/daemon.md, "Logging"): with
// --log-file a detached daemon keeps writing to that file after its stderr
// became /dev/null, startup failures land there too, and the "region is not
// DAX" warning is said once per mount by the daemon, not by mkfs or fsck.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <sstream>
#include <string>
#include <thread>

#include "mount_fixture.h"

namespace sealfs::itest {
namespace {

using namespace std::chrono_literals;

size_t count_of(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

// Lines of `text` at `level` ("warning", "error", "info") containing `needle`.
size_t lines_at(const std::string& text, const std::string& level, const std::string& needle) {
  std::istringstream lines(text);
  size_t count = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find(" " + level + " ") != std::string::npos && line.find(needle) != std::string::npos) {
      ++count;
    }
  }
  return count;
}

class LoggingTest : public MountFixture {
 protected:
  // A detached daemon is no child of the fixture: unmount it here if a
  // failed test left it mounted (it then exits on its own).
  void TearDown() override {
    if (!dir().empty() && is_mounted(mountpoint())) {
      run_command({"fusermount3", "-u", "-z", mountpoint()});
      wait_for_mount_state(mountpoint(), false, 10s);
    }
    MountFixture::TearDown();
  }
  // An ordinary file on disk: the region is not DAX and persists with msync.
  void format_on_disk() {
    MountConfig config;
    config.on_disk = true;
    config.region_size = 256ull << 20;
    ASSERT_NO_FATAL_FAILURE(format(config));
  }
  std::string log_file() const { return dir() + "/daemon.log"; }
  bool wait_for_log(const std::string& needle, std::chrono::seconds timeout) const {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (read_file(log_file()).find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
};

TEST_F(LoggingTest, DetachedDaemonKeepsLoggingToItsLogFile) {
  ASSERT_NO_FATAL_FAILURE(format_on_disk());
  std::string output;
  // No -f: the daemon detaches once mounted; its stderr is /dev/null after.
  int rc = run_command({sealfs_bin(), "--log-file=" + log_file(), "--log-level=info",
                        region_path(), mountpoint()},
                       &output);
  ASSERT_EQ(rc, 0) << output;
  ASSERT_TRUE(is_mounted(mountpoint()));
  write_file(path("f"), "hello");
  EXPECT_EQ(read_file(path("f")), "hello");

  std::string unmount_output;
  ASSERT_EQ(run_command({"fusermount3", "-u", mountpoint()}, &unmount_output), 0)
      << unmount_output;
  // Said after the detach: only the log file can have it.
  ASSERT_TRUE(wait_for_log("unmounted cleanly", 30s)) << read_file(log_file());
  EXPECT_EQ(count_of(output, "unmounted cleanly"), 0u) << output;
  const std::string log = read_file(log_file());
  EXPECT_EQ(lines_at(log, "info", region_path() + " mounted on " + mountpoint()), 1u) << log;

  // The mount says "not DAX" once, at warning level: on the caller's stderr
  // and in the log file.
  EXPECT_EQ(lines_at(log, "warning", "region is not DAX"), 1u) << log;
  EXPECT_EQ(count_of(log, "region is not DAX"), 1u) << log;
  EXPECT_EQ(count_of(output, "region is not DAX"), 1u) << output;
}

TEST_F(LoggingTest, StartupFailureIsWrittenToTheLogFile) {
  std::string output;
  const std::string missing = dir() + "/no-such-region.img";
  int rc = run_command({sealfs_bin(), "--log-file=" + log_file(), missing, mountpoint()}, &output);
  EXPECT_EQ(rc, 1) << output;
  EXPECT_FALSE(is_mounted(mountpoint()));
  EXPECT_NE(output.find("cannot open " + missing), std::string::npos) << output;
  const std::string log = read_file(log_file());
  EXPECT_EQ(lines_at(log, "error", "cannot open " + missing), 1u) << log;
}

TEST_F(LoggingTest, UnwritableLogFileRefusesToStart) {
  ASSERT_NO_FATAL_FAILURE(format_on_disk());
  std::string output;
  const std::string bad = dir() + "/no-such-dir/daemon.log";
  int rc = run_command({sealfs_bin(), "-o", "log_file=" + bad, region_path(), mountpoint()},
                       &output);
  EXPECT_EQ(rc, 1) << output;
  EXPECT_FALSE(is_mounted(mountpoint()));
  EXPECT_NE(output.find(bad + ": No such file or directory"), std::string::npos) << output;
}

// Log lines appended to the region would grow it past the block where the
// backup superblock is looked for (adversarial campaign of 2026-12-07).
TEST_F(LoggingTest, TheRegionItselfIsRefusedAsTheLogFile) {
  ASSERT_NO_FATAL_FAILURE(format_on_disk());
  struct stat before {};
  ASSERT_EQ(::stat(region_path().c_str(), &before), 0);
  std::string output;
  int rc = run_command({sealfs_bin(), "--log-file=" + region_path(), "--log-level=info",
                        region_path(), mountpoint()},
                       &output);
  EXPECT_EQ(rc, 1) << output;
  EXPECT_FALSE(is_mounted(mountpoint()));
  EXPECT_NE(output.find("is the region itself"), std::string::npos) << output;
  struct stat after {};
  ASSERT_EQ(::stat(region_path().c_str(), &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
}

// Someone chasing a missing file runs the daemon with -d: a lookup that
// finds nothing is a negative entry, not an error reply, and was not logged.
// Quiet by default.
TEST_F(LoggingTest, DebugLogNamesALookupThatFindsNothing) {
  ASSERT_NO_FATAL_FAILURE(format_on_disk());
  std::string output;
  ASSERT_EQ(run_command({sealfs_bin(), "-d", "--log-file=" + log_file(), region_path(),
                         mountpoint()},
                        &output),
            0)
      << output;
  ASSERT_TRUE(is_mounted(mountpoint()));
  struct stat st {};
  EXPECT_EQ(::lstat(path("no-such-file").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_TRUE(wait_for_log("'no-such-file' not found", 10s)) << read_file(log_file());
  const std::string log = read_file(log_file());
  EXPECT_EQ(lines_at(log, "debug", "fuse lookup (inode 1): 'no-such-file' not found"), 1u) << log;
  ASSERT_EQ(run_command({"fusermount3", "-u", mountpoint()}), 0);
  ASSERT_TRUE(wait_for_log("unmounted cleanly", 30s)) << read_file(log_file());

  // The default level says nothing of it.
  const std::string quiet_log = dir() + "/quiet.log";
  ASSERT_EQ(run_command({sealfs_bin(), "--log-file=" + quiet_log, region_path(), mountpoint()},
                        &output),
            0)
      << output;
  EXPECT_EQ(::lstat(path("also-missing").c_str(), &st), -1);
  ASSERT_EQ(run_command({"fusermount3", "-u", mountpoint()}), 0);
  ASSERT_TRUE(wait_for_mount_state(mountpoint(), false, 10s));
  EXPECT_EQ(count_of(read_file(quiet_log), "also-missing"), 0u) << read_file(quiet_log);
}

// mkfs and fsck open the region too; the warning is the mount's to give.
TEST_F(LoggingTest, ToolsDoNotRepeatTheNotDaxWarning) {
  ASSERT_NO_FATAL_FAILURE(format_on_disk());
  std::string mkfs_output;
  ASSERT_EQ(run_command({mkfs_bin(), "-f", region_path()}, &mkfs_output), 0) << mkfs_output;
  EXPECT_EQ(count_of(mkfs_output, "not DAX"), 0u) << mkfs_output;
  std::string fsck_output;
  ASSERT_EQ(run_command({fsck_bin(), "-n", region_path()}, &fsck_output), 0) << fsck_output;
  EXPECT_EQ(count_of(fsck_output, "not DAX"), 0u) << fsck_output;
}

}  // namespace
}  // namespace sealfs::itest
