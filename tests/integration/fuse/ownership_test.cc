// One owner per region, on real mounts: what a careful (or careless) admin
// does to a region a daemon serves. Every sequence here lost acknowledged
// data before the region claim (src/media/region_owner.h): a second daemon,
// mkfs -f and fsck -y on a live region, and `umount; mount` / `umount; fsck`
// overlapping the old daemon's exit.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "media/region_owner.h"
#include "mount_fixture.h"

namespace sealfs::itest {
namespace {

using namespace std::chrono_literals;

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

class OwnershipTest : public MountFixture {
 protected:
  void TearDown() override {
    unsetenv("SEALFS_TEST_SYNC_DIR");
    unsetenv("SEALFS_TEST_SYNC_POINTS");
    MountFixture::TearDown();
  }

  // A few files whose bytes the test checks after every hostile step.
  void populate() {
    for (int i = 0; i < 8; ++i) {
      std::string name = path("f" + std::to_string(i));
      write_file(name, std::string(10000 + i * 777, static_cast<char>('a' + i)));
      int fd = open(name.c_str(), O_RDONLY);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(fsync(fd), 0);
      close(fd);
    }
    ASSERT_EQ(mkdir(path("d").c_str(), 0755), 0);
  }
  void expect_intact() {
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(read_file(path("f" + std::to_string(i))),
                std::string(10000 + i * 777, static_cast<char>('a' + i)))
          << "f" << i;
    }
    struct stat st {};
    EXPECT_EQ(stat(path("d").c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
  }
  // The daemon's own command line, with the options the fixture uses.
  std::vector<std::string> daemon_argv(const std::string& mnt, const std::string& extra = "") {
    std::string options = emulated() ? "emulate_pmem" : "";
    if (!extra.empty()) options += (options.empty() ? "" : ",") + extra;
    // Under timeout(1): a daemon that wrongly mounts fails the test by
    // exit status instead of hanging it.
    std::vector<std::string> argv = {"timeout", "20", sealfs_bin(), "-f", region_path(), mnt};
    if (!options.empty()) {
      argv.push_back("-o");
      argv.push_back(options);
    }
    return argv;
  }
  void fsck_clean() {
    std::string out;
    EXPECT_EQ(run_command({fsck_bin(), "-n", region_path()}, &out), 0) << out;
  }
  std::string holder_text() const { return "pid " + std::to_string(daemon_pid()) + " ("; }
};

TEST_F(OwnershipTest, SecondDaemonIsRefusedAndNamesTheHolder) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_NO_FATAL_FAILURE(populate());
  std::string other = dir() + "/other";
  ASSERT_EQ(mkdir(other.c_str(), 0755), 0);
  for (const std::string& extra : {std::string(), std::string("ro")}) {
    std::string out;
    auto start = std::chrono::steady_clock::now();
    int rc = run_command(daemon_argv(other, extra), &out);
    EXPECT_EQ(rc, 1) << out;
    // Refused at once: the holder's mount is seen live, so no grace.
    EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
    EXPECT_TRUE(contains(out, "is in use by " + holder_text() +
                                  "sealfs daemon, mounted read-write on " + mountpoint() +
                                  ": " + sealfs_bin() + " -f "))
        << out;
    EXPECT_FALSE(is_mounted(other));
  }
  // Same mountpoint: the kernel would stack a second mount on the first.
  std::string out;
  EXPECT_EQ(run_command(daemon_argv(mountpoint()), &out), 1) << out;
  ASSERT_NO_FATAL_FAILURE(expect_intact());
  ASSERT_NO_FATAL_FAILURE(remount());
  ASSERT_NO_FATAL_FAILURE(expect_intact());
  ASSERT_NO_FATAL_FAILURE(unmount());
  fsck_clean();
}

TEST_F(OwnershipTest, MkfsForceOnALiveRegionIsRefused) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_NO_FATAL_FAILURE(populate());
  std::string out;
  EXPECT_EQ(run_command({mkfs_bin(), "-f", region_path()}, &out), 1) << out;
  EXPECT_TRUE(contains(out, "is in use by " + holder_text())) << out;
  // The daemon's filesystem is still the one on the media.
  ASSERT_NO_FATAL_FAILURE(expect_intact());
  ASSERT_NO_FATAL_FAILURE(remount());
  ASSERT_NO_FATAL_FAILURE(expect_intact());
}

TEST_F(OwnershipTest, FsckOnALiveRegionRefusesToRepairOrPretendToCheck) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_NO_FATAL_FAILURE(populate());
  std::string out;
  EXPECT_EQ(run_command({fsck_bin(), "-y", region_path()}, &out), 8) << out;
  EXPECT_TRUE(contains(out, "is in use by " + holder_text())) << out;
  EXPECT_TRUE(contains(out, "unmount it before repairing it")) << out;
  out.clear();
  EXPECT_EQ(run_command({fsck_bin(), "-n", region_path()}, &out), 8) << out;
  EXPECT_TRUE(contains(out, "cannot be checked consistently")) << out;
  ASSERT_NO_FATAL_FAILURE(expect_intact());
  ASSERT_NO_FATAL_FAILURE(remount());
  ASSERT_NO_FATAL_FAILURE(expect_intact());
}

TEST_F(OwnershipTest, FsckCheckSharesARegionMountedReadOnly) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_NO_FATAL_FAILURE(populate());
  ASSERT_NO_FATAL_FAILURE(unmount());
  config().options = "ro";
  ASSERT_NO_FATAL_FAILURE(mount());
  std::string out;
  EXPECT_EQ(run_command({fsck_bin(), "-n", region_path()}, &out), 0) << out;
  out.clear();
  // A writer still may not: it would change what the mount serves.
  EXPECT_EQ(run_command({fsck_bin(), "-y", region_path()}, &out), 8) << out;
  EXPECT_TRUE(contains(out, "mounted read-only")) << out;
  ASSERT_NO_FATAL_FAILURE(expect_intact());
}

// `umount` returns before the old daemon has finished its own unmount. The
// old daemon is held right there (a sync point after it announced that it is
// closing): what starts then must wait for it, say so, and see the final
// state.
class OwnershipAfterUmountTest : public OwnershipTest {
 protected:
  // Mounts with the sync point armed, populates, unmounts, and returns the
  // old daemon's pid once it is held.
  pid_t hold_old_daemon_at_closing() {
    sync_dir_ = dir() + "/sync";
    EXPECT_EQ(mkdir(sync_dir_.c_str(), 0755), 0);
    setenv("SEALFS_TEST_SYNC_DIR", sync_dir_.c_str(), 1);
    setenv("SEALFS_TEST_SYNC_POINTS", "daemon.unmount.closing", 1);
    format_and_mount();
    unsetenv("SEALFS_TEST_SYNC_DIR");
    unsetenv("SEALFS_TEST_SYNC_POINTS");
    if (HasFatalFailure()) return -1;
    populate();
    pid_t old_daemon = release_daemon();
    std::string out;
    EXPECT_EQ(run_command({"fusermount3", "-u", mountpoint()}, &out), 0) << out;
    std::string reached = sync_dir_ + "/daemon.unmount.closing.reached";
    for (int i = 0; i < 400 && access(reached.c_str(), F_OK) != 0; ++i) {
      std::this_thread::sleep_for(25ms);
    }
    EXPECT_EQ(access(reached.c_str(), F_OK), 0) << "old daemon never reached its unmount";
    return old_daemon;
  }
  void let_go(pid_t old_daemon) {
    write_file(sync_dir_ + "/daemon.unmount.closing.go", "");
    auto status = wait_child(old_daemon, 30s);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  }
  static std::string waiting_for(pid_t old_daemon) {
    return "in use by pid " + std::to_string(old_daemon) +
           " (sealfs daemon, finishing its unmount";
  }
  // Polls `file` until it contains `text` (10 s at most).
  static bool appears(const std::string& file, const std::string& text) {
    for (int i = 0; i < 400; ++i) {
      if (contains(read_file(file), text)) return true;
      std::this_thread::sleep_for(25ms);
    }
    return false;
  }

  std::string sync_dir_;
};

TEST_F(OwnershipAfterUmountTest, MountRightAfterUmountWaitsForTheOldDaemon) {
  pid_t old_daemon = hold_old_daemon_at_closing();
  ASSERT_GT(old_daemon, 0);
  std::string new_log = dir() + "/second.log";
  pid_t second = fork();
  ASSERT_GE(second, 0);
  if (second == 0) {
    int fd = open(new_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    std::vector<std::string> args = daemon_argv(mountpoint());
    args.erase(args.begin(), args.begin() + 2);  // this one is the fixture's daemon
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  adopt_daemon(second);
  EXPECT_TRUE(appears(new_log, waiting_for(old_daemon))) << read_file(new_log);
  EXPECT_FALSE(is_mounted(mountpoint()));
  ASSERT_NO_FATAL_FAILURE(let_go(old_daemon));
  ASSERT_TRUE(wait_for_mount_state(mountpoint(), true, 30s, second)) << read_file(new_log);
  ASSERT_NO_FATAL_FAILURE(expect_intact());
  ASSERT_NO_FATAL_FAILURE(unmount());
  fsck_clean();
}

TEST_F(OwnershipAfterUmountTest, FsckRightAfterUmountWaitsAndSeesACleanRegion) {
  pid_t old_daemon = hold_old_daemon_at_closing();
  ASSERT_GT(old_daemon, 0);
  std::string fsck_log = dir() + "/fsck.log";
  int fsck_rc = -1;
  std::thread fsck([&] {
    std::string out;
    fsck_rc = run_command({"sh", "-c", fsck_bin() + " -n " + region_path() + " > " + fsck_log +
                                           " 2>&1"},
                          &out);
  });
  bool announced = appears(fsck_log, waiting_for(old_daemon));
  ASSERT_NO_FATAL_FAILURE(let_go(old_daemon));
  fsck.join();
  EXPECT_TRUE(announced) << read_file(fsck_log);
  EXPECT_EQ(fsck_rc, 0) << read_file(fsck_log);
  ASSERT_NO_FATAL_FAILURE(mount());
  ASSERT_NO_FATAL_FAILURE(expect_intact());
}

// `umount` as soon as the mount shows, before the daemon has started its
// lease engine (held there by a sync point): the daemon ends cleanly, exit 0,
// and the region is clean. It used to fail ("no fuse mount on ...", exit 1).
TEST_F(OwnershipTest, UmountBeforeTheDaemonServesEndsCleanly) {
  std::string sync_dir = dir() + "/sync";
  ASSERT_EQ(mkdir(sync_dir.c_str(), 0755), 0);
  setenv("SEALFS_TEST_SYNC_DIR", sync_dir.c_str(), 1);
  setenv("SEALFS_TEST_SYNC_POINTS", "daemon.mounted.before_leases", 1);
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  std::string reached = sync_dir + "/daemon.mounted.before_leases.reached";
  for (int i = 0; i < 400 && access(reached.c_str(), F_OK) != 0; ++i) {
    std::this_thread::sleep_for(25ms);
  }
  ASSERT_EQ(access(reached.c_str(), F_OK), 0) << "the daemon never reached its lease start";
  pid_t daemon = release_daemon();
  std::string out;
  EXPECT_EQ(run_command({"fusermount3", "-u", mountpoint()}, &out), 0) << out;
  write_file(sync_dir + "/daemon.mounted.before_leases.go", "");
  auto status = wait_child(daemon, 30s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << *status << "\n" << read_file(log_path());
  EXPECT_TRUE(contains(read_file(log_path()), "was unmounted before it was served"))
      << read_file(log_path());
  fsck_clean();
}

// Without a sync point: unmount and immediately mount / check, many times.
TEST_F(OwnershipTest, UmountThenMountOrFsckAtOnceNeverOverlaps) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_NO_FATAL_FAILURE(populate());
  for (int round = 0; round < 6; ++round) {
    pid_t old_daemon = release_daemon();
    std::string out;
    ASSERT_EQ(run_command({"fusermount3", "-u", mountpoint()}, &out), 0) << out;
    if (round % 2 == 0) {
      // fsck first: it waits for the old daemon and finds a clean region.
      EXPECT_EQ(run_command({fsck_bin(), "-n", region_path()}, &out), 0) << out;
    }
    // The next daemon starts at once; the old one is reaped afterwards.
    ASSERT_NO_FATAL_FAILURE(mount());
    auto status = wait_child(old_daemon, 30s);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
    ASSERT_NO_FATAL_FAILURE(expect_intact());
    write_file(path("round" + std::to_string(round)), "r");
  }
  ASSERT_NO_FATAL_FAILURE(unmount());
  fsck_clean();
}

// fsck.sealfs -y holds the region (claimed here in a child, with fsck's own
// role, so that the claim lasts as long as the test wants): a daemon and
// mkfs started meanwhile are refused at once, naming it.
TEST_F(OwnershipTest, MountDuringARepairIsRefused) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_NO_FATAL_FAILURE(populate());
  ASSERT_NO_FATAL_FAILURE(unmount());
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t repairer = fork();
  ASSERT_GE(repairer, 0);
  if (repairer == 0) {
    int fd = open(region_path().c_str(), O_RDWR | O_CLOEXEC);
    ClaimRequest request;
    request.role = OwnerRole::kFsckRepair;
    auto claim = RegionClaim::acquire(fd, region_path(), request);
    char ok = claim.is_ok() ? 1 : 0;
    (void)!write(ready[1], &ok, 1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  close(ready[0]);
  ASSERT_EQ(ok, 1);
  std::string out;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(run_command(daemon_argv(mountpoint()), &out), 1) << out;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
  EXPECT_TRUE(contains(out, "is in use by pid " + std::to_string(repairer) +
                                " (fsck.sealfs repairing"))
      << out;
  EXPECT_FALSE(is_mounted(mountpoint()));
  out.clear();
  EXPECT_EQ(run_command({mkfs_bin(), "-f", region_path()}, &out), 1) << out;
  EXPECT_TRUE(contains(out, "fsck.sealfs repairing")) << out;
  kill(repairer, SIGKILL);
  ASSERT_TRUE(wait_child(repairer, 10s).has_value());
  ASSERT_NO_FATAL_FAILURE(mount());
  ASSERT_NO_FATAL_FAILURE(expect_intact());
}

TEST_F(OwnershipTest, AKilledDaemonReleasesTheRegionAtOnce) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_NO_FATAL_FAILURE(populate());
  ASSERT_NO_FATAL_FAILURE(kill_daemon());
  auto start = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(mount());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  ASSERT_NO_FATAL_FAILURE(expect_intact());
}

}  // namespace
}  // namespace sealfs::itest
