// What the daemon checks before it mounts: a mount point that is not a
// directory is refused with nothing mounted over it, and a region that users
// outside the mount's reach can read is named in a warning.
#include <grp.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "mount_fixture.h"

namespace sealfs::itest {
namespace {

class StartupChecksTest : public MountFixture {
 protected:
  // Runs the daemon without -f, expecting a refusal: had it mounted, it
  // would have detached and returned 0.
  int try_mount_on(const std::string& mountpoint, std::string* output) {
    // mountinfo names what a symlink resolves to.
    char real[PATH_MAX];
    const std::string resolved = realpath(mountpoint.c_str(), real) != nullptr ? real : mountpoint;
    std::vector<std::string> argv = {sealfs_bin(), region_path(), mountpoint};
    if (emulated()) argv.insert(argv.end(), {"-o", "emulate_pmem"});
    int rc = run_command(argv, output);
    // Never leave a mount over a file behind, even if the check failed
    // (mounts may be stacked: one per attempt).
    for (int i = 0; i < 8 && is_mounted(resolved); ++i) {
      ADD_FAILURE() << "the daemon mounted over " << resolved;
      umount2(resolved.c_str(), MNT_DETACH);
    }
    return rc;
  }

  // A mount and unmount; the daemon's warnings land in log_path().
  void mount_once() {
    ASSERT_NO_FATAL_FAILURE(mount());
    // The lease engine starts just after the kernel mount appears, and
    // fails the daemon if the mount is gone by then: let it start first.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    char value[256];
    while (getxattr(mountpoint().c_str(), "user.sealfs.control", value, sizeof(value)) <= 0 &&
           std::chrono::steady_clock::now() < deadline) {
      usleep(10'000);  // nothing to wait on: the xattr has no notification
    }
    ASSERT_NO_FATAL_FAILURE(unmount());
  }
};

TEST_F(StartupChecksTest, RegularFileMountpointIsRefusedAndLeftAlone) {
  ASSERT_NO_FATAL_FAILURE(format(MountConfig{}));
  const std::string file = dir() + "/passwd-like";
  write_file(file, "root:x:0:0:root:/root:/bin/bash\n");
  std::string out;
  EXPECT_EQ(try_mount_on(file, &out), 1);
  EXPECT_NE(out.find("mount point " + file + " is a regular file, not a directory"),
            std::string::npos)
      << out;
  EXPECT_EQ(read_file(file), "root:x:0:0:root:/root:/bin/bash\n");
  EXPECT_FALSE(is_mounted(file));

  // A symlink to that file is the file.
  const std::string link = dir() + "/link-to-file";
  ASSERT_EQ(symlink(file.c_str(), link.c_str()), 0) << std::strerror(errno);
  out.clear();
  EXPECT_EQ(try_mount_on(link, &out), 1);
  EXPECT_NE(out.find("is a regular file, not a directory"), std::string::npos) << out;
  EXPECT_FALSE(is_mounted(file));
  EXPECT_EQ(read_file(file), "root:x:0:0:root:/root:/bin/bash\n");

  // A device node.
  out.clear();
  EXPECT_EQ(try_mount_on("/dev/null", &out), 1);
  EXPECT_NE(out.find("is a character device, not a directory"), std::string::npos) << out;

  // The same daemon mounts on a directory (and on a symlink to one).
  const std::string dir_link = dir() + "/link-to-mnt";
  ASSERT_EQ(symlink(mountpoint().c_str(), dir_link.c_str()), 0);
  out.clear();
  std::vector<std::string> argv = {sealfs_bin(), region_path(), dir_link};
  if (emulated()) argv.insert(argv.end(), {"-o", "emulate_pmem"});
  EXPECT_EQ(run_command(argv, &out), 0) << out;
  ASSERT_TRUE(wait_for_mount_state(mountpoint(), true, std::chrono::seconds(10)));
  out.clear();
  EXPECT_EQ(run_command({"fusermount3", "-u", mountpoint()}, &out), 0) << out;
  EXPECT_TRUE(wait_for_mount_state(mountpoint(), false, std::chrono::seconds(10)));
}

TEST_F(StartupChecksTest, RegionReadableByOthersIsWarnedAbout) {
  const std::string warning = "by all users";
  ASSERT_NO_FATAL_FAILURE(format(MountConfig{}));  // the fixture makes it 0600
  ASSERT_NO_FATAL_FAILURE(mount_once());
  EXPECT_EQ(log_count(warning), 0u);

  ASSERT_EQ(chmod(region_path().c_str(), 0644), 0);
  ASSERT_NO_FATAL_FAILURE(mount_once());
  EXPECT_EQ(log_count(region_path() + " is readable by all users (mode 0644)"), 1u)
      << read_file(log_path());

  ASSERT_EQ(chmod(region_path().c_str(), 0602), 0);
  ASSERT_NO_FATAL_FAILURE(mount_once());
  EXPECT_EQ(log_count(region_path() + " is writable by all users (mode 0602)"), 1u)
      << read_file(log_path());
}

// Group access is exposure unless the group is dax_group or the owner's own
// private group.
TEST_F(StartupChecksTest, RegionGroupAccessIsWarnedUnlessDaxGroupOrPrivate) {
  std::optional<TestUser> user = test_user();
  ASSERT_TRUE(user.has_value());
  struct group* gr = getgrgid(user->gid);
  ASSERT_NE(gr, nullptr);
  const std::string other_group = gr->gr_name;
  const gid_t other_gid = gr->gr_gid;
  ASSERT_NE(other_gid, 0u);

  ASSERT_NO_FATAL_FAILURE(format(MountConfig{}));
  const std::string exposed = region_path() + " is readable and writable by group " +
                              other_group + " (mode 0660)";
  ASSERT_EQ(chmod(region_path().c_str(), 0660), 0);
  ASSERT_EQ(chown(region_path().c_str(), 0, other_gid), 0);
  ASSERT_NO_FATAL_FAILURE(mount_once());
  EXPECT_EQ(log_count(exposed), 1u) << read_file(log_path());

  config().options = "dax_group=" + other_group;
  ASSERT_NO_FATAL_FAILURE(mount_once());
  EXPECT_EQ(log_count(exposed), 1u) << "dax_group members may map the region anyway";

  // The same group as its owner's private group (useradd makes one) is the
  // owner alone.
  config().options.clear();
  ASSERT_EQ(chown(region_path().c_str(), user->uid, other_gid), 0);
  ASSERT_NO_FATAL_FAILURE(mount_once());
  EXPECT_EQ(log_count("by group"), 1u) << read_file(log_path());
}

}  // namespace
}  // namespace sealfs::itest
