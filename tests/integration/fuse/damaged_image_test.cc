// A damaged image on a real mount (issue 8, items 5 and 6): the daemon
// refuses to serve a block bitmap that frees blocks a file still uses, or a
// named file whose link count is 0, with a message that says to run fsck;
// `fsck.sealfs -y` repairs the image and the file comes back whole.
//
// The image is edited offline with the project's own codecs (the inode
// re-sealed with a valid crc): the lie is structurally valid, so only the
// mount's cross-checks can catch it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "fs_helpers.h"
#include "media/region_dram.h"
#include "media/superblock.h"
#include "meta/inode.h"
#include "mount_fixture.h"
#include "support/errno_expect.h"
#include "sealfs/format.h"

namespace sealfs::itest {
namespace {

using Bytes = std::vector<std::byte>;
using namespace std::chrono_literals;
constexpr uint64_t kFileBlocks = 32;
constexpr uint64_t kSeed = 8;

class DamagedImageTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    MountConfig config;
    config.region_size = 64ull << 20;  // read and rewritten whole
    ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  }


  // Writes the victim file and returns its inode number.
  uint64_t write_victim() {
    auto bytes = pattern(kSeed, 0, kFileBlocks * format::kBlockSize);
    write_file(path("victim"), std::string_view(reinterpret_cast<const char*>(bytes.data()),
                                                 bytes.size()));
    write_file(path("bystander"), "still here\n");
    struct stat st {};
    EXPECT_EQ(stat(path("victim").c_str(), &st), 0);
    return st.st_ino;
  }
  void expect_victim_intact() {
    auto want = pattern(kSeed, 0, kFileBlocks * format::kBlockSize);
    std::string got = read_file(path("victim"));
    EXPECT_TRUE(got.size() == want.size() && std::memcmp(got.data(), want.data(), got.size()) == 0)
        << "victim has " << got.size() << " bytes, not the ones written";
    EXPECT_EQ(read_file(path("bystander")), "still here\n");
  }

  void load_image() {
    std::ifstream in(region_path(), std::ios::binary);
    std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    image_.resize(raw.size());
    std::memcpy(image_.data(), raw.data(), raw.size());
    auto sb = read_superblock(*RegionDram::from_image(image_));
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    geo_ = sb->geometry;
  }
  void store_image() {
    std::ofstream out(region_path(), std::ios::binary | std::ios::in | std::ios::out);
    out.write(reinterpret_cast<const char*>(image_.data()), static_cast<std::streamsize>(image_.size()));
    ASSERT_TRUE(out.good());
  }
  format::DiskInode inode(uint64_t ino) const {
    format::DiskInode d{};
    std::memcpy(&d, image_.data() + inode_offset(geo_, ino), sizeof(d));
    return d;
  }
  void put_inode(uint64_t ino, format::DiskInode d) {
    seal_inode_crc(d);
    std::memcpy(image_.data() + inode_offset(geo_, ino), &d, sizeof(d));
  }
  void clear_bits(uint64_t block, uint64_t count) {
    for (uint64_t b = block; b < block + count; ++b) {
      uint64_t i = b - geo_.data_start;
      auto& byte = image_[geo_.bitmap_start * format::kBlockSize + i / 8];
      byte &= ~std::byte{static_cast<unsigned char>(1u << (i % 8))};
    }
  }

  // The daemon as an admin starts it: it detaches only once mounted, else
  // exits 1 with the reason.
  int try_mount(std::string* output) {
    std::vector<std::string> argv = {sealfs_bin(), region_path(), mountpoint()};
    if (emulated()) argv.insert(argv.end(), {"-o", "emulate_pmem"});
    return run_command(argv, output);
  }
  int fsck(const std::string& flag, std::string* output) {
    return run_command({fsck_bin(), flag, region_path()}, output);
  }
  // Refused with `why`; fsck -n finds it, -y repairs it, -n is then clean.
  void expect_refused_then_repaired(const std::string& why) {
    std::string out;
    EXPECT_EQ(try_mount(&out), 1) << out;
    EXPECT_FALSE(is_mounted(mountpoint()));
    EXPECT_NE(out.find("cannot mount"), std::string::npos) << out;
    EXPECT_NE(out.find(why), std::string::npos) << out;
    EXPECT_NE(out.find("run fsck.sealfs"), std::string::npos) << out;
    if (is_mounted(mountpoint())) run_command({"fusermount3", "-u", mountpoint()});
    out.clear();
    EXPECT_EQ(fsck("-n", &out), 4) << out;
    out.clear();
    EXPECT_EQ(fsck("-y", &out), 1) << out;
    out.clear();
    EXPECT_EQ(fsck("-n", &out), 0) << out;
  }

  Bytes image_;
  Geometry geo_;
};

TEST_F(DamagedImageTest, BitmapClearedUnderAFileIsRefusedAndRepaired) {
  ASSERT_FALSE(fsck_bin().empty()) << "FSCK_BIN is not set";
  uint64_t ino = write_victim();
  ASSERT_NO_FATAL_FAILURE(unmount());
  ASSERT_NO_FATAL_FAILURE(load_image());
  format::DiskInode d = inode(ino);
  ASSERT_EQ(d.extent_count.get(), 1u);
  const uint64_t start = d.u.extents[0].region_block.get();
  ASSERT_EQ(d.u.extents[0].length.get(), kFileBlocks);
  clear_bits(start + 10, 8);  // first and last block keep their bits
  ASSERT_NO_FATAL_FAILURE(store_image());

  ASSERT_NO_FATAL_FAILURE(expect_refused_then_repaired(
      "inode " + std::to_string(ino) + ": extent on blocks [" + std::to_string(start) + ", +" +
      std::to_string(kFileBlocks) + "): blocks [" + std::to_string(start + 10) +
      ", +8) are free in the block bitmap"));
  ASSERT_NO_FATAL_FAILURE(mount());
  expect_victim_intact();
  // A new file gets other blocks.
  write_file(path("newcomer"), std::string(kFileBlocks * format::kBlockSize, 'N'));
  expect_victim_intact();
}

TEST_F(DamagedImageTest, NamedFileWithLinkCountZeroIsRefusedAndRepaired) {
  ASSERT_FALSE(fsck_bin().empty()) << "FSCK_BIN is not set";
  uint64_t ino = write_victim();
  ASSERT_NO_FATAL_FAILURE(unmount());
  ASSERT_NO_FATAL_FAILURE(load_image());
  format::DiskInode d = inode(ino);
  ASSERT_EQ(d.nlink.get(), 1u);
  d.nlink.set(0);
  put_inode(ino, d);
  ASSERT_NO_FATAL_FAILURE(store_image());

  ASSERT_NO_FATAL_FAILURE(expect_refused_then_repaired(
      "inode " + std::to_string(ino) + ": link count 0 but 1 name(s) point at it"));
  ASSERT_NO_FATAL_FAILURE(mount());
  expect_victim_intact();
  struct stat st {};
  ASSERT_EQ(stat(path("victim").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  // The repaired count holds across an unmount (which frees unlinked inodes).
  ASSERT_NO_FATAL_FAILURE(remount());
  expect_victim_intact();
}

// With -o background_verify the same damage is found after the mount is
// live: the files are served meanwhile, every change is refused (EROFS) once
// the verifier has found it, the daemon logs it and exits 1 at unmount
// without marking the region clean, and fsck.sealfs repairs it as before.
TEST_F(DamagedImageTest, BackgroundVerifyServesThenRefusesChangesAndFsckRepairs) {
  ASSERT_FALSE(fsck_bin().empty()) << "FSCK_BIN is not set";
  uint64_t ino = write_victim();
  ASSERT_NO_FATAL_FAILURE(unmount());
  ASSERT_NO_FATAL_FAILURE(load_image());
  const uint64_t start = inode(ino).u.extents[0].region_block.get();
  clear_bits(start + 10, 8);
  ASSERT_NO_FATAL_FAILURE(store_image());

  config().options = "background_verify";
  ASSERT_NO_FATAL_FAILURE(mount());
  expect_victim_intact();  // read before or while the verifier runs
  std::string out;
  // The create waits for the verifier, which finds the bitmap damage.
  const int fd = ::open(path("newcomer").c_str(), O_CREAT | O_WRONLY, 0644);
  const int err = errno;
  if (fd >= 0) ::close(fd);
  EXPECT_EQ(fd, -1) << "created a file on a damaged image";
  EXPECT_EQ(err, EROFS);
  EXPECT_EQ(log_count("the filesystem is read-only from now on"), 1u);
  EXPECT_GE(log_count("blocks [" + std::to_string(start + 10) + ", +8) are free"), 1u);
  const pid_t pid = release_daemon();
  ASSERT_EQ(run_command({"fusermount3", "-u", mountpoint()}, &out), 0) << out;
  auto status = wait_child(pid, 60s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << "exit status " << *status;

  // Stamped: a read-write mount is refused until fsck has seen it.
  config().options.clear();
  out.clear();
  EXPECT_EQ(try_mount(&out), 1) << out;
  EXPECT_NE(out.find("needing a check"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(fsck("-y", &out), 1) << out;
  out.clear();
  EXPECT_EQ(fsck("-n", &out), 0) << out;
  ASSERT_NO_FATAL_FAILURE(mount());
  expect_victim_intact();
  write_file(path("newcomer"), std::string(kFileBlocks * format::kBlockSize, 'N'));
  expect_victim_intact();
}

// A superblock with a ro_compat feature this build does not know mounts
// read-only, and the kernel's mount says so: /proc/mounts showed "rw" and
// only the daemon's EROFS answers told (adversarial campaign of 2026-12-07).
TEST_F(DamagedImageTest, AnUnknownRoCompatFeatureMountsReadOnlyInTheKernelToo) {
  write_victim();
  ASSERT_NO_FATAL_FAILURE(unmount());
  ASSERT_NO_FATAL_FAILURE(load_image());
  auto sb = read_superblock(*RegionDram::from_image(image_));
  ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
  sb->feature_ro_compat |= 1u << 30;
  const format::DiskSuperblock disk = encode_superblock(*sb);
  for (uint64_t block : {uint64_t{format::kSuperblockBlock}, geo_.backup_block()}) {
    std::memcpy(image_.data() + block * format::kBlockSize, &disk, sizeof(disk));
  }
  ASSERT_NO_FATAL_FAILURE(store_image());
  ASSERT_NO_FATAL_FAILURE(mount());
  expect_victim_intact();
  std::string options;
  std::istringstream info(read_file("/proc/self/mountinfo"));
  for (std::string line; std::getline(info, line);) {
    if (line.find(" " + mountpoint() + " ") != std::string::npos) options = line;
  }
  ASSERT_FALSE(options.empty()) << "not in /proc/self/mountinfo";
  EXPECT_NE(options.find(" ro,"), std::string::npos) << options;
  EXPECT_ERRNO(open(path("new").c_str(), O_WRONLY | O_CREAT, 0644), EROFS);
  EXPECT_ERRNO(unlink(path("victim").c_str()), EROFS);
  expect_victim_intact();
}

}  // namespace
}  // namespace sealfs::itest
