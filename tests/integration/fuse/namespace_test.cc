// Names, attributes and xattrs through a mounted sealfs, with the errno a
// kernel filesystem gives in each error case.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "fs_helpers.h"
#include "mount_fixture.h"
#include "support/errno_expect.h"

namespace sealfs::itest {
namespace {

class NamespaceTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(format_and_mount());
  }
  int create(const std::string& rel, mode_t mode = 0644, int extra = 0) {
    return open(path(rel).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | extra, mode);
  }
  void touch(const std::string& rel) {
    int fd = create(rel);
    ASSERT_GE(fd, 0) << rel << ": " << std::strerror(errno);
    close(fd);
  }
};

TEST_F(NamespaceTest, CreateExclStatUnlink) {
  umask(022);
  int fd = create("a", 0666, O_EXCL);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u);  // umask applied once
  EXPECT_EQ(st.st_uid, getuid());
  EXPECT_EQ(st.st_gid, getgid());
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_nlink, 1u);
  close(fd);
  EXPECT_ERRNO(create("a", 0644, O_EXCL), EEXIST);
  ASSERT_EQ(unlink(path("a").c_str()), 0);
  EXPECT_ERRNO(stat(path("a").c_str(), &st), ENOENT);
  EXPECT_ERRNO(unlink(path("a").c_str()), ENOENT);
  EXPECT_ERRNO(open(path("missing").c_str(), O_RDONLY), ENOENT);
}

TEST_F(NamespaceTest, DirectoriesAndTypeErrors) {
  ASSERT_EQ(mkdir(path("d").c_str(), 0755), 0);
  EXPECT_ERRNO(mkdir(path("d").c_str(), 0755), EEXIST);
  ASSERT_EQ(mkdir(path("d/sub").c_str(), 0700), 0);
  ASSERT_NO_FATAL_FAILURE(touch("d/f"));
  struct stat st {};
  ASSERT_EQ(stat(path("d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_nlink, 3u);  // ".", its entry in the parent, "sub/.."
  EXPECT_ERRNO(rmdir(path("d").c_str()), ENOTEMPTY);
  EXPECT_ERRNO(rmdir(path("d/f").c_str()), ENOTDIR);
  EXPECT_ERRNO(unlink(path("d/sub").c_str()), EISDIR);
  EXPECT_ERRNO(open(path("d").c_str(), O_WRONLY), EISDIR);
  EXPECT_ERRNO(create("d/f/x"), ENOTDIR);
  EXPECT_ERRNO(mkdir(path("d/f/x").c_str(), 0755), ENOTDIR);
  EXPECT_ERRNO(mkdir(path("nope/x").c_str(), 0755), ENOENT);
  ASSERT_EQ(rmdir(path("d/sub").c_str()), 0);
  ASSERT_EQ(unlink(path("d/f").c_str()), 0);
  ASSERT_EQ(rmdir(path("d").c_str()), 0);
  EXPECT_ERRNO(stat(path("d").c_str(), &st), ENOENT);
}

TEST_F(NamespaceTest, NameLengthLimit) {
  std::string longest(255, 'n');
  std::string too_long(256, 'n');
  ASSERT_NO_FATAL_FAILURE(touch(longest));
  struct stat st {};
  EXPECT_EQ(stat(path(longest).c_str(), &st), 0);
  EXPECT_ERRNO(create(too_long), ENAMETOOLONG);
  EXPECT_ERRNO(mkdir(path(too_long).c_str(), 0755), ENAMETOOLONG);
  EXPECT_ERRNO(stat(path(too_long).c_str(), &st), ENAMETOOLONG);
}

TEST_F(NamespaceTest, SymlinksAndHardLinks) {
  int fd = create("target");
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "hello", 5), 5);
  close(fd);
  ASSERT_EQ(symlink("target", path("sym").c_str()), 0);
  ASSERT_EQ(symlink("/nowhere/at/all", path("dangling").c_str()), 0);
  EXPECT_ERRNO(symlink("x", path("sym").c_str()), EEXIST);
  struct stat st {};
  ASSERT_EQ(lstat(path("sym").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_size, 6);
  char buf[256];
  ssize_t n = readlink(path("sym").c_str(), buf, sizeof buf);
  ASSERT_EQ(n, 6);
  EXPECT_EQ(std::string(buf, 6), "target");
  EXPECT_EQ(read_file(path("sym")), "hello");
  EXPECT_ERRNO(stat(path("dangling").c_str(), &st), ENOENT);
  EXPECT_ERRNO(readlink(path("target").c_str(), buf, sizeof buf), EINVAL);
  std::string long_target(3000, 't');
  ASSERT_EQ(symlink(long_target.c_str(), path("longsym").c_str()), 0);
  n = readlink(path("longsym").c_str(), buf, sizeof buf);
  EXPECT_EQ(n, static_cast<ssize_t>(sizeof buf));  // truncated, as readlink(2) does

  ASSERT_EQ(link(path("target").c_str(), path("hard").c_str()), 0);
  struct stat a {}, b {};
  ASSERT_EQ(stat(path("target").c_str(), &a), 0);
  ASSERT_EQ(stat(path("hard").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(b.st_nlink, 2u);
  EXPECT_ERRNO(link(path("target").c_str(), path("hard").c_str()), EEXIST);
  ASSERT_EQ(mkdir(path("dir").c_str(), 0755), 0);
  EXPECT_ERRNO(link(path("dir").c_str(), path("dirlink").c_str()), EPERM);
  ASSERT_EQ(unlink(path("target").c_str()), 0);
  EXPECT_EQ(read_file(path("hard")), "hello");
  ASSERT_EQ(stat(path("hard").c_str(), &b), 0);
  EXPECT_EQ(b.st_nlink, 1u);
}

int renameat2_(const std::string& from, const std::string& to, unsigned flags) {
  return static_cast<int>(
      syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

TEST_F(NamespaceTest, RenameRules) {
  int fd = create("a");
  ASSERT_EQ(write(fd, "A", 1), 1);
  close(fd);
  fd = create("b");
  ASSERT_EQ(write(fd, "B", 1), 1);
  close(fd);
  ASSERT_EQ(mkdir(path("d").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(path("full").c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(touch("full/x"));

  ASSERT_EQ(rename(path("a").c_str(), path("c").c_str()), 0);
  ASSERT_EQ(rename(path("c").c_str(), path("b").c_str()), 0);  // replaces
  EXPECT_EQ(read_file(path("b")), "A");
  struct stat st {};
  EXPECT_ERRNO(stat(path("c").c_str(), &st), ENOENT);
  EXPECT_ERRNO(rename(path("b").c_str(), path("d").c_str()), EISDIR);
  EXPECT_ERRNO(rename(path("d").c_str(), path("b").c_str()), ENOTDIR);
  EXPECT_ERRNO(rename(path("d").c_str(), path("full").c_str()), ENOTEMPTY);
  EXPECT_ERRNO(rename(path("d").c_str(), path("d/inside").c_str()), EINVAL);
  EXPECT_ERRNO(rename(path("missing").c_str(), path("x").c_str()), ENOENT);
  ASSERT_EQ(rename(path("b").c_str(), path("d/moved").c_str()), 0);
  EXPECT_EQ(read_file(path("d/moved")), "A");
  ASSERT_EQ(mkdir(path("empty").c_str(), 0755), 0);
  ASSERT_EQ(rename(path("d").c_str(), path("empty").c_str()), 0);  // over an empty dir
  EXPECT_EQ(read_file(path("empty/moved")), "A");
  // Across filesystems: the kernel refuses before asking the daemon.
  EXPECT_ERRNO(rename(path("empty/moved").c_str(), (dir() + "/outside").c_str()), EXDEV);
}

// renameat2's flags, apart from the plain rules: NFS has no way to carry them.
TEST_F(NamespaceTest, RenameFlags) {
  write_file(path("a"), "A");
  write_file(path("b"), "B");
  EXPECT_ERRNO(renameat2_(path("a"), path("b"), RENAME_NOREPLACE), EEXIST);
  ASSERT_EQ(renameat2_(path("a"), path("b"), RENAME_EXCHANGE), 0) << std::strerror(errno);
  EXPECT_EQ(read_file(path("a")), "B");
  EXPECT_EQ(read_file(path("b")), "A");
  EXPECT_ERRNO(renameat2_(path("a"), path("none"), RENAME_EXCHANGE), ENOENT);
  EXPECT_ERRNO(renameat2_(path("a"), path("c"), RENAME_NOREPLACE | RENAME_EXCHANGE), EINVAL);
  ASSERT_EQ(renameat2_(path("a"), path("c"), RENAME_NOREPLACE), 0);
  EXPECT_EQ(read_file(path("c")), "B");
}

TEST_F(NamespaceTest, AttributesChangeAndStick) {
  ASSERT_NO_FATAL_FAILURE(touch("f"));
  ASSERT_EQ(chmod(path("f").c_str(), 04751), 0);
  ASSERT_EQ(chown(path("f").c_str(), 1234, 5678), 0);
  struct timespec times[2] = {{1000000000, 123456789}, {1500000000, 987654321}};
  ASSERT_EQ(truncate(path("f").c_str(), 12345), 0);  // before utimensat: it sets mtime
  ASSERT_EQ(utimensat(AT_FDCWD, path("f").c_str(), times, 0), 0);
  struct stat st {};
  ASSERT_EQ(stat(path("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07777, 0751u);  // chown cleared setuid (the kernel asks us)
  EXPECT_EQ(st.st_size, 12345);
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 987654321);
  struct timespec before {};
  clock_gettime(CLOCK_REALTIME, &before);
  struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  ASSERT_EQ(utimensat(AT_FDCWD, path("f").c_str(), now, 0), 0);
  ASSERT_EQ(stat(path("f").c_str(), &st), 0);
  EXPECT_GE(st.st_atim.tv_sec, before.tv_sec);
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);
  EXPECT_GE(st.st_ctim.tv_sec, before.tv_sec);
  EXPECT_ERRNO(truncate(path("nope").c_str(), 1), ENOENT);
  ASSERT_EQ(mkdir(path("d").c_str(), 0755), 0);
  EXPECT_ERRNO(truncate(path("d").c_str(), 1), EISDIR);
}

TEST_F(NamespaceTest, SpecialFiles) {
  ASSERT_EQ(mkfifo(path("fifo").c_str(), 0600), 0);
  ASSERT_EQ(mknod(path("sock").c_str(), S_IFSOCK | 0600, 0), 0);
  ASSERT_EQ(mknod(path("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(mknod(path("blk").c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);
  ASSERT_EQ(mknod(path("plain").c_str(), S_IFREG | 0600, 0), 0);
  struct stat st {};
  ASSERT_EQ(stat(path("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(stat(path("sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  ASSERT_EQ(stat(path("null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  ASSERT_EQ(stat(path("blk").c_str(), &st), 0);
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(7, 0));
  ASSERT_EQ(stat(path("plain").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_ERRNO(mkfifo(path("fifo").c_str(), 0600), EEXIST);
}

TEST_F(NamespaceTest, ExtendedAttributes) {
  ASSERT_NO_FATAL_FAILURE(touch("f"));
  std::string p = path("f");
  ASSERT_EQ(setxattr(p.c_str(), "user.one", "value1", 6, 0), 0) << std::strerror(errno);
  ASSERT_EQ(setxattr(p.c_str(), "user.two", "", 0, 0), 0);
  EXPECT_ERRNO(setxattr(p.c_str(), "user.one", "x", 1, XATTR_CREATE), EEXIST);
  EXPECT_ERRNO(setxattr(p.c_str(), "user.none", "x", 1, XATTR_REPLACE), ENODATA);
  EXPECT_EQ(getxattr(p.c_str(), "user.one", nullptr, 0), 6);  // size probe
  char small[3];
  EXPECT_ERRNO(getxattr(p.c_str(), "user.one", small, sizeof small), ERANGE);
  char buf[64];
  ASSERT_EQ(getxattr(p.c_str(), "user.one", buf, sizeof buf), 6);
  EXPECT_EQ(std::string(buf, 6), "value1");
  EXPECT_EQ(getxattr(p.c_str(), "user.two", buf, sizeof buf), 0);
  EXPECT_ERRNO(getxattr(p.c_str(), "user.none", buf, sizeof buf), ENODATA);
  ASSERT_EQ(setxattr(p.c_str(), "user.one", "v2", 2, XATTR_REPLACE), 0);
  ASSERT_EQ(getxattr(p.c_str(), "user.one", buf, sizeof buf), 2);

  ssize_t size = listxattr(p.c_str(), nullptr, 0);
  ASSERT_GT(size, 0);
  std::string list(static_cast<size_t>(size), '\0');
  ASSERT_EQ(listxattr(p.c_str(), list.data(), list.size()), size);
  std::set<std::string> names;
  for (size_t pos = 0; pos < list.size(); pos = list.find('\0', pos) + 1) {
    names.insert(list.c_str() + pos);
  }
  EXPECT_TRUE(names.count("user.one"));
  EXPECT_TRUE(names.count("user.two"));
  EXPECT_ERRNO(listxattr(p.c_str(), list.data(), 1), ERANGE);

  ASSERT_EQ(removexattr(p.c_str(), "user.one"), 0);
  EXPECT_ERRNO(removexattr(p.c_str(), "user.one"), ENODATA);
  EXPECT_ERRNO(getxattr(p.c_str(), "user.one", buf, sizeof buf), ENODATA);
  EXPECT_ERRNO(getxattr(path("missing").c_str(), "user.one", buf, sizeof buf), ENOENT);
}

// trusted.* apart from user.*: NFSv4.2 carries user.* attributes only.
TEST_F(NamespaceTest, TrustedXattrs) {
  ASSERT_NO_FATAL_FAILURE(touch("f"));
  std::string p = path("f");
  ASSERT_EQ(setxattr(p.c_str(), "trusted.three", "3", 1, 0), 0) << std::strerror(errno);
  char buf[8];
  ASSERT_EQ(getxattr(p.c_str(), "trusted.three", buf, sizeof buf), 1);
  EXPECT_EQ(buf[0], '3');
  std::string list(256, '\0');
  ssize_t size = listxattr(p.c_str(), list.data(), list.size());
  ASSERT_GT(size, 0);
  list.resize(static_cast<size_t>(size));
  EXPECT_NE(list.find("trusted.three"), std::string::npos);
  ASSERT_EQ(removexattr(p.c_str(), "trusted.three"), 0);
  EXPECT_ERRNO(getxattr(p.c_str(), "trusted.three", buf, sizeof buf), ENODATA);
}

TEST_F(NamespaceTest, StatfsReportsUsage) {
  struct statvfs before {};
  ASSERT_EQ(statvfs(mountpoint().c_str(), &before), 0);
  EXPECT_EQ(before.f_bsize, 4096u);
  EXPECT_EQ(before.f_namemax, 255u);
  EXPECT_GT(before.f_blocks, 0u);
  EXPECT_LE(before.f_bfree, before.f_blocks);
  EXPECT_GT(before.f_files, 0u);
  int fd = create("big");
  ASSERT_GE(fd, 0);
  auto data = pattern(1, 0, 8 << 20);
  ASSERT_TRUE(pwrite_all(fd, data.data(), data.size(), 0));
  close(fd);
  struct statvfs after {};
  ASSERT_EQ(statvfs(mountpoint().c_str(), &after), 0);
  EXPECT_LE(after.f_bfree + (8u << 20) / 4096, before.f_bfree);
  EXPECT_EQ(after.f_ffree + 1, before.f_ffree);
}

// Lookup references: an unlinked file's inode comes back once the kernel
// forgets it, so a create/stat/unlink cycle must not leak inodes.
TEST_F(NamespaceTest, InodesComeBackAfterForget) {
  struct statvfs before {};
  ASSERT_EQ(statvfs(mountpoint().c_str(), &before), 0);
  ASSERT_EQ(mkdir(path("d").c_str(), 0755), 0);
  for (int i = 0; i < 200; ++i) ASSERT_NO_FATAL_FAILURE(touch("d/f" + std::to_string(i)));
  ASSERT_EQ(list_dir(path("d")).size(), 200u);  // readdirplus hands out references
  for (int i = 0; i < 200; ++i) {
    struct stat st {};
    ASSERT_EQ(stat(path("d/f" + std::to_string(i)).c_str(), &st), 0);
    ASSERT_EQ(unlink(path("d/f" + std::to_string(i)).c_str()), 0);
  }
  ASSERT_EQ(rmdir(path("d").c_str()), 0);
  // Forgets are asynchronous: drop the kernel's caches and wait (bounded)
  // for the count to come back.
  struct statvfs after {};
  for (int attempt = 0; attempt < 200; ++attempt) {
    sync();
    write_file("/proc/sys/vm/drop_caches", "2");
    ASSERT_EQ(statvfs(mountpoint().c_str(), &after), 0);
    if (after.f_ffree == before.f_ffree) break;
    usleep(10000);
  }
  EXPECT_EQ(after.f_ffree, before.f_ffree);
}

TEST_F(NamespaceTest, ReaddirTenThousandEntries) {
  ASSERT_EQ(mkdir(path("many").c_str(), 0755), 0);
  std::set<std::string> expected;
  for (int i = 0; i < 10000; ++i) {
    std::string name = "entry-" + std::to_string(i) + std::string(i % 40, 'x');
    ASSERT_NO_FATAL_FAILURE(touch("many/" + name));
    expected.insert(name);
  }
  int err = 0;
  auto names = list_dir(path("many"), &err);
  ASSERT_EQ(err, 0);
  EXPECT_EQ(names.size(), 10000u);
  EXPECT_EQ(names, expected);
  // d_ino from readdir(plus) matches what stat says.
  DIR* d = opendir(path("many").c_str());
  ASSERT_NE(d, nullptr);
  int checked = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.' || ++checked % 97 != 0) continue;
    struct stat st {};
    ASSERT_EQ(fstatat(dirfd(d), e->d_name, &st, 0), 0) << e->d_name;
    EXPECT_EQ(st.st_ino, e->d_ino);
    EXPECT_EQ(e->d_type, DT_REG);
  }
  closedir(d);
  // Delete half while listing (cookies stay valid).
  d = opendir(path("many").c_str());
  ASSERT_NE(d, nullptr);
  size_t seen = 0;
  int index = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    ++seen;
    if (index++ % 2 == 0) {
      ASSERT_EQ(unlinkat(dirfd(d), e->d_name, 0), 0);
    }
  }
  closedir(d);
  EXPECT_EQ(seen, 10000u);
  EXPECT_EQ(list_dir(path("many")).size(), 5000u);
}

}  // namespace
}  // namespace sealfs::itest
