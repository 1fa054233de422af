// Random corruption: flip random bytes in the metadata of a populated
// image. fsck must never crash, must exit with an fsck(8) code, must not
// write in check mode, and after a repair that reports success a check-only
// run must be clean.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "fsck_fixture.h"

namespace sealfs::fsck::testing {
namespace {

std::vector<uint64_t> metadata_blocks(const Populated& p) {
  const Geometry& g = p.geo;
  std::vector<uint64_t> blocks{0, g.region_blocks - 1, g.journal_start, g.holder_start,
                               g.bitmap_start};
  for (uint64_t b = g.inode_start; b < g.inode_start + std::min<uint64_t>(g.inode_blocks, 10); ++b) {
    blocks.push_back(b);
  }
  for (Ino ino : {kRootIno, p.dir_a, p.dir_b, p.many_dir}) {
    auto d = get_inode(p.image, g, ino);
    for (uint32_t i = 0; i < std::min<uint32_t>(d.extent_count.get(), format::kInlineExtents); ++i) {
      for (uint32_t k = 0; k < d.u.extents[i].length.get() && k < 4; ++k) {
        blocks.push_back(d.u.extents[i].region_block.get() + k);
      }
    }
  }
  auto f1 = get_inode(p.image, g, p.file1);
  if (f1.xattr_block.get() != 0) blocks.push_back(f1.xattr_block.get());
  auto sp = get_inode(p.image, g, p.sparse);
  if (sp.extent_block.get() != 0) blocks.push_back(sp.extent_block.get());
  return blocks;
}

TEST(FsckRandomTest, NeverCrashesAndRepairsConverge) {
  const Populated& p = populated();
  const auto blocks = metadata_blocks(p);
  uint64_t seed = 0x5ea1f5;
  if (const char* s = std::getenv("FSCK_RANDOM_SEED")) seed = std::strtoull(s, nullptr, 0);
  std::mt19937_64 rng(seed);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int iterations = 0, repaired = 0, uncorrected = 0, operational = 0;
  // At least 10 images however slow the machine (the time budget only
  // bounds how many more), so a loaded machine cannot fail the test.
  while ((std::chrono::steady_clock::now() < deadline || iterations < 10) && iterations < 5000) {
    ++iterations;
    Bytes image = p.image;
    int flips = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < flips; ++i) {
      uint64_t block = blocks[rng() % blocks.size()];
      // Bias toward headers and the first entries, where the structure is.
      uint64_t offset = (rng() % 2 == 0) ? rng() % 512 : rng() % format::kBlockSize;
      image[block * format::kBlockSize + offset] ^= std::byte{static_cast<unsigned char>(1u << (rng() % 8))};
    }
    SCOPED_TRACE("iteration " + std::to_string(iterations) + " seed " + std::to_string(seed));
    FsckRun check = run(image, false);
    int c = check.report.exit_code;
    ASSERT_TRUE(c == kExitClean || c == kExitUncorrected || c == kExitOperational) << c;
    ASSERT_EQ(check.image, image) << "check-only run wrote";
    FsckRun fix = run(image, true);
    int f = fix.report.exit_code;
    ASSERT_TRUE(f == kExitClean || f == kExitCorrected || f == kExitUncorrected ||
                f == kExitOperational)
        << f;
    if (c == kExitClean) {
      ASSERT_EQ(f, kExitClean) << kinds(fix.report);
    }
    if (f == kExitCorrected || f == kExitClean) {
      FsckRun again = run(fix.image, false);
      ASSERT_EQ(again.report.exit_code, kExitClean)
          << "before:\n" << kinds(fix.report) << "after:\n" << kinds(again.report);
      ++repaired;
    } else if (f == kExitUncorrected) {
      ++uncorrected;
    } else {
      ++operational;
    }
  }
  std::printf("random corruption: %d images, %d repaired or clean, %d uncorrected, %d operational\n",
              iterations, repaired, uncorrected, operational);
  EXPECT_GT(repaired, iterations / 2);
}

}  // namespace
}  // namespace sealfs::fsck::testing
