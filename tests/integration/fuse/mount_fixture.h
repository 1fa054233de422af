// MountFixture: a real sealfs daemon on a file-backed region in a fresh
// temporary directory, for integration tests.
//
// SetUp makes the directory; format_and_mount() creates a sparse region
// file, runs the built mkfs.sealfs on it and starts `sealfs -f` with its
// log in the directory. TearDown always unmounts (fusermount3 -u, then a
// lazy unmount and SIGKILL if the daemon does not go), prints the daemon
// log if the test failed, and removes the directory. Binaries come from
// SEALFS_BIN and MKFS_BIN, set by meson.
//
// Tests skip only when /dev/fuse is missing (SEALFS_REQUIRE_ALL=1 turns
// that into a failure in CI).
//
// Directory mode: with SEALFS_TEST_DIRECTORY=DIR set, the fixture starts no
// daemon. Each test gets a fresh subdirectory of DIR (an NFS mount of a
// sealfs export, a sealfs mount started by someone else, any filesystem)
// as its "mount point", removed at teardown, so the POSIX-semantics tests
// run through whatever serves DIR. format_and_mount() with the default
// config is then a no-op; everything that needs the fixture's own daemon
// or region (another config, mount, unmount, remount, kill_daemon,
// signal_daemon, log_count, region_path) fails the test, naming the call:
// such tests are left out by name (tests/integration/fuse/posix_in_directory.sh).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sealfs::itest {

// Runs argv to completion (stdout+stderr captured into *output when given)
// as the given user when uid is set. Returns the exit status, or 128+signal.
int run_command(const std::vector<std::string>& argv, std::string* output = nullptr,
                std::optional<uid_t> uid = std::nullopt, gid_t gid = 0,
                const std::vector<std::string>& extra_env = {});

// The unprivileged user the tests switch to: SEALFS_TEST_USER (default
// sealfs-test), created with useradd if missing; nullopt (and a test
// failure when useradd fails) if it cannot be had or is root.
struct TestUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};
std::optional<TestUser> test_user();

bool is_mounted(const std::string& mountpoint);

// Waits (no fixed sleeps: poll on /proc/self/mountinfo) until mountpoint is
// or is not a sealfs mount. Stops early if `watched` (when > 0) exits.
bool wait_for_mount_state(const std::string& mountpoint, bool mounted,
                          std::chrono::milliseconds timeout, pid_t watched = 0);

// Waits for a child to exit; returns its raw wait status, or nullopt on
// timeout.
std::optional<int> wait_child(pid_t pid, std::chrono::milliseconds timeout);

std::string read_file(const std::string& path);
void write_file(const std::string& path, std::string_view data);

struct MountConfig {
  uint64_t region_size = 1ull << 30;  // sparse
  std::vector<std::string> mkfs_args;
  std::string options;                // extra -o list
  std::optional<uid_t> uid;           // run mkfs and the daemon as this user
  gid_t gid = 0;
  // By default the region lives in /dev/shm and is mounted with
  // emulate_pmem (cache-line flushes instead of msync), which keeps the
  // suites fast; on_disk puts it in TMPDIR and persists with msync, as an
  // ordinary file on a disk would be used.
  bool on_disk = false;
  // When set, the region file is made in this directory instead (a small
  // tmpfs standing for a full disk, for instance).
  std::string region_dir;
};

class MountFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Creates and formats the region, then mounts it. Use ASSERT_NO_FATAL_FAILURE.
  void format_and_mount(const MountConfig& config = {});
  void format(const MountConfig& config);
  // Starts `sealfs -f` and waits for the mount.
  void mount();
  // Clean unmount: fusermount3 -u; the daemon must exit with status 0.
  void unmount();
  void remount() {
    unmount();
    if (!HasFatalFailure()) mount();
  }
  // SIGKILL the daemon, then `fusermount3 -u -z` as cleanup.
  void kill_daemon();
  // Sends `sig` to the daemon and waits for it; the raw wait status, or
  // nullopt if it did not exit in time.
  std::optional<int> signal_daemon(int sig);
  // Hands the running daemon over to the test, which must then wait for it
  // (the fixture forgets it); adopt_daemon gives one started by the test to
  // the fixture, which then unmounts it like its own.
  pid_t release_daemon() {
    pid_t pid = daemon_pid_;
    daemon_pid_ = -1;
    return pid;
  }
  void adopt_daemon(pid_t pid) { daemon_pid_ = pid; }

  std::string path(std::string_view relative) const;
  const std::string& mountpoint() const { return mountpoint_; }
  const std::string& region_path() const {
    needs_own_daemon("region_path()");
    return region_path_;
  }
  const std::string& dir() const { return dir_; }
  bool emulated() const { return !config_.on_disk && !shm_dir_.empty(); }
  const std::string& log_path() const { return log_path_; }
  pid_t daemon_pid() const { return daemon_pid_; }
  bool mounted() const { return daemon_pid_ > 0; }
  // SEALFS_TEST_DIRECTORY, or empty when the fixture mounts its own daemon.
  static const std::string& test_directory();
  MountConfig& config() { return config_; }

  static const std::string& sealfs_bin();
  static const std::string& mkfs_bin();
  static const std::string& fsck_bin();
  // How many times `needle` occurs in the daemon log.
  size_t log_count(const std::string& needle) const;

 private:
  void force_cleanup();
  // In directory mode: records a failure naming `what`, which only the
  // fixture's own daemon can do; returns whether it did.
  bool needs_own_daemon(const char* what) const;

  MountConfig config_;
  std::string dir_;
  std::string shm_dir_;
  std::string mountpoint_;
  std::string region_path_;
  std::string log_path_;
  pid_t daemon_pid_ = -1;
  int mount_count_ = 0;
};

}  // namespace sealfs::itest
