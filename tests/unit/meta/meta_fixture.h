// Shared fixture: a formatted DRAM region, mount, crash + remount.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "media/formatter.h"
#include "media/region_dram.h"
#include "meta/filesystem.h"

namespace sealfs::testing_meta {

inline Cred user() { return Cred{1000, 1000, 022, 1}; }

// A layout gate that calls one inode sealed (as if a lease held it).
struct SealedInodeGate : LayoutGate {
  Ino sealed_ino = 0;
  bool sealed(Ino ino) override { return ino == sealed_ino; }
};

class MetaTest : public ::testing::Test {
 protected:
  void format(uint64_t size = 64ull << 20, uint64_t inodes = 4096) {
    region_ = RegionDram::create(size);
    FormatOptions options;
    options.layout.inode_count = inodes;
    options.layout.journal_bytes = 2ull << 20;
    options.inline_data = inline_data_;
    auto sb = Formatter::format(*region_, options);
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    owned_ = std::move(region_);
    mount_region();
  }
  void mount_region(MountOptions options = {}) {
    auto fs = Filesystem::mount(std::move(owned_), options, &stats_);
    ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
    fs_ = std::move(*fs);
  }
  void SetUp() override {}
  // Format creates region_ and mounts it: the filesystem owns the region.
  RegionDram* dram() { return const_cast<RegionDram*>(static_cast<const RegionDram*>(&fs_->region())); }
  // Power loss now: remount what survives.
  void crash_and_remount(RegionDram::CrashMode mode = RegionDram::CrashMode::kDrop, uint64_t seed = 0) {
    auto image = dram()->crash(mode, seed);
    fs_.reset();
    owned_ = RegionDram::from_image(std::move(image));
    mount_region();
  }
  // Clean unmount, then mount what is on the region again with `options`.
  void clean_remount(MountOptions options = {}) {
    ASSERT_TRUE(fs_->unmount().is_ok());
    auto image = dram()->image();
    fs_.reset();
    owned_ = RegionDram::from_image(std::move(image));
    mount_region(options);
  }
  Attr make_file(Ino parent, const std::string& name, uint32_t mode = 0644) {
    auto a = fs_->create(parent, name, mode, O_RDWR, user());
    EXPECT_TRUE(a.is_ok()) << a.status().to_string();
    return a.is_ok() ? *a : Attr{};
  }
  std::string read_all(Ino ino, uint64_t offset = 0, size_t len = 1 << 20) {
    std::string out(len, '\0');
    auto n = fs_->read_copy(ino, offset, out.data(), len);
    EXPECT_TRUE(n.is_ok()) << n.status().to_string();
    out.resize(n.is_ok() ? *n : 0);
    return out;
  }
  void write_str(Ino ino, uint64_t offset, const std::string& s) {
    auto n = fs_->write(ino, offset, s.data(), s.size(), false);
    ASSERT_TRUE(n.is_ok()) << n.status().to_string();
    ASSERT_EQ(*n, s.size());
  }

  // Set before format(): false makes an image without the inline-data
  // feature (every non-empty file in blocks).
  bool inline_data_ = true;
  std::unique_ptr<RegionDram> region_;  // before the first mount
  std::unique_ptr<Region> owned_;
  std::unique_ptr<Filesystem> fs_;
  FsckLikeStats stats_;
};

}  // namespace sealfs::testing_meta
