// sealfs-layout's sizes and ranges: a range or an offset is printed exactly,
// so two distinct ranges never print alike (a user saw "[32.5M, 32.5M)" for
// a 4K extent); a size may round, and then says so with "~".
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "tools/layout/sizes.h"

namespace sealfs::layout {
namespace {

constexpr uint64_t kK = 1024, kM = kK * 1024, kG = kM * 1024;

TEST(LayoutSizes, ASmallExtentInsideAMegabyteHasDistinctEnds) {
  const uint64_t start = 32 * kM + kM / 2 + 4 * kK;
  EXPECT_EQ(exact_range(start, start + 4 * kK), "[33284K, 33288K)");
  EXPECT_EQ(exact_range(32 * kM + kM / 2, 33 * kM), "[33280K, 33792K)");
}

TEST(LayoutSizes, WholeUnitsStayShort) {
  EXPECT_EQ(exact_range(22 * kM, 62 * kM), "[22M, 62M)");
  EXPECT_EQ(exact_range(0, 40 * kM), "[0, 40M)");
  EXPECT_EQ(exact_range(0, 4 * kK), "[0, 4K)");
  EXPECT_EQ(exact_range(kG, 2 * kG), "[1G, 2G)");
  EXPECT_EQ(exact_range(0, 0), "[0, 0)");
  // A hole up to a file size that is no multiple of 1K: bytes.
  EXPECT_EQ(exact_range(8 * kK, 12345), "[8192, 12345)");
}

TEST(LayoutSizes, OffsetsAreExact) {
  EXPECT_EQ(exact_offset(0), "0");
  EXPECT_EQ(exact_offset(4 * kK), "4K");
  EXPECT_EQ(exact_offset(16 * kM + 4 * kK), "16388K");
  EXPECT_EQ(exact_offset(22 * kM), "22M");
  EXPECT_EQ(exact_offset(256 * kM - 4 * kK), "262140K");
  EXPECT_EQ(exact_offset(12345), "12345");
}

TEST(LayoutSizes, NeighbouringBlocksNeverPrintAlike) {
  // Every 4K extent of the first 64 MiB, at every 4K offset: all distinct.
  std::set<std::string> seen;
  for (uint64_t start = 0; start < 64 * kM; start += 4 * kK) {
    EXPECT_TRUE(seen.insert(exact_range(start, start + 4 * kK)).second) << start;
  }
}

TEST(LayoutSizes, ASizeRoundsVisibly) {
  EXPECT_EQ(human(0), "0");
  EXPECT_EQ(human(4 * kK), "4K");
  EXPECT_EQ(human(kM + kM / 2), "1.5M");
  EXPECT_EQ(human(16 * kM + 64 * kK), "16.1M");
  EXPECT_EQ(human(16 * kM + 16 * kK), "16.02M");
  EXPECT_EQ(human(234 * kM + 4 * kK), "~234M");
}

}  // namespace
}  // namespace sealfs::layout
