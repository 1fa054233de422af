// An image formatted for one mapping alignment, mounted on a device that
// maps in larger units (a region file formatted with 4 KiB and copied to
// devdax, 2 MiB): no grant may hand out an extent the client cannot map.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "media/superblock.h"
#include "meta_fixture.h"

namespace sealfs::testing_meta {
namespace {

constexpr uint64_t kBlock = 4096;

// The largest power of two that divides `bytes`.
uint64_t alignment_of(uint64_t bytes) { return bytes & (~bytes + 1); }

class MapAlignmentTest : public MetaTest {
 protected:
  // Formats with a 4 KiB alignment and an inode count that puts the data
  // area on a 64 KiB boundary, writes `pad` (one block) and `data` (16
  // blocks, placed after pad and the root directory: off that boundary), and
  // returns the image.
  std::vector<std::byte> formatted_image() {
    uint64_t inodes = 4096;
    for (;; inodes += 16) {
      LayoutRequest request;
      request.region_size = kRegionBytes;
      request.inode_count = inodes;
      request.journal_bytes = 2ull << 20;
      auto g = compute_geometry(request);
      EXPECT_TRUE(g.is_ok()) << g.status().to_string();
      if (!g.is_ok()) return {};
      data_area_ = g->data_start * kBlock;
      if (alignment_of(data_area_) >= 16 * kBlock) break;
    }
    format(kRegionBytes, inodes);
    Attr pad = make_file(format::kRootIno, "pad");
    write_str(pad.ino, 0, "p");
    Attr data = make_file(format::kRootIno, "data");
    data_ino_ = data.ino;
    write_str(data_ino_, 0, std::string(16 * kBlock, 'd'));
    auto before = grant(data_ino_, 16 * kBlock, 0);
    EXPECT_TRUE(before.is_ok()) << before.status().to_string();
    if (before.is_ok()) data_at_ = before->front().region_offset;
    EXPECT_TRUE(fs_->unmount().is_ok());
    std::vector<std::byte> image = dram()->image();
    fs_.reset();
    return image;
  }
  void mount_on_device(std::vector<std::byte> image, uint64_t device_alignment) {
    owned_ = RegionDram::from_image(std::move(image), device_alignment);
    mount_region();
  }
  Result<std::vector<LayoutPiece>> grant(Ino ino, uint64_t length, uint32_t flags) {
    auto lock = fs_->lock_layout(ino);
    EXPECT_TRUE(lock.is_ok()) << lock.status().to_string();
    if (!lock.is_ok()) return lock.status();
    return fs_->layout_extents(**lock, 0, length, flags, nullptr);
  }
  // The property that matters: a grant is refused, or every piece of it can
  // be mapped on the device.
  static void expect_refused_or_aligned(const Result<std::vector<LayoutPiece>>& r,
                                        uint64_t device) {
    if (!r.is_ok()) return;
    for (const LayoutPiece& p : *r) {
      EXPECT_EQ(p.region_offset % device, 0u) << "granted a piece at " << p.region_offset;
    }
  }
  static constexpr uint64_t kRegionBytes = 64ull << 20;
  uint64_t data_area_ = 0;
  uint64_t data_at_ = 0;
  Ino data_ino_ = 0;
};

TEST_F(MapAlignmentTest, LargerDeviceAlignmentRefusesOldExtentsAndPlacesNewOnesOnIt) {
  std::vector<std::byte> image = formatted_image();
  const uint64_t device = 16 * kBlock;  // the data area starts on it; `data` does not
  ASSERT_NE(data_at_ % device, 0u) << "data placed at " << data_at_;
  mount_on_device(std::move(image), device);
  EXPECT_EQ(fs_->layout_alignment(), device);

  auto old = grant(data_ino_, 16 * kBlock, 0);
  EXPECT_EQ(old.status().code(), Code::kInvalid) << "an extent at a 4 KiB offset was granted";

  auto moved = grant(data_ino_, 16 * kBlock, kLayoutRelocate);
  ASSERT_TRUE(moved.is_ok()) << moved.status().to_string();
  expect_refused_or_aligned(moved, device);
  EXPECT_EQ(read_all(data_ino_), std::string(16 * kBlock, 'd'));

  // A file written now is placed on the device's alignment from the start.
  Attr pad = make_file(format::kRootIno, "pad2");
  write_str(pad.ino, 0, "q");
  Attr fresh = make_file(format::kRootIno, "fresh");
  write_str(fresh.ino, 0, std::string(device, 'f'));
  auto direct = grant(fresh.ino, device, 0);
  ASSERT_TRUE(direct.is_ok()) << direct.status().to_string();
  expect_refused_or_aligned(direct, device);
}

TEST_F(MapAlignmentTest, DataAreaOffTheDeviceAlignmentNeverGrantsAnUnmappableExtent) {
  std::vector<std::byte> image = formatted_image();
  const uint64_t device = 2 * alignment_of(data_area_);  // the data area is not on it
  ASSERT_NE(data_at_ % device, 0u) << "data placed at " << data_at_;
  mount_on_device(std::move(image), device);
  EXPECT_EQ(fs_->layout_alignment(), device);

  EXPECT_EQ(grant(data_ino_, 16 * kBlock, 0).status().code(), Code::kInvalid);
  expect_refused_or_aligned(grant(data_ino_, 16 * kBlock, kLayoutRelocate), device);
  EXPECT_EQ(read_all(data_ino_), std::string(16 * kBlock, 'd'));

  for (int i = 0; i < 8; ++i) {
    Attr fresh = make_file(format::kRootIno, "fresh" + std::to_string(i));
    const std::string bytes(device / 2 + i * kBlock, static_cast<char>('a' + i));
    write_str(fresh.ino, 0, bytes);
    EXPECT_EQ(read_all(fresh.ino, 0, bytes.size()), bytes);
    expect_refused_or_aligned(grant(fresh.ino, bytes.size(), 0), device);
    expect_refused_or_aligned(grant(fresh.ino, bytes.size(), kLayoutRelocate), device);
  }
}

}  // namespace
}  // namespace sealfs::testing_meta
