// The daemon's life: persistence across remounts, read-only mounts, SIGTERM,
// SIGKILL mid-workload, mount(8) / mount.fuse3, mount errors, and an
// unprivileged mount through fusermount3.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fs_helpers.h"
#include "mount_fixture.h"
#include "support/errno_expect.h"

namespace sealfs::itest {
namespace {

using namespace std::chrono_literals;

class LifecycleTest : public MountFixture {
 protected:
  void write_pattern_file(const std::string& rel, uint64_t seed, size_t size) {
    int fd = open(path(rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << rel << ": " << std::strerror(errno);
    auto data = pattern(seed, 0, size);
    ASSERT_TRUE(pwrite_all(fd, data.data(), data.size(), 0)) << std::strerror(errno);
    close(fd);
  }
  void build_tree() {
    ASSERT_EQ(mkdir(path("a").c_str(), 0755), 0);
    ASSERT_EQ(mkdir(path("a/b").c_str(), 0700), 0);
    for (int i = 0; i < 20; ++i) {
      ASSERT_NO_FATAL_FAILURE(
          write_pattern_file("a/f" + std::to_string(i), static_cast<uint64_t>(i), i * 37001u));
    }
    ASSERT_NO_FATAL_FAILURE(write_pattern_file("a/b/big", 99, 9 << 20));
    ASSERT_EQ(symlink("../a/f3", path("a/b/link").c_str()), 0);
    ASSERT_EQ(link(path("a/f5").c_str(), path("hard5").c_str()), 0);
    ASSERT_EQ(setxattr(path("a/f1").c_str(), "user.k", "v", 1, 0), 0);
    ASSERT_EQ(mkfifo(path("fifo").c_str(), 0600), 0);
  }
};

std::optional<pid_t> find_daemon(const std::string& mountpoint) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_file(entry.path().string() + "/cmdline");
    std::vector<std::string> args;
    std::stringstream ss(cmdline);
    std::string arg;
    while (std::getline(ss, arg, '\0')) args.push_back(arg);
    if (args.empty() || std::filesystem::path(args[0]).filename() != "sealfs") continue;
    for (const auto& a : args) {
      if (a == mountpoint) return static_cast<pid_t>(std::stol(name));
    }
  }
  return std::nullopt;
}

// Waits for any process (not only a child) to exit.
bool wait_pid_gone(pid_t pid, std::chrono::milliseconds timeout) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errno == ESRCH;
  pollfd p{pidfd, POLLIN, 0};
  int rc = poll(&p, 1, static_cast<int>(timeout.count()));
  close(pidfd);
  return rc == 1;
}

TEST_F(LifecycleTest, TreeSurvivesRemount) {
  MountConfig on_disk;
  on_disk.on_disk = true;  // msync persistence, as a disk-backed file gets
  ASSERT_NO_FATAL_FAILURE(format_and_mount(on_disk));
  ASSERT_NO_FATAL_FAILURE(build_tree());
  std::map<std::string, std::string> before, after;
  std::string error;
  ASSERT_TRUE(digest_tree(mountpoint(), &before, &error)) << error;
  ASSERT_NO_FATAL_FAILURE(remount());
  ASSERT_TRUE(digest_tree(mountpoint(), &after, &error)) << error;
  EXPECT_EQ(before, after);
  char v[8];
  EXPECT_EQ(getxattr(path("a/f1").c_str(), "user.k", v, sizeof v), 1);
  struct stat st {};
  ASSERT_EQ(stat(path("hard5").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  ASSERT_EQ(stat(path("a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(LifecycleTest, ReadOnlyMountRefusesChanges) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_NO_FATAL_FAILURE(build_tree());
  ASSERT_NO_FATAL_FAILURE(unmount());
  config().options = "ro";
  ASSERT_NO_FATAL_FAILURE(mount());
  std::map<std::string, std::string> tree;
  std::string error;
  ASSERT_TRUE(digest_tree(mountpoint(), &tree, &error)) << error;
  EXPECT_EQ(tree.count("a/b/big"), 1u);
  EXPECT_ERRNO(open(path("new").c_str(), O_WRONLY | O_CREAT, 0644), EROFS);
  EXPECT_ERRNO(open(path("a/f2").c_str(), O_WRONLY), EROFS);
  EXPECT_ERRNO(mkdir(path("d").c_str(), 0755), EROFS);
  EXPECT_ERRNO(unlink(path("a/f2").c_str()), EROFS);
  EXPECT_ERRNO(rename(path("a/f2").c_str(), path("a/f22").c_str()), EROFS);
  EXPECT_ERRNO(truncate(path("a/f2").c_str(), 0), EROFS);
  EXPECT_ERRNO(setxattr(path("a/f1").c_str(), "user.k", "w", 1, 0), EROFS);
  EXPECT_ERRNO(chmod(path("a/f1").c_str(), 0600), EROFS);
  ASSERT_NO_FATAL_FAILURE(unmount());
  config().options = "";
  ASSERT_NO_FATAL_FAILURE(mount());
  std::map<std::string, std::string> again;
  ASSERT_TRUE(digest_tree(mountpoint(), &again, &error)) << error;
  EXPECT_EQ(tree, again);
}

TEST_F(LifecycleTest, SigtermUnmountsCleanly) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_NO_FATAL_FAILURE(write_pattern_file("f", 4, 100000));
  auto status = signal_daemon(SIGTERM);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  EXPECT_TRUE(wait_for_mount_state(mountpoint(), false, 10s));
  ASSERT_NO_FATAL_FAILURE(mount());
  std::map<std::string, std::string> tree;
  std::string error;
  ASSERT_TRUE(digest_tree(mountpoint(), &tree, &error)) << error;
  EXPECT_EQ(tree["f"], "file:100000:" + std::to_string([] {
              auto d = pattern(4, 0, 100000);
              return fnv1a(d.data(), d.size());
            }()));
}

// A child writes and fsyncs files and reports each one after its fsync
// returned; the daemon is SIGKILLed in the middle. After a remount every
// reported file must be there, byte for byte, and the whole tree readable.
TEST_F(LifecycleTest, KillNineMidWorkloadKeepsEveryFsyncedByte) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  ASSERT_EQ(mkdir(path("work").c_str(), 0755), 0);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::string root = mountpoint();
  pid_t writer = fork();
  ASSERT_GE(writer, 0);
  if (writer == 0) {
    close(fds[0]);
    for (uint32_t i = 0;; ++i) {
      std::string dir = root + "/work/d" + std::to_string(i % 7);
      mkdir(dir.c_str(), 0755);  // EEXIST after the first round
      std::string tmp = dir + "/.tmp" + std::to_string(i);
      std::string name = dir + "/f" + std::to_string(i);
      int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) _exit(2);
      size_t size = (i * 7919u) % 300000u + 1;
      auto data = pattern(i + 1000, 0, size);
      if (!pwrite_all(fd, data.data(), size, 0) || fsync(fd) != 0) _exit(3);
      close(fd);
      if (rename(tmp.c_str(), name.c_str()) != 0) _exit(4);
      int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
      if (dfd < 0 || fsync(dfd) != 0) _exit(5);
      close(dfd);
      if (write(fds[1], &i, sizeof i) != sizeof i) _exit(6);
    }
  }
  close(fds[1]);
  std::vector<uint32_t> done;
  pollfd p{fds[0], POLLIN, 0};
  while (done.size() < 40) {
    ASSERT_EQ(poll(&p, 1, 60000), 1) << "writer stalled after " << done.size() << " files";
    uint32_t i;
    ASSERT_EQ(read(fds[0], &i, sizeof i), static_cast<ssize_t>(sizeof i))
        << "writer died after " << done.size() << " files";
    done.push_back(i);
  }
  ASSERT_NO_FATAL_FAILURE(kill_daemon());
  kill(writer, SIGKILL);
  waitpid(writer, nullptr, 0);
  uint32_t i;
  while (read(fds[0], &i, sizeof i) == sizeof i) done.push_back(i);
  close(fds[0]);

  ASSERT_NO_FATAL_FAILURE(mount());
  for (uint32_t n : done) {
    std::string name = path("work/d" + std::to_string(n % 7) + "/f" + std::to_string(n));
    size_t size = (n * 7919u) % 300000u + 1;
    auto want = pattern(n + 1000, 0, size);
    std::string got = read_file(name);
    ASSERT_EQ(got.size(), size) << name;
    EXPECT_EQ(std::memcmp(got.data(), want.data(), size), 0) << name;
  }
  std::map<std::string, std::string> tree;
  std::string error;
  ASSERT_TRUE(digest_tree(mountpoint(), &tree, &error)) << error;
  // And the recovered filesystem keeps working and unmounts cleanly.
  ASSERT_NO_FATAL_FAILURE(write_pattern_file("after", 1, 5000));
  ASSERT_NO_FATAL_FAILURE(remount());
  std::map<std::string, std::string> again;
  ASSERT_TRUE(digest_tree(mountpoint(), &again, &error)) << error;
  EXPECT_EQ(again.size(), tree.size() + 1);
}

// `mount -t fuse.sealfs` and fstab go through mount.fuse3, which runs
// `sealfs TARGET MOUNTPOINT -o OPTIONS` found in PATH and lets it detach.
// mount(8) resets PATH to the system directories, where the built daemon
// is not, so the test runs the helper itself, as mount(8) would.
TEST_F(LifecycleTest, MountCommandAndFstabOptions) {
  MountConfig config;
  ASSERT_NO_FATAL_FAILURE(format(config));
  std::string bindir = std::filesystem::path(sealfs_bin()).parent_path();
  const char* old_path = std::getenv("PATH");
  std::string env_path = "PATH=" + bindir + ":" + (old_path ? old_path : "/usr/bin:/bin");
  std::string output;
  std::string options = "rw,nosuid,nodev,noatime,_netdev,nofail,defaults,allow_other";
  if (emulated()) options += ",emulate_pmem";
  int rc = run_command({"mount.fuse3", region_path(), mountpoint(), "-t", "fuse.sealfs", "-o",
                        options},
                       &output, std::nullopt, 0, {env_path});
  ASSERT_EQ(rc, 0) << output;
  // The daemon reported success only once mounted: no waiting needed.
  ASSERT_TRUE(is_mounted(mountpoint()));
  auto pid = find_daemon(mountpoint());
  ASSERT_TRUE(pid.has_value());
  std::string info = read_file("/proc/self/mountinfo");
  EXPECT_NE(info.find(mountpoint() + " rw,nosuid,nodev,noatime"), std::string::npos) << info;
  ASSERT_NO_FATAL_FAILURE(write_pattern_file("via-mount", 8, 12345));
  output.clear();
  rc = run_command({"umount", mountpoint()}, &output);
  ASSERT_EQ(rc, 0) << output;
  ASSERT_TRUE(wait_pid_gone(*pid, 30s)) << "daemon still running after umount";
  ASSERT_NO_FATAL_FAILURE(mount());
  struct stat st {};
  ASSERT_EQ(stat(path("via-mount").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 12345);
}

TEST_F(LifecycleTest, MountErrorsAreReportedBeforeDetaching) {
  auto try_mount = [&](std::vector<std::string> extra, std::string* output) {
    std::vector<std::string> argv = {sealfs_bin()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv, output);
  };
  std::string out;
  EXPECT_EQ(try_mount({dir() + "/missing.img", mountpoint()}, &out), 1);
  EXPECT_NE(out.find("cannot open"), std::string::npos) << out;

  write_file(dir() + "/zeros.img", std::string(64 << 20, '\0'));
  out.clear();
  EXPECT_EQ(try_mount({dir() + "/zeros.img", mountpoint()}, &out), 1);
  EXPECT_NE(out.find("cannot mount"), std::string::npos) << out;

  ASSERT_NO_FATAL_FAILURE(format(MountConfig{}));
  out.clear();
  EXPECT_EQ(try_mount({region_path(), mountpoint(), "-o", "frobnicate"}, &out), 1);
  EXPECT_NE(out.find("unknown mount option 'frobnicate'"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(try_mount({region_path(), mountpoint(), "-o", "revoke=later"}, &out), 1);
  EXPECT_NE(out.find("revoke"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(try_mount({region_path(), dir() + "/no-such-dir"}, &out), 1);
  EXPECT_FALSE(is_mounted(mountpoint()));
  // The reason once ("...: No such file or directory: No such file or
  // directory" was printed).
  const std::string reason = std::strerror(ENOENT);
  const size_t first = out.find(reason);
  EXPECT_NE(first, std::string::npos) << out;
  EXPECT_EQ(out.find(reason, first + 1), std::string::npos) << out;

  // Both superblocks gone: a clear refusal, not a crash.
  {
    int fd = open(region_path().c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    std::string junk(4096, 'J');
    ASSERT_EQ(pwrite(fd, junk.data(), junk.size(), 0), 4096);
    ASSERT_EQ(pwrite(fd, junk.data(), junk.size(), (1ll << 30) - 4096), 4096);
    close(fd);
  }
  out.clear();
  EXPECT_EQ(try_mount({region_path(), mountpoint()}, &out), 1);
  EXPECT_NE(out.find("cannot mount"), std::string::npos) << out;
  EXPECT_FALSE(is_mounted(mountpoint()));

  // Both superblocks fail their crc: fsck cannot repair that, so the
  // refusal does not send the user to fsck -y (it did).
  ASSERT_NO_FATAL_FAILURE(format(MountConfig{}));
  {
    int fd = open(region_path().c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "X", 1, 200), 1);
    ASSERT_EQ(pwrite(fd, "X", 1, (1ll << 30) - 4096 + 200), 1);
    close(fd);
  }
  out.clear();
  EXPECT_EQ(try_mount({region_path(), mountpoint()}, &out), 1);
  EXPECT_NE(out.find("no superblock copy is usable"), std::string::npos) << out;
  EXPECT_EQ(out.find("fsck.sealfs -y"), std::string::npos) << out;

  out.clear();
  EXPECT_EQ(try_mount({"-V"}, &out), 0);
  EXPECT_NE(out.find("sealfs"), std::string::npos);
}

// A detached daemon (no -f) started with a relative mount point unmounts
// at SIGTERM: it works from "/" once detached, and the unmount named the
// mount point as given, so the mount stayed, dead (ENOTCONN), until
// `fusermount3 -u -z` (a new user's report).
TEST_F(LifecycleTest, DetachedDaemonWithARelativeMountPointUnmountsAtSigterm) {
  ASSERT_NO_FATAL_FAILURE(format(MountConfig{}));
  const std::filesystem::path point(mountpoint());
  const std::string relative = point.filename().string();
  std::string out;
  ASSERT_EQ(run_command({"sh", "-c",
                         "cd '" + point.parent_path().string() + "' && exec '" + sealfs_bin() +
                             "' '" + region_path() + "' '" + relative + "'"},
                        &out),
            0)
      << out;
  ASSERT_TRUE(is_mounted(mountpoint()));
  std::optional<pid_t> daemon;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = read_file(entry.path().string() + "/cmdline");
    if (cmdline.find(region_path() + '\0' + relative + '\0') != std::string::npos) {
      daemon = static_cast<pid_t>(std::stol(name));
    }
  }
  ASSERT_TRUE(daemon.has_value()) << "no daemon for " << region_path();
  ASSERT_EQ(kill(*daemon, SIGTERM), 0);
  EXPECT_TRUE(wait_pid_gone(*daemon, 30s));
  const bool left = !wait_for_mount_state(mountpoint(), false, 10s);
  if (left) run_command({"fusermount3", "-u", "-z", mountpoint()});
  EXPECT_FALSE(left) << "the daemon exited and left its mount behind";
}

// A user mounts their own region: the daemon runs as that user and mounts
// through the setuid fusermount3.
TEST_F(LifecycleTest, UnprivilegedMount) {
  std::optional<TestUser> user = test_user();
  ASSERT_TRUE(user.has_value());
  uid_t uid = user->uid;
  gid_t gid = user->gid;
  ASSERT_NE(uid, 0u);

  MountConfig config;
  config.uid = uid;
  config.gid = gid;
  ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  std::string info = read_file("/proc/self/mountinfo");
  EXPECT_NE(info.find("user_id=" + std::to_string(uid)), std::string::npos) << info;

  std::string script = "set -e; cd '" + mountpoint() +
                       "'; echo hello > f; mkdir d; mv f d/g; cat d/g; stat -c %u:%g d/g; "
                       "ln -s d/g s; cat s";
  std::string out;
  ASSERT_EQ(run_command({"/bin/sh", "-c", script}, &out, uid, gid), 0) << out;
  EXPECT_EQ(out, "hello\n" + std::to_string(uid) + ":" + std::to_string(gid) + "\nhello\n");
  // Without allow_other, nobody else (not even root) may look in.
  struct stat st {};
  EXPECT_ERRNO(stat(path("d").c_str(), &st), EACCES);

  ASSERT_NO_FATAL_FAILURE(unmount());  // fusermount3 -u as the user
  ASSERT_NO_FATAL_FAILURE(mount());
  out.clear();
  ASSERT_EQ(run_command({"cat", path("d/g")}, &out, uid, gid), 0) << out;
  EXPECT_EQ(out, "hello\n");
}

}  // namespace
}  // namespace sealfs::itest
