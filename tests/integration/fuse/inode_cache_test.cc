// The inode cache's bound through a real mount (-o inode_cache=N): after the
// kernel forgets its inodes (drop_caches), the daemon drops them from DRAM
// (its debug log says so) and serves every file as before, read again from
// the region; changes made to inodes read again survive a remount.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "fs_helpers.h"
#include "mount_fixture.h"

namespace sealfs::itest {
namespace {

class InodeCacheMountTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    ASSERT_EQ(geteuid(), 0u) << "drop_caches needs root";
    MountConfig config;
    config.options = "inode_cache=32";
    ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  }

  // What the mount shows of every entry under `rel`: stat fields, bytes,
  // symlink targets, an xattr, and each directory's names.
  void describe_tree(const std::string& rel, std::map<std::string, std::string>* out) {
    DIR* d = opendir(path(rel).c_str());
    ASSERT_NE(d, nullptr) << rel;
    std::string names;
    std::vector<std::string> children;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      names += name + ":" + std::to_string(e->d_ino) + " ";
      children.push_back(name);
    }
    closedir(d);
    std::sort(children.begin(), children.end());
    (*out)[rel + "/"] = std::to_string(children.size()) + " entries";
    for (const std::string& name : children) {
      const std::string at = rel + "/" + name;
      struct stat st {};
      ASSERT_EQ(lstat(path(at).c_str(), &st), 0) << at;
      std::string line = "ino=" + std::to_string(st.st_ino) + " mode=" + std::to_string(st.st_mode) +
                      " nlink=" + std::to_string(st.st_nlink) + " size=" +
                      std::to_string(st.st_size) + " blocks=" + std::to_string(st.st_blocks) +
                      " mtime=" + std::to_string(st.st_mtim.tv_sec) + "." +
                      std::to_string(st.st_mtim.tv_nsec) + " ctime=" +
                      std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec);
      if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlink(path(at).c_str(), target, sizeof(target));
        ASSERT_GT(n, 0);
        line += " -> " + std::string(target, static_cast<size_t>(n));
      } else if (S_ISREG(st.st_mode)) {
        line += " bytes=" + read_file(path(at));
        char value[256];
        ssize_t n = getxattr(path(at).c_str(), "user.tag", value, sizeof(value));
        if (n >= 0) line += " tag=" + std::string(value, static_cast<size_t>(n));
      }
      (*out)[at] = line;
      if (S_ISDIR(st.st_mode)) describe_tree(at, out);
    }
  }
  std::map<std::string, std::string> describe() {
    std::map<std::string, std::string> out;
    describe_tree("", &out);
    return out;
  }
  // Makes the kernel forget what it does not use, until the daemon has
  // dropped inodes `times` times in all (its debug log), 20 s at most.
  void forget_until_dropped(size_t times) {
    for (int attempt = 0; attempt < 400 && log_count("inode cache: dropped") < times; ++attempt) {
      sync();
      write_file("/proc/sys/vm/drop_caches", "2");
      usleep(50000);
    }
    ASSERT_GE(log_count("inode cache: dropped"), times);
  }
};

TEST_F(InodeCacheMountTest, FilesReadAgainAfterTheKernelForgotThemAreUnchanged) {
  for (int d = 0; d < 3; ++d) {
    const std::string dir = "d" + std::to_string(d);
    ASSERT_EQ(mkdir(path(dir).c_str(), 0755), 0);
    for (int i = 0; i < 100; ++i) {
      const std::string f = dir + "/f" + std::to_string(i);
      // Inline (small) and in blocks (a few KiB), with an xattr on some.
      write_file(path(f), std::string(i % 2 ? 60 : 6000 + i, char('a' + (d * 7 + i) % 26)));
      if (i % 3 == 0) {
        const std::string tag = "tag" + std::to_string(i);
        ASSERT_EQ(setxattr(path(f).c_str(), "user.tag", tag.data(), tag.size(), 0), 0);
      }
    }
    ASSERT_EQ(symlink(("target-" + dir).c_str(), path(dir + "/link").c_str()), 0);
  }
  const auto before = describe();
  ASSERT_NO_FATAL_FAILURE(forget_until_dropped(1));
  EXPECT_EQ(describe(), before);

  // Changes to inodes read again: a rename across directories, an unlink,
  // an overwrite; forgotten and dropped again, then a remount.
  ASSERT_EQ(rename(path("d0/f4").c_str(), path("d1/moved").c_str()), 0);
  ASSERT_EQ(unlink(path("d2/f5").c_str()), 0);
  write_file(path("d1/f6"), "rewritten");
  const auto changed = describe();
  ASSERT_NO_FATAL_FAILURE(forget_until_dropped(log_count("inode cache: dropped") + 1));
  EXPECT_EQ(describe(), changed);
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_EQ(describe(), changed);
}

}  // namespace
}  // namespace sealfs::itest
