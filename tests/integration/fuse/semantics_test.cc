// Linux file semantics on a real mount: SEEK_DATA/SEEK_HOLE at a negative
// offset, the mount's noatime / relatime / strictatime applied to the
// daemon's own atime updates, and rename(RENAME_WHITEOUT), which overlayfs
// needs of an upper layer.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mount_fixture.h"

namespace sealfs::itest {
namespace {

int renameat2_raw(const std::string& from, const std::string& to, unsigned flags) {
  return static_cast<int>(
      syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

struct timespec atime_of(const std::string& file) {
  struct stat st {};
  EXPECT_EQ(stat(file.c_str(), &st), 0) << file;
  return st.st_atim;
}

bool same(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// An atime well before mtime and ctime: relatime updates it at the next read.
void set_old_atime(const std::string& file) {
  struct timespec times[2] = {{1000, 0}, {0, UTIME_OMIT}};
  ASSERT_EQ(utimensat(AT_FDCWD, file.c_str(), times, 0), 0) << file;
}

class SemanticsTest : public MountFixture {
 protected:
  void mount_with(const std::string& options) {
    MountConfig config;
    config.options = options;
    ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  }
};

TEST_F(SemanticsTest, SeekDataAndHoleAtANegativeOffsetIsEnxio) {
  ASSERT_NO_FATAL_FAILURE(mount_with(""));
  std::string file = path("f");
  write_file(file, std::string(8192, 'd'));
  int fd = open(file.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  errno = 0;
  EXPECT_EQ(lseek(fd, -1, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  errno = 0;
  EXPECT_EQ(lseek(fd, -4096, SEEK_HOLE), -1);
  EXPECT_EQ(errno, ENXIO);
  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), 0);
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 8192);
  close(fd);
}

// Reads reach the daemon (the kernel drops a file's cached pages at each
// open), which updates atime by the mount's policy.
TEST_F(SemanticsTest, NoatimeNeverChangesAtimeOnReadOrExec) {
  ASSERT_NO_FATAL_FAILURE(mount_with("noatime"));
  std::string file = path("r"), script = path("s");
  write_file(file, "contents");
  ASSERT_NO_FATAL_FAILURE(set_old_atime(file));
  EXPECT_EQ(read_file(file), "contents");
  // exec reads the file through the mount too.
  write_file(script, "#!/bin/sh\nexit 0\n");
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(set_old_atime(script));
  EXPECT_EQ(run_command({script}), 0);
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_EQ(atime_of(file).tv_sec, 1000);
  EXPECT_EQ(atime_of(script).tv_sec, 1000);
}

TEST_F(SemanticsTest, RelatimeUpdatesAnOldAtimeOnceOnly) {
  ASSERT_NO_FATAL_FAILURE(mount_with("relatime"));
  std::string file = path("r");
  write_file(file, "contents");
  ASSERT_NO_FATAL_FAILURE(set_old_atime(file));
  EXPECT_EQ(read_file(file), "contents");
  struct timespec first = atime_of(file);
  EXPECT_GT(first.tv_sec, 1000);
  usleep(20000);
  EXPECT_EQ(read_file(file), "contents");
  EXPECT_TRUE(same(atime_of(file), first)) << "a second read within a day moved atime";
}

TEST_F(SemanticsTest, StrictatimeUpdatesAtimeOnEveryRead) {
  ASSERT_NO_FATAL_FAILURE(mount_with("strictatime"));
  std::string file = path("r");
  write_file(file, "contents");
  EXPECT_EQ(read_file(file), "contents");
  struct timespec first = atime_of(file);
  usleep(20000);
  EXPECT_EQ(read_file(file), "contents");
  struct timespec second = atime_of(file);
  EXPECT_FALSE(same(second, first)) << "strictatime: a read left atime alone at "
                                    << first.tv_sec << "." << first.tv_nsec;
  ASSERT_NO_FATAL_FAILURE(remount());
  struct timespec after = atime_of(file);
  EXPECT_TRUE(same(after, second)) << "the last atime did not reach the media: " << after.tv_sec
                                   << "." << after.tv_nsec << " after the remount, "
                                   << second.tv_sec << "." << second.tv_nsec << " before";
}

TEST_F(SemanticsTest, RenameWhiteoutLeavesACharacterDeviceZeroZero) {
  ASSERT_NO_FATAL_FAILURE(mount_with(""));
  ASSERT_EQ(mkdir(path("d").c_str(), 0755), 0);
  write_file(path("d/a"), "moved");
  ASSERT_EQ(renameat2_raw(path("d/a"), path("b"), RENAME_WHITEOUT), 0) << std::strerror(errno);
  EXPECT_EQ(read_file(path("b")), "moved");
  ASSERT_NO_FATAL_FAILURE(remount());
  struct stat st {};
  ASSERT_EQ(lstat(path("d/a").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0u);
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_EQ(st.st_uid, getuid());
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(read_file(path("b")), "moved");
  // Over an existing target too; with RENAME_EXCHANGE it is refused.
  write_file(path("d/c"), "second");
  ASSERT_EQ(renameat2_raw(path("d/c"), path("b"), RENAME_WHITEOUT), 0) << std::strerror(errno);
  EXPECT_EQ(read_file(path("b")), "second");
  ASSERT_EQ(lstat(path("d/c").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  errno = 0;
  EXPECT_EQ(renameat2_raw(path("b"), path("d/c"), RENAME_WHITEOUT | RENAME_EXCHANGE), -1);
  EXPECT_EQ(errno, EINVAL);
  ASSERT_NO_FATAL_FAILURE(unmount());
  std::string out;
  EXPECT_EQ(run_command({fsck_bin(), "-n", region_path()}, &out), 0) << out;
}

// overlayfs with its upper layer on sealfs: deleting a lower file leaves a
// 0/0 whiteout in the upper directory.
TEST_F(SemanticsTest, OverlayfsUsesSealfsAsItsUpperLayer) {
  ASSERT_NO_FATAL_FAILURE(mount_with(""));
  std::string lower = dir() + "/lower", merged = dir() + "/merged";
  ASSERT_EQ(mkdir(lower.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(merged.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(path("upper").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(path("work").c_str(), 0755), 0);
  write_file(lower + "/gone", "lower file");
  write_file(lower + "/kept", "lower file");
  std::string data =
      "lowerdir=" + lower + ",upperdir=" + path("upper") + ",workdir=" + path("work");
  ASSERT_EQ(::mount("overlay", merged.c_str(), "overlay", 0, data.c_str()), 0)
      << std::strerror(errno);
  EXPECT_EQ(unlink((merged + "/gone").c_str()), 0) << std::strerror(errno);
  write_file(merged + "/kept", "changed above");
  struct stat st {};
  EXPECT_NE(lstat((merged + "/gone").c_str(), &st), 0);
  EXPECT_EQ(read_file(merged + "/kept"), "changed above");
  EXPECT_EQ(umount(merged.c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(lstat(path("upper/gone").c_str(), &st), 0) << "no whiteout in the upper layer";
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_EQ(read_file(path("upper/kept")), "changed above");
  EXPECT_EQ(read_file(lower + "/gone"), "lower file");
}

}  // namespace
}  // namespace sealfs::itest
