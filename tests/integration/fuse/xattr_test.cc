// Extended attributes sized like ext4 and XFS on a real mount
// (docs/format.md §9): a thousand attributes on one file, 64 KiB values,
// listxattr's size query and ERANGE, XATTR_CREATE / XATTR_REPLACE, ENOSPC
// on a full region leaving the old value in place, and all of it across a
// remount, with fsck.sealfs -n clean afterwards.
#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include "mount_fixture.h"

namespace sealfs::itest {
namespace {

std::string value_for(int i, size_t size) {
  std::string v(size, '\0');
  for (size_t k = 0; k < size; ++k) v[k] = static_cast<char>('a' + (i * 7 + k) % 26);
  return v;
}

class XattrTest : public MountFixture {
 protected:
  std::string get(const std::string& file, const std::string& name) {
    ssize_t n = getxattr(file.c_str(), name.c_str(), nullptr, 0);
    if (n < 0) return "errno " + std::to_string(errno);
    std::string v(static_cast<size_t>(n), '\0');
    ssize_t m = getxattr(file.c_str(), name.c_str(), v.data(), v.size());
    if (m != n) return "size changed";
    return v;
  }
  std::set<std::string> list(const std::string& file) {
    ssize_t n = listxattr(file.c_str(), nullptr, 0);
    EXPECT_GE(n, 0) << std::strerror(errno);
    std::string buf(static_cast<size_t>(std::max<ssize_t>(n, 0)), '\0');
    EXPECT_EQ(listxattr(file.c_str(), buf.data(), buf.size()), n);
    std::set<std::string> names;
    for (size_t at = 0; at < buf.size();) {
      std::string name(buf.c_str() + at);
      names.insert(name);
      at += name.size() + 1;
    }
    return names;
  }
  void fsck_clean() {
    std::string out;
    EXPECT_EQ(run_command({fsck_bin(), "-n", region_path()}, &out), 0) << out;
  }
};

TEST_F(XattrTest, AThousandAttributesOnOneFile) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  const std::string f = path("many");
  write_file(f, "x");
  for (int i = 0; i < 1000; ++i) {
    std::string name = "user.attr." + std::to_string(i);
    std::string v = value_for(i, 16 + i % 50);
    ASSERT_EQ(setxattr(f.c_str(), name.c_str(), v.data(), v.size(), XATTR_CREATE), 0)
        << name << ": " << std::strerror(errno);
  }
  // The size query, then ERANGE for a buffer one byte short.
  ssize_t need = listxattr(f.c_str(), nullptr, 0);
  size_t expect = 0;
  for (int i = 0; i < 1000; ++i) expect += std::string("user.attr." + std::to_string(i)).size() + 1;
  ASSERT_EQ(need, static_cast<ssize_t>(expect));
  std::string small(expect - 1, '\0');
  errno = 0;
  EXPECT_EQ(listxattr(f.c_str(), small.data(), small.size()), -1);
  EXPECT_EQ(errno, ERANGE);
  char tiny[4];
  errno = 0;
  EXPECT_EQ(getxattr(f.c_str(), "user.attr.999", tiny, sizeof tiny), -1);
  EXPECT_EQ(errno, ERANGE);
  EXPECT_EQ(list(f).size(), 1000u);
  // Remove every third, replace every fifth.
  for (int i = 0; i < 1000; i += 3) {
    ASSERT_EQ(removexattr(f.c_str(), ("user.attr." + std::to_string(i)).c_str()), 0);
  }
  for (int i = 1; i < 1000; i += 5) {
    std::string v = value_for(i + 1, 100);
    std::string name = "user.attr." + std::to_string(i);
    int rc = setxattr(f.c_str(), name.c_str(), v.data(), v.size(), XATTR_REPLACE);
    EXPECT_EQ(rc == 0, i % 3 != 0) << name;
  }
  ASSERT_NO_FATAL_FAILURE(remount());
  std::set<std::string> names = list(f);
  for (int i = 0; i < 1000; ++i) {
    std::string name = "user.attr." + std::to_string(i);
    if (i % 3 == 0) {
      EXPECT_EQ(names.count(name), 0u) << name;
      EXPECT_EQ(get(f, name), "errno " + std::to_string(ENODATA));
      continue;
    }
    EXPECT_EQ(names.count(name), 1u) << name;
    std::string want = i % 5 == 1 ? value_for(i + 1, 100) : value_for(i, 16 + i % 50);
    ASSERT_EQ(get(f, name), want) << name;
  }
  ASSERT_NO_FATAL_FAILURE(unmount());
  fsck_clean();
}

TEST_F(XattrTest, SixtyFourKibValues) {
  ASSERT_NO_FATAL_FAILURE(format_and_mount());
  const std::string f = path("big");
  write_file(f, "x");
  const std::string big = value_for(3, 65536);
  ASSERT_EQ(setxattr(f.c_str(), "user.big", big.data(), big.size(), 0), 0) << std::strerror(errno);
  const std::string other = value_for(5, 65536);
  ASSERT_EQ(setxattr(f.c_str(), "trusted.big", other.data(), other.size(), XATTR_CREATE), 0)
      << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(setxattr(f.c_str(), "user.big", "x", 1, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  errno = 0;
  EXPECT_EQ(setxattr(f.c_str(), "user.none", "x", 1, XATTR_REPLACE), -1);
  EXPECT_EQ(errno, ENODATA);
  std::string over = value_for(1, 65537);
  errno = 0;
  EXPECT_EQ(setxattr(f.c_str(), "user.over", over.data(), over.size(), 0), -1);
  EXPECT_EQ(errno, E2BIG);
  EXPECT_EQ(getxattr(f.c_str(), "user.big", nullptr, 0), 65536);
  EXPECT_EQ(get(f, "user.big"), big);
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_EQ(get(f, "user.big"), big);
  EXPECT_EQ(get(f, "trusted.big"), other);
  // Shrink, then remove: the blocks go back.
  ASSERT_EQ(setxattr(f.c_str(), "user.big", "small", 5, XATTR_REPLACE), 0);
  ASSERT_EQ(removexattr(f.c_str(), "trusted.big"), 0);
  EXPECT_EQ(get(f, "user.big"), "small");
  EXPECT_EQ(list(f), std::set<std::string>{"user.big"});
  ASSERT_NO_FATAL_FAILURE(unmount());
  fsck_clean();
}

// A full region: the new value needs blocks that are not there, and the
// attribute keeps its old value (the transaction never commits).
TEST_F(XattrTest, NoSpaceLeavesTheOldValue) {
  MountConfig config;
  config.region_size = 64ull << 20;
  ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  const std::string f = path("f");
  write_file(f, "x");
  ASSERT_EQ(setxattr(f.c_str(), "user.v", "old", 3, 0), 0);
  // Fill the region.
  int fd = open(path("fill").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  std::string chunk(1 << 20, 'f');
  while (write(fd, chunk.data(), chunk.size()) > 0) {
  }
  std::string block(4096, 'f');
  while (write(fd, block.data(), block.size()) > 0) {
  }
  EXPECT_EQ(errno, ENOSPC);
  close(fd);
  const std::string big = value_for(9, 65536);
  errno = 0;
  EXPECT_EQ(setxattr(f.c_str(), "user.v", big.data(), big.size(), 0), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(get(f, "user.v"), "old");
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_EQ(get(f, "user.v"), "old");
  // Room again: the same value fits. The unlinked file's blocks are freed
  // when the kernel forgets its inode, which it sends on its own time.
  struct statvfs full {};
  ASSERT_EQ(statvfs(path("").c_str(), &full), 0);
  ASSERT_EQ(unlink(path("fill").c_str()), 0);
  struct statvfs now {};
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(statvfs(path("").c_str(), &now), 0);
    if (now.f_bfree > full.f_bfree + 64) break;
    usleep(10000);
  }
  ASSERT_GT(now.f_bfree, full.f_bfree + 64) << "the unlinked file's blocks were not freed in 5 s";
  ASSERT_EQ(setxattr(f.c_str(), "user.v", big.data(), big.size(), 0), 0) << std::strerror(errno);
  EXPECT_EQ(get(f, "user.v"), big);
  ASSERT_NO_FATAL_FAILURE(unmount());
  fsck_clean();
}

}  // namespace
}  // namespace sealfs::itest
