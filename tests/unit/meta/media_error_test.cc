// A media fault under the filesystem (a region file cut short under the
// mapping: what a full backing store or poison does to stores): the write
// that hit it fails with kIoError and acknowledges nothing, the mount turns
// read-only but keeps reading, and unmount leaves it for recovery, marked
// "needs check" so that no read-write mount skips fsck.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "media/formatter.h"
#include "media/media_fault.h"
#include "media/region_pmem2.h"
#include "meta/filesystem.h"

namespace sealfs {
namespace {

constexpr uint64_t kRegionBytes = 64ull << 20;

std::string pattern(size_t len, char seed) {
  std::string s(len, '\0');
  for (size_t i = 0; i < len; ++i) s[i] = static_cast<char>(seed + i % 97);
  return s;
}

class MediaErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(install_media_fault_handler());
    char tmpl[] = "/tmp/media_error_test.XXXXXX";
    fd_ = mkstemp(tmpl);
    ASSERT_GE(fd_, 0);
    path_ = tmpl;
    ASSERT_EQ(ftruncate(fd_, kRegionBytes), 0);
    auto region = RegionPmem2::open(path_, RegionOptions{});
    ASSERT_TRUE(region.is_ok()) << region.status().to_string();
    FormatOptions options;
    options.layout.inode_count = 1024;
    options.layout.journal_bytes = 2ull << 20;
    auto sb = Formatter::format(**region, options);
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    data_start_ = sb->geometry.data_start;
  }
  void TearDown() override {
    fs_.reset();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  void mount(const MountOptions& options = {}) {
    auto region = RegionPmem2::open(path_, RegionOptions{});
    ASSERT_TRUE(region.is_ok()) << region.status().to_string();
    auto fs = Filesystem::mount(std::move(region).value(), options);
    ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
    fs_ = std::move(fs).value();
  }
  std::string read_all(Ino ino, size_t len) {
    std::string out(len + 1, '\0');
    auto n = fs_->read_copy(ino, 0, out.data(), out.size());
    EXPECT_TRUE(n.is_ok()) << n.status().to_string();
    out.resize(n.is_ok() ? *n : 0);
    return out;
  }

  int fd_ = -1;
  std::string path_;
  uint64_t data_start_ = 0;
  std::unique_ptr<Filesystem> fs_;
  const Cred cred_{1000, 1000, 022, 1};
};

// After a media fault the inode cache drops nothing: a home write may have
// been cut short while DRAM was rolled back, so the slot is not what the
// inode in DRAM says, and reading it again could show a change that was
// answered EIO, fail its crc or fault (review of 2026-12-07).
TEST_F(MediaErrorTest, AfterAFaultTheInodeCacheKeepsWhatItHas) {
  MountOptions bounded;
  bounded.inode_cache = 1000;  // more than the test makes: only trim_inode_cache drops
  ASSERT_NO_FATAL_FAILURE(mount(bounded));
  const std::string early = pattern(64 << 10, 'a');
  auto a = fs_->create(format::kRootIno, "a", 0644, O_RDWR, cred_);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  ASSERT_TRUE(fs_->write(a->ino, 0, early.data(), early.size(), false).is_ok());
  fs_->release(a->ino);
  fs_->forget(a->ino, 1);  // idle: the cache may drop it
  ASSERT_EQ(ftruncate(fd_, static_cast<off_t>(data_start_ * format::kBlockSize + (1 << 20))), 0);
  const std::string late = pattern(4 << 20, 'k');
  auto b = fs_->create(format::kRootIno, "b", 0644, O_RDWR, cred_);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  ASSERT_FALSE(fs_->write(b->ino, 0, late.data(), late.size(), false).is_ok());
  ASSERT_TRUE(fs_->region().media_failed());
  EXPECT_EQ(fs_->trim_inode_cache(0), 0u);
  EXPECT_EQ(read_all(a->ino, early.size()), early);
  ASSERT_EQ(ftruncate(fd_, kRegionBytes), 0);
}

TEST_F(MediaErrorTest, AFaultedWriteAcknowledgesNothingAndTheMountTurnsReadOnly) {
  ASSERT_NO_FATAL_FAILURE(mount());
  const std::string early = pattern(64 << 10, 'a');
  auto a = fs_->create(format::kRootIno, "a", 0644, O_RDWR, cred_);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  auto wrote = fs_->write(a->ino, 0, early.data(), early.size(), false);
  ASSERT_TRUE(wrote.is_ok()) << wrote.status().to_string();
  auto b = fs_->create(format::kRootIno, "b", 0644, O_RDWR, cred_);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();

  // The backing store loses everything past the first MiB of the data area.
  ASSERT_EQ(ftruncate(fd_, static_cast<off_t>(data_start_ * format::kBlockSize + (1 << 20))), 0);
  const std::string late = pattern(4 << 20, 'k');
  auto failed = fs_->write(b->ino, 0, late.data(), late.size(), false);
  ASSERT_FALSE(failed.is_ok());
  EXPECT_EQ(failed.status().code(), Code::kIoError) << failed.status().to_string();
  EXPECT_TRUE(fs_->region().media_failed());
  auto b_attr = fs_->getattr(b->ino);
  ASSERT_TRUE(b_attr.is_ok());
  EXPECT_EQ(b_attr->size, 0u) << "a failed write changed the file";
  EXPECT_EQ(b_attr->blocks, 0u);

  // Reads go on; every change is refused.
  EXPECT_EQ(read_all(a->ino, early.size()), early);
  EXPECT_EQ(fs_->write(a->ino, 0, "x", 1, false).status().code(), Code::kReadOnly);
  EXPECT_EQ(fs_->create(format::kRootIno, "c", 0644, O_RDWR, cred_).status().code(),
            Code::kReadOnly);
  EXPECT_EQ(fs_->unlink(format::kRootIno, "a").code(), Code::kReadOnly);
  Status unmounted = fs_->unmount();
  EXPECT_EQ(unmounted.code(), Code::kIoError) << unmounted.to_string();
  fs_.reset();

  // The media is whole again. The unmount stamped the superblock "needs
  // check": a read-write mount is refused until fsck.sealfs -y has run (the
  // fuse_backing_store integration test goes on through fsck and a mount
  // that has every acknowledged byte).
  ASSERT_EQ(ftruncate(fd_, kRegionBytes), 0);
  {
    auto region = RegionPmem2::open(path_, RegionOptions{});
    ASSERT_TRUE(region.is_ok());
    auto refused = Filesystem::mount(std::move(region).value(), MountOptions{});
    ASSERT_FALSE(refused.is_ok());
    EXPECT_EQ(refused.status().code(), Code::kCorruption);
    EXPECT_NE(refused.status().message().find("needing a check"), std::string::npos)
        << refused.status().to_string();
  }
}

}  // namespace
}  // namespace sealfs
