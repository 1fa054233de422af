// A new inode's slot may be a hole of a sparse inode table (mkfs on a fresh
// file writes nothing there). On a full backing store a read of that hole
// faults (SIGBUS on tmpfs): staging the inode must not read it, so that the
// create fails with EIO inside the journal's guarded home write and the
// mount turns read-only, as docs/daemon.md "Media errors and a full backing
// store" says, instead of the daemon dying. Needs root (a small tmpfs in a
// private mount namespace).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "media/formatter.h"
#include "media/media_fault.h"
#include "media/region_pmem2.h"
#include "meta/filesystem.h"

namespace sealfs {
namespace {

TEST(HoleSlotTest, CreateIntoAHoleOfTheInodeTableOnAFullBackingStoreIsAnIoError) {
  ASSERT_EQ(geteuid(), 0u) << "this test mounts a tmpfs: run it as root";
  ASSERT_TRUE(install_media_fault_handler());
  ASSERT_EQ(unshare(CLONE_NEWNS), 0) << std::strerror(errno);
  ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
  char dir_template[] = "/tmp/hole_slot_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  ASSERT_EQ(::mount("hole-slot-test", dir.c_str(), "tmpfs", 0, "size=16m"), 0)
      << std::strerror(errno);
  const std::string path = dir + "/region";
  {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 64ll << 20), 0);  // sparse
    close(fd);
  }
  {
    auto region = RegionPmem2::open(path, RegionOptions{});
    ASSERT_TRUE(region.is_ok()) << region.status().to_string();
    FormatOptions options;
    options.layout.inode_count = 1024;
    options.layout.journal_bytes = 2ull << 20;
    options.metadata_zeroed = true;  // as mkfs.sealfs on a fresh sparse file
    auto sb = Formatter::format(**region, options);
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  }
  auto region = RegionPmem2::open(path, RegionOptions{});
  ASSERT_TRUE(region.is_ok()) << region.status().to_string();
  auto fs = Filesystem::mount(std::move(region).value(), MountOptions{});
  ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
  const Cred cred{1000, 1000, 022, 1};
  for (int i = 2; i <= 16; ++i) {  // the inode table's first page, with the root
    auto a = (*fs)->create(format::kRootIno, "f" + std::to_string(i), 0644, O_RDWR, cred);
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    ASSERT_EQ(a->ino, static_cast<Ino>(i));
  }
  {  // fill the backing store
    int fd = open((dir + "/filler").c_str(), O_WRONLY | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    std::vector<char> buf(1 << 16, 'x');
    while (write(fd, buf.data(), buf.size()) > 0) {
    }
    while (write(fd, buf.data(), 1) > 0) {
    }
    close(fd);
  }
  // Inode 17: the second page of the inode table, a hole no page can back.
  auto c = (*fs)->create(format::kRootIno, "f17", 0644, O_RDWR, cred);
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), Code::kIoError) << c.status().to_string();
  EXPECT_TRUE((*fs)->region().media_failed());
  fs->reset();
  umount2(dir.c_str(), MNT_DETACH);
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace sealfs
