// Inode flags on a real mount: chattr / lsattr (e2fsprogs) and the raw
// FS_IOC_[FS]GETFLAGS / SETFLAGS / FSGETXATTR / FSSETXATTR ioctls, which
// Linux >= 5.13 sends to the daemon as FUSE_IOCTL; immutable and
// append-only enforced by the daemon (every forbidden operation EPERM), for
// root and for an unprivileged user; flags and project id kept across a
// remount; append-only correct under -o writeback_cache.
#include <fcntl.h>
#include <grp.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "mount_fixture.h"

namespace sealfs::itest {
namespace {

// Runs `op` (returning 0 or -1 with errno) in a child as `user` (nullopt:
// as root); returns 0 or the errno it failed with.
int errno_as(std::optional<TestUser> user, const std::function<int()>& op) {
  pid_t pid = fork();
  if (pid == 0) {
    if (user && (setgroups(0, nullptr) != 0 || setgid(user->gid) != 0 || setuid(user->uid) != 0)) {
      _exit(120);
    }
    _exit(op() == 0 ? 0 : errno);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

int open_close(const std::string& file, int flags) {
  int fd = open(file.c_str(), flags);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

int get_flags(const std::string& file, unsigned* flags) {
  int fd = open(file.c_str(), O_RDONLY | O_NONBLOCK);
  if (fd < 0) return -1;
  int rc = ioctl(fd, FS_IOC_GETFLAGS, flags);
  int err = errno;
  close(fd);
  errno = err;
  return rc;
}

int set_flags(const std::string& file, unsigned flags) {
  int fd = open(file.c_str(), O_RDONLY | O_NONBLOCK);
  if (fd < 0) return -1;
  int rc = ioctl(fd, FS_IOC_SETFLAGS, &flags);
  int err = errno;
  close(fd);
  errno = err;
  return rc;
}

int fsxattr_io(const std::string& file, unsigned long cmd, struct fsxattr* fa) {
  int fd = open(file.c_str(), O_RDONLY | O_NONBLOCK);
  if (fd < 0) return -1;
  int rc = ioctl(fd, cmd, fa);
  int err = errno;
  close(fd);
  errno = err;
  return rc;
}

class InodeFlagsTest : public MountFixture {
 protected:
  void mount_shared(const std::string& extra = "") {
    ASSERT_EQ(chmod(dir().c_str(), 0755), 0);
    MountConfig config;
    config.options = "allow_other" + (extra.empty() ? "" : "," + extra);
    ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
    ASSERT_EQ(chmod(mountpoint().c_str(), 01777), 0);
  }
  // lsattr's flag column for `file` ("----i---------e-----" style).
  std::string lsattr(const std::string& file, const std::string& option = "") {
    std::string out;
    std::vector<std::string> argv = {"lsattr", "-d"};
    if (!option.empty()) argv.push_back(option);
    argv.push_back(file);
    EXPECT_EQ(run_command(argv, &out), 0) << out;
    return out.substr(0, out.find(' ' + file));
  }
  void chattr(const std::string& change, const std::string& file) {
    std::string out;
    ASSERT_EQ(run_command({"chattr", change, file}, &out), 0) << change << " " << file << ": " << out;
  }
  // Every change of `file` (in directory `parent`) that immutable forbids,
  // tried as `as`: each must fail with EPERM.
  void expect_sealed(const std::string& parent, const std::string& file, std::optional<TestUser> as) {
    const char* f = file.c_str();
    const std::string other = parent + "/other-" + std::to_string(getpid());
    write_file(other, "other");
    if (as) {
      ASSERT_EQ(chown(other.c_str(), as->uid, as->gid), 0);
    }
    struct {
      const char* what;
      std::function<int()> op;
    } cases[] = {
        {"open O_WRONLY", [&] { return open_close(file, O_WRONLY); }},
        {"open O_RDWR|O_APPEND", [&] { return open_close(file, O_RDWR | O_APPEND); }},
        {"open O_TRUNC", [&] { return open_close(file, O_RDONLY | O_TRUNC); }},
        {"truncate", [&] { return truncate(f, 0); }},
        {"unlink", [&] { return unlink(f); }},
        {"rename", [&] { return rename(f, (file + ".moved").c_str()); }},
        {"rename over", [&] { return rename(other.c_str(), f); }},
        {"link", [&] { return link(f, (file + ".link").c_str()); }},
        {"chmod", [&] { return chmod(f, 0600); }},
        {"chown", [&] { return chown(f, as ? as->uid : 0, as ? as->gid : 0); }},
        {"utimes", [&] {
           struct timespec t[2] = {{1, 0}, {1, 0}};
           return utimensat(AT_FDCWD, f, t, 0);
         }},
        {"touch", [&] { return utimensat(AT_FDCWD, f, nullptr, 0); }},
        {"setxattr", [&] { return setxattr(f, "user.k", "v", 1, 0); }},
        {"removexattr", [&] { return removexattr(f, "user.seal"); }},
    };
    for (auto& c : cases) EXPECT_EQ(errno_as(as, c.op), EPERM) << c.what;
    unlink(other.c_str());
  }
};

TEST_F(InodeFlagsTest, ChattrImmutableRefusesEveryChangeUntilCleared) {
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  const std::string f = path("sealed");
  write_file(f, "sealed bytes");
  ASSERT_EQ(setxattr(f.c_str(), "user.seal", "1", 1, 0), 0) << std::strerror(errno);
  // A descriptor opened for writing before the flag was set.
  int early = open(f.c_str(), O_RDWR);
  ASSERT_GE(early, 0);
  struct stat before {};
  ASSERT_EQ(stat(f.c_str(), &before), 0);
  ASSERT_NO_FATAL_FAILURE(chattr("+i", f));
  EXPECT_EQ(lsattr(f).find('i') != std::string::npos, true) << lsattr(f);

  ASSERT_NO_FATAL_FAILURE(expect_sealed(mountpoint(), f, std::nullopt));
  EXPECT_EQ(pwrite(early, "X", 1, 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(ftruncate(early, 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(fallocate(early, 0, 0, 1 << 16), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(fallocate(early, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4), -1);
  EXPECT_EQ(errno, EPERM);
  close(early);
  EXPECT_EQ(read_file(f), "sealed bytes");
  struct stat st {};
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_mode, before.st_mode);
  EXPECT_EQ(st.st_mtim.tv_nsec, before.st_mtim.tv_nsec);

  ASSERT_NO_FATAL_FAILURE(chattr("-i", f));
  EXPECT_EQ(lsattr(f).find('i'), std::string::npos) << lsattr(f);
  write_file(f, "changed");
  EXPECT_EQ(read_file(f), "changed");
  EXPECT_EQ(unlink(f.c_str()), 0);
}

TEST_F(InodeFlagsTest, ImmutableDirectoryKeepsItsNames) {
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  const std::string d = path("d");
  ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  write_file(d + "/f", "f");
  ASSERT_NO_FATAL_FAILURE(chattr("+i", d));
  EXPECT_NE(lsattr(d).find('i'), std::string::npos);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return open_close(d + "/new", O_CREAT | O_WRONLY); }),
            EPERM);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return mkdir((d + "/sub").c_str(), 0755); }), EPERM);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return unlink((d + "/f").c_str()); }), EPERM);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return rename((d + "/f").c_str(), path("out").c_str()); }),
            EPERM);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return rmdir(d.c_str()); }), EPERM);
  ASSERT_NO_FATAL_FAILURE(chattr("-i", d));
  EXPECT_EQ(unlink((d + "/f").c_str()), 0);
}

TEST_F(InodeFlagsTest, AppendOnlyTakesAppendsOnly) {
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  const std::string f = path("log");
  write_file(f, "one\n");
  ASSERT_NO_FATAL_FAILURE(chattr("+a", f));
  EXPECT_NE(lsattr(f).find('a'), std::string::npos) << lsattr(f);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return open_close(f, O_WRONLY); }), EPERM);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return open_close(f, O_WRONLY | O_APPEND | O_TRUNC); }),
            EPERM);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return truncate(f.c_str(), 0); }), EPERM);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return unlink(f.c_str()); }), EPERM);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return rename(f.c_str(), path("x").c_str()); }), EPERM);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return chmod(f.c_str(), 0600); }), EPERM);
  int fd = open(f.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(write(fd, "two\n", 4), 4);
  // pwrite on an O_APPEND descriptor appends (Linux).
  ASSERT_EQ(pwrite(fd, "three\n", 6, 0), 6);
  // Clearing O_APPEND is not refused by the kernel for a FUSE file; the
  // daemon refuses the overwrite that follows.
  ASSERT_EQ(fcntl(fd, F_SETFL, 0), 0);
  EXPECT_EQ(pwrite(fd, "ONE\n", 4, 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4), -1);
  EXPECT_EQ(errno, EPERM);
  close(fd);
  EXPECT_EQ(read_file(f), "one\ntwo\nthree\n");
  ASSERT_NO_FATAL_FAILURE(chattr("-a", f));
  EXPECT_EQ(truncate(f.c_str(), 0), 0);
}

// With the writeback cache the kernel places O_APPEND writes itself and
// writes whole pages back, from offset 0 of the page: the daemon takes the
// unchanged prefix and appends the rest. Many small appends, then fsync,
// then a remount: the file is exactly the appends in order.
TEST_F(InodeFlagsTest, AppendOnlyUnderWritebackCache) {
  ASSERT_NO_FATAL_FAILURE(mount_shared("writeback_cache"));
  const std::string f = path("log");
  write_file(f, "head\n");
  ASSERT_NO_FATAL_FAILURE(chattr("+a", f));
  std::string expected = "head\n";
  int fd = open(f.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  for (int i = 0; i < 2000; ++i) {
    std::string line = "line " + std::to_string(i) + "\n";
    ASSERT_EQ(write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    expected += line;
  }
  // Then 16 MiB in 64 KiB appends: written back from a cache, these would
  // reach the daemon as several 1 MiB writes at once, in any order.
  for (int i = 0; i < 256; ++i) {
    std::string chunk(64 << 10, static_cast<char>('a' + i % 26));
    ASSERT_EQ(write(fd, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
    expected += chunk;
  }
  ASSERT_EQ(fsync(fd), 0) << std::strerror(errno);
  ASSERT_EQ(close(fd), 0);
  EXPECT_TRUE(read_file(f) == expected) << "the appends did not land in order";
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_TRUE(read_file(f) == expected) << "the appends did not land in order";
  EXPECT_EQ(errno_as(std::nullopt, [&] { return open_close(f, O_WRONLY); }), EPERM);
}

TEST_F(InodeFlagsTest, RawIoctlsAndPersistenceAcrossRemount) {
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  const std::string f = path("f");
  write_file(f, "data");
  unsigned flags = ~0u;
  ASSERT_EQ(get_flags(f, &flags), 0) << std::strerror(errno);
  EXPECT_EQ(flags, 0u);
  ASSERT_EQ(set_flags(f, FS_NODUMP_FL | FS_NOATIME_FL), 0) << std::strerror(errno);
  ASSERT_EQ(get_flags(f, &flags), 0);
  EXPECT_EQ(flags, unsigned{FS_NODUMP_FL | FS_NOATIME_FL});
  // A flag sealfs does not keep.
  EXPECT_EQ(set_flags(f, FS_NODUMP_FL | FS_SYNC_FL), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);

  struct fsxattr fa {};
  ASSERT_EQ(fsxattr_io(f, FS_IOC_FSGETXATTR, &fa), 0) << std::strerror(errno);
  EXPECT_EQ(fa.fsx_xflags, unsigned{FS_XFLAG_NODUMP | FS_XFLAG_NOATIME});
  EXPECT_EQ(fa.fsx_projid, 0u);
  fa.fsx_projid = 4242;
  fa.fsx_xflags |= FS_XFLAG_IMMUTABLE;
  ASSERT_EQ(fsxattr_io(f, FS_IOC_FSSETXATTR, &fa), 0) << std::strerror(errno);
  ASSERT_EQ(get_flags(f, &flags), 0);
  EXPECT_EQ(flags, unsigned{FS_NODUMP_FL | FS_NOATIME_FL | FS_IMMUTABLE_FL});
  EXPECT_NE(lsattr(f, "-p").find("4242"), std::string::npos) << lsattr(f, "-p");
  // On a directory too (FUSE_CAP_IOCTL_DIR).
  ASSERT_EQ(mkdir(path("d").c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(chattr("+d", path("d")));
  EXPECT_NE(lsattr(path("d")).find('d'), std::string::npos) << lsattr(path("d"));

  ASSERT_NO_FATAL_FAILURE(remount());
  ASSERT_EQ(get_flags(f, &flags), 0);
  EXPECT_EQ(flags, unsigned{FS_NODUMP_FL | FS_NOATIME_FL | FS_IMMUTABLE_FL});
  struct fsxattr after {};
  ASSERT_EQ(fsxattr_io(f, FS_IOC_FSGETXATTR, &after), 0);
  EXPECT_EQ(after.fsx_projid, 4242u);
  EXPECT_EQ(errno_as(std::nullopt, [&] { return open_close(f, O_WRONLY); }), EPERM);
  ASSERT_EQ(get_flags(path("d"), &flags), 0);
  EXPECT_EQ(flags, unsigned{FS_NODUMP_FL});
  // fsck.sealfs finds the flags valid.
  ASSERT_NO_FATAL_FAILURE(unmount());
  std::string out;
  EXPECT_EQ(run_command({fsck_bin(), "-n", region_path()}, &out), 0) << out;
  ASSERT_NO_FATAL_FAILURE(mount());
  ASSERT_NO_FATAL_FAILURE(chattr("-i", f));
}

// Changing flags changes the ctime; the ioctl's answer carries no
// attributes, so the daemon must tell the kernel, which keeps attributes
// for a day.
TEST_F(InodeFlagsTest, ChangingFlagsShowsTheNewCtimeAtOnce) {
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  const std::string f = path("f");
  write_file(f, "data");
  struct stat before {};
  ASSERT_EQ(stat(f.c_str(), &before), 0);
  usleep(20 * 1000);
  ASSERT_EQ(set_flags(f, FS_NODUMP_FL), 0) << std::strerror(errno);
  struct stat after {};
  ASSERT_EQ(stat(f.c_str(), &after), 0);
  EXPECT_GT(after.st_ctim.tv_sec * 1000000000L + after.st_ctim.tv_nsec,
            before.st_ctim.tv_sec * 1000000000L + before.st_ctim.tv_nsec);
}

// An unprivileged user: may change the flags of its own files except
// immutable and append-only (no CAP_LINUX_IMMUTABLE), nobody else's; and a
// file root made immutable refuses it every change, owner or not.
TEST_F(InodeFlagsTest, UnprivilegedUser) {
  auto user = test_user();
  ASSERT_TRUE(user.has_value()) << "SEALFS_TEST_USER (default sealfs-test) must exist";
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  const std::string mine = path("mine"), roots = path("roots");
  write_file(mine, "mine");
  ASSERT_EQ(chown(mine.c_str(), user->uid, user->gid), 0);
  write_file(roots, "roots");
  ASSERT_EQ(chmod(roots.c_str(), 0666), 0);

  EXPECT_EQ(errno_as(user, [&] { return set_flags(mine, FS_NODUMP_FL); }), 0);
  EXPECT_EQ(errno_as(user, [&] { return set_flags(mine, FS_NODUMP_FL | FS_IMMUTABLE_FL); }),
            EPERM);
  EXPECT_EQ(errno_as(user, [&] { return set_flags(mine, FS_APPEND_FL); }), EPERM);
  EXPECT_EQ(errno_as(user, [&] { return set_flags(roots, FS_NODUMP_FL); }), EPERM);
  struct fsxattr fa {};
  fa.fsx_projid = 9;
  EXPECT_EQ(errno_as(user, [&] { return fsxattr_io(roots, FS_IOC_FSSETXATTR, &fa); }), EPERM);
  unsigned flags = 0;
  ASSERT_EQ(get_flags(mine, &flags), 0);
  EXPECT_EQ(flags, unsigned{FS_NODUMP_FL});
  ASSERT_EQ(get_flags(roots, &flags), 0);
  EXPECT_EQ(flags, 0u);

  // Root seals the user's file: the owner can neither change it nor unseal it.
  ASSERT_EQ(setxattr(mine.c_str(), "user.seal", "1", 1, 0), 0) << std::strerror(errno);
  ASSERT_NO_FATAL_FAILURE(chattr("+i", mine));
  ASSERT_NO_FATAL_FAILURE(expect_sealed(mountpoint(), mine, user));
  EXPECT_EQ(errno_as(user, [&] { return set_flags(mine, FS_NODUMP_FL); }), EPERM);
  EXPECT_EQ(read_file(mine), "mine");
  ASSERT_NO_FATAL_FAILURE(chattr("-i", mine));
  EXPECT_EQ(errno_as(user, [&] { return unlink(mine.c_str()); }), 0);
}

}  // namespace
}  // namespace sealfs::itest
