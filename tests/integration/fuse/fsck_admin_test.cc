// fsck.sealfs as an admin runs it (issue 9): given the mount point of a
// live sealfs it finds the region and refuses to repair it; through
// fsck(8) with an fstab line of type fuse.sealfs (the installed name
// fsck.fuse.sealfs, here a symlink on PATH, and LIBMOUNT_FSTAB naming the
// test's own fstab); and the daemon's refusal of a damaged or unformatted
// region says what to run.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "mount_fixture.h"
#include "sealfs/format.h"

namespace sealfs::itest {
namespace {

class FsckAdminTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    ASSERT_FALSE(fsck_bin().empty()) << "FSCK_BIN is not set";
    MountConfig config;
    config.region_size = 64ull << 20;
    ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  }

  int try_mount(std::string* output) {
    std::vector<std::string> argv = {sealfs_bin(), region_path(), mountpoint()};
    if (emulated()) argv.insert(argv.end(), {"-o", "emulate_pmem"});
    int rc = run_command(argv, output);
    if (is_mounted(mountpoint())) run_command({"fusermount3", "-u", mountpoint()});
    return rc;
  }

  // A directory on PATH holding fsck.fuse.sealfs -> the built fsck.sealfs,
  // and an fstab with one sealfs line.
  std::vector<std::string> fsck8_env() {
    std::string bin = dir() + "/sbin";
    ::mkdir(bin.c_str(), 0755);
    std::string link = bin + "/fsck.fuse.sealfs";
    ::unlink(link.c_str());
    EXPECT_EQ(::symlink(fsck_bin().c_str(), link.c_str()), 0) << std::strerror(errno);
    std::string fstab = dir() + "/fstab";
    write_file(fstab, region_path() + " " + mountpoint() + " fuse.sealfs defaults 0 2\n");
    const char* path = std::getenv("PATH");
    return {"PATH=" + bin + ":" + (path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LIBMOUNT_FSTAB=" + fstab};
  }
};

TEST_F(FsckAdminTest, MountPointNamesItsRegionWhichIsNotRepairedWhileMounted) {
  std::string out;
  EXPECT_EQ(run_command({fsck_bin(), "-y", mountpoint()}, &out), 8) << out;
  EXPECT_NE(out.find(mountpoint() + " is mounted from " + region_path()), std::string::npos)
      << out;
  EXPECT_NE(out.find("a mounted region is never repaired; unmount it before repairing it"),
            std::string::npos)
      << out;
  // -n shares the region with read-only mounts only.
  out.clear();
  EXPECT_EQ(run_command({fsck_bin(), "-n", mountpoint()}, &out), 8) << out;
  EXPECT_NE(out.find("cannot be checked consistently"), std::string::npos) << out;
  EXPECT_TRUE(is_mounted(mountpoint()));

  // Unmounted, the mount point is only a directory.
  ASSERT_NO_FATAL_FAILURE(unmount());
  out.clear();
  EXPECT_EQ(run_command({fsck_bin(), "-n", mountpoint()}, &out), 8) << out;
  EXPECT_NE(out.find("is a directory with no sealfs mounted on it"), std::string::npos) << out;
}

// The mount table names the region by the path the daemon was given. Once
// that path names another region (the mounted one renamed, a new one made
// in its place), a repair through the mount point must still be refused,
// not made on the new file (adversarial campaign of 2026-12-07).
TEST_F(FsckAdminTest, ARepairThroughTheMountPointIsRefusedWhateverThePathNamesNow) {
  const std::string moved = region_path() + ".moved";
  ASSERT_EQ(::rename(region_path().c_str(), moved.c_str()), 0) << std::strerror(errno);
  std::string out;
  ASSERT_EQ(run_command({"truncate", "-s", "64M", region_path()}, &out), 0) << out;
  ASSERT_EQ(run_command({mkfs_bin(), "-q", region_path()}, &out), 0) << out;
  struct stat before {};
  ASSERT_EQ(::stat(region_path().c_str(), &before), 0);
  out.clear();
  EXPECT_EQ(run_command({fsck_bin(), "-y", mountpoint()}, &out), 8) << out;
  EXPECT_NE(out.find("a mounted region is never repaired"), std::string::npos) << out;
  struct stat after {};
  ASSERT_EQ(::stat(region_path().c_str(), &after), 0);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  EXPECT_TRUE(is_mounted(mountpoint()));
  ASSERT_NO_FATAL_FAILURE(unmount());
  ASSERT_EQ(::rename(moved.c_str(), region_path().c_str()), 0) << std::strerror(errno);
}

TEST_F(FsckAdminTest, Fsck8RunsFsckFuseSealfsFromFstab) {
  ASSERT_NO_FATAL_FAILURE(unmount());
  auto env = fsck8_env();
  std::string out;
  // By mount point: fsck(8) finds the fstab line and passes the region.
  EXPECT_EQ(run_command({"fsck", "-n", mountpoint()}, &out, std::nullopt, 0, env), 0) << out;
  EXPECT_NE(out.find("fsck.sealfs " + region_path() + " (check only)"), std::string::npos)
      << out;
  EXPECT_NE(out.find("filesystem is clean"), std::string::npos) << out;
  // By region, as at boot: preen.
  out.clear();
  EXPECT_EQ(run_command({"fsck", "-a", region_path()}, &out, std::nullopt, 0, env), 0) << out;
  EXPECT_NE(out.find("(preen)"), std::string::npos) << out;
  // -f and -y pass through.
  out.clear();
  EXPECT_EQ(run_command({"fsck", "-f", "-y", mountpoint()}, &out, std::nullopt, 0, env), 0)
      << out;
  EXPECT_NE(out.find("(repair)"), std::string::npos) << out;

  // fsck(8) on the mounted filesystem: fsck.sealfs refuses the repair.
  ASSERT_NO_FATAL_FAILURE(mount());
  out.clear();
  EXPECT_EQ(run_command({"fsck", "-y", mountpoint()}, &out, std::nullopt, 0, env), 8) << out;
  EXPECT_NE(out.find("a mounted region is never repaired"), std::string::npos) << out;
}

TEST_F(FsckAdminTest, ProgressOnATerminalOnly) {
  ASSERT_NO_FATAL_FAILURE(unmount());
  std::string out;
  // A pipe: no progress.
  EXPECT_EQ(run_command({fsck_bin(), "-n", region_path()}, &out), 0) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
  EXPECT_EQ(out.find("Phase 3/8"), std::string::npos) << out;
  // A terminal (script(1) gives fsck a pseudo-terminal): phase, percent,
  // rate, rewritten in place.
  out.clear();
  EXPECT_EQ(run_command({"script", "-qec", fsck_bin() + " -n " + region_path(), "/dev/null"},
                        &out),
            0)
      << out;
  EXPECT_NE(out.find("\rPhase 3/8 inodes: 100.0% ("), std::string::npos) << out;
  EXPECT_NE(out.find("/s)"), std::string::npos) << out;
  EXPECT_NE(out.find("filesystem is clean"), std::string::npos) << out;
  // -q: none on a terminal either.
  out.clear();
  EXPECT_EQ(run_command({"script", "-qec", fsck_bin() + " -q -n " + region_path(), "/dev/null"},
                        &out),
            0)
      << out;
  EXPECT_EQ(out.find("Phase 3/8 inodes:"), std::string::npos) << out;
  EXPECT_NE(out.find("filesystem is clean"), std::string::npos) << out;
}

TEST_F(FsckAdminTest, RefusedMountOfADamagedRegionSaysToRunFsck) {
  write_file(mountpoint() + "/kept", "still here");
  ASSERT_NO_FATAL_FAILURE(unmount());
  // Break the root inode's crc (a time: every other field still checks).
  {
    std::ifstream in(region_path(), std::ios::binary);
    format::DiskSuperblock disk{};
    in.read(reinterpret_cast<char*>(&disk), sizeof(disk));
    uint64_t offset = disk.inode_start.get() * format::kBlockSize +
                      offsetof(format::DiskInode, atime_ns);
    std::fstream io(region_path(), std::ios::binary | std::ios::in | std::ios::out);
    io.seekg(static_cast<std::streamoff>(offset));
    char byte = 0;
    io.read(&byte, 1);
    byte ^= 1;
    io.seekp(static_cast<std::streamoff>(offset));
    io.write(&byte, 1);
    ASSERT_TRUE(io.good());
  }
  std::string out;
  EXPECT_EQ(try_mount(&out), 1) << out;
  EXPECT_NE(out.find("cannot mount"), std::string::npos) << out;
  EXPECT_NE(out.find("run fsck.sealfs -n " + region_path() + " to see the damage, fsck.sealfs -y " +
                     region_path() + " to repair it"),
            std::string::npos)
      << out;
  // Whether the files survive depends on fsck: the message says so.
  EXPECT_NE(out.find("inode 1: bad crc (fsck's repair keeps the inode if its other fields are "
                     "consistent, and clears it, losing the file, if not)"),
            std::string::npos)
      << out;
  out.clear();
  EXPECT_EQ(run_command({fsck_bin(), "-y", region_path()}, &out), 1) << out;
  EXPECT_NE(out.find("inode_bad_crc_salvaged (inode 1)"), std::string::npos) << out;
  ASSERT_NO_FATAL_FAILURE(mount());
  EXPECT_EQ(read_file(mountpoint() + "/kept"), "still here");
}

TEST_F(FsckAdminTest, UnformattedRegionIsCalledThatByMountAndFsck) {
  ASSERT_NO_FATAL_FAILURE(unmount());
  std::string blank = dir() + "/blank.img";
  int fd = ::open(blank.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 64 << 20), 0);
  ::close(fd);
  std::string out;
  std::vector<std::string> argv = {sealfs_bin(), blank, mountpoint()};
  if (emulated()) argv.insert(argv.end(), {"-o", "emulate_pmem"});
  EXPECT_EQ(run_command(argv, &out), 1) << out;
  if (is_mounted(mountpoint())) run_command({"fusermount3", "-u", mountpoint()});
  EXPECT_NE(out.find("not a sealfs filesystem (bad magic); run mkfs.sealfs"), std::string::npos)
      << out;
  out.clear();
  EXPECT_EQ(run_command({fsck_bin(), "-n", blank}, &out), 8) << out;
  EXPECT_NE(out.find("not a sealfs filesystem (bad magic); run mkfs.sealfs"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("corruption"), std::string::npos) << out;
}

}  // namespace
}  // namespace sealfs::itest
