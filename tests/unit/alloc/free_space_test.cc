// FreeSpace: the DRAM indexes and the placement policy, without media.
#include "alloc/free_space.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace sealfs {
namespace {

using Extent = FreeSpace::Extent;

TEST(FreeSpaceTest, InsertCoalescesWithBothNeighbours) {
  FreeSpace fs(1);
  fs.insert(100, 10);
  fs.insert(120, 10);
  EXPECT_EQ(fs.extent_count(), 2u);
  fs.insert(110, 10);
  fs.check_invariants();
  ASSERT_EQ(fs.extents(), (std::vector<Extent>{{100, 30}}));
  EXPECT_EQ(fs.free_blocks(), 30u);
}

TEST(FreeSpaceTest, RemoveSplitsAnExtent) {
  FreeSpace fs(1);
  fs.insert(0, 100);
  fs.remove(40, 20);
  fs.check_invariants();
  EXPECT_EQ(fs.extents(), (std::vector<Extent>{{0, 40}, {60, 40}}));
  EXPECT_FALSE(fs.is_free(40));
  EXPECT_TRUE(fs.is_free(39));
  EXPECT_TRUE(fs.none_free(40, 20));
  EXPECT_FALSE(fs.none_free(39, 2));
  EXPECT_FALSE(fs.none_free(59, 2));
}

TEST(FreeSpaceTest, AppendRunMergesTouchingRuns) {
  FreeSpace fs(8);
  fs.append_run(0, 5);
  fs.append_run(5, 5);
  fs.append_run(20, 3);
  fs.check_invariants();
  EXPECT_EQ(fs.extents(), (std::vector<Extent>{{0, 10}, {20, 3}}));
}

TEST(FreeSpaceDeathTest, OverlappingInsertAborts) {
  FreeSpace fs(1);
  fs.insert(10, 10);
  EXPECT_DEATH(fs.insert(15, 10), "overlaps");
  EXPECT_DEATH(fs.insert(5, 6), "overlaps");
  EXPECT_DEATH(fs.remove(30, 1), "not free");
}

TEST(FreeSpaceTest, BestFitWithoutAlignment) {
  FreeSpace fs(1);
  fs.insert(0, 50);
  fs.insert(100, 8);
  fs.insert(200, 20);
  auto got = fs.choose(8, 0, 8);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{100, 8}));
  got = fs.choose(9, 0, 9);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{200, 9}));
  EXPECT_FALSE(fs.choose(51, 0, 51).has_value());
  // min_count: the largest piece.
  got = fs.choose(80, 0, 40);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{0, 50}));
}

TEST(FreeSpaceTest, LargeRequestsAreAligned) {
  FreeSpace fs(16);
  fs.insert(3, 20);    // holds no aligned run of 16 (16..19 only)
  fs.insert(37, 60);   // aligned run 48..96
  auto got = fs.choose(16, 0, 16);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{48, 16}));
  got = fs.choose(40, 0, 40);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{48, 40}));
  // No aligned fit for 50: best fit, unaligned.
  got = fs.choose(50, 0, 50);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{37, 50}));
}

TEST(FreeSpaceTest, LargeGoalTakesAlignedSpaceNearGoal) {
  FreeSpace fs(16);
  fs.insert(0, 1024);
  auto got = fs.choose(32, 512, 32);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{512, 32}));
  got = fs.choose(32, 500, 32);  // rounded up to the next boundary
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{512, 32}));
}

TEST(FreeSpaceTest, SmallGoalIsHonoured) {
  FreeSpace fs(16);
  fs.insert(0, 1024);
  fs.insert(2000, 3);
  auto got = fs.choose(2, 777, 2);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{777, 2}));
  // Goal in allocated space: policy as without a goal (the fragment).
  got = fs.choose(2, 1500, 2);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{2000, 2}));
}

TEST(FreeSpaceTest, SmallRequestsPreferFragments) {
  FreeSpace fs(16);
  fs.insert(0, 64);     // four aligned chunks
  fs.insert(100, 5);    // fragment
  fs.insert(200, 3);    // smaller fragment
  auto got = fs.choose(3, 0, 3);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{200, 3}));
  got = fs.choose(4, 0, 4);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{100, 4}));
}

TEST(FreeSpaceTest, SmallRequestsCarveHeadsAndTailsNextToChunks) {
  FreeSpace fs(16);
  fs.insert(10, 60);  // head 10..16, chunks 16..64, tail 64..70
  auto got = fs.choose(4, 0, 4);
  ASSERT_TRUE(got.has_value());
  // Head and tail are both 6 blocks; either way the chunks stay whole.
  EXPECT_TRUE(*got == (Extent{12, 4}) || *got == (Extent{64, 4})) << got->start;
  fs.remove(got->start, got->count);
  fs.check_invariants();
  // Whole chunks remain: an aligned 48-block request still fits.
  auto big = fs.choose(48, 0, 48);
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(*big, (Extent{16, 48}));
}

TEST(FreeSpaceTest, SmallRequestBreaksOnlyOneChunkWhenItMust) {
  FreeSpace fs(16);
  fs.insert(0, 64);
  auto got = fs.choose(4, 0, 4);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{0, 4}));
  fs.remove(0, 4);
  // The next small one goes into the rest of the broken chunk.
  got = fs.choose(4, 0, 4);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (Extent{12, 4}));
  fs.remove(12, 4);
  auto big = fs.choose(48, 0, 48);
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(*big, (Extent{16, 48}));
}

TEST(FreeSpaceTest, SmallWritesWithAGoalGrowForwardsThroughAChunk) {
  // 2 MiB alignment, 1 MiB writes (what FUSE sends): each write asks for the
  // block behind the previous one. They must land there, so the file stays
  // one extent (they used to land in front of it, one extent per write).
  FreeSpace fs(512);
  fs.insert(512, 512 * 40);
  uint64_t goal = 0;
  uint64_t first = 0;
  for (int i = 0; i < 20; ++i) {
    auto got = fs.choose(256, goal, 256);
    ASSERT_TRUE(got.has_value());
    if (i == 0) {
      first = got->start;
      EXPECT_EQ(first % 512, 0u);
    } else {
      EXPECT_EQ(got->start, goal) << "write " << i;
    }
    fs.remove(got->start, got->count);
    goal = got->end();
  }
  EXPECT_EQ(goal - first, 20u * 256);
}

TEST(FreeSpaceTest, RandomOperationsKeepIndexesConsistent) {
  std::mt19937_64 rng(12345);
  const uint64_t blocks = 4096;
  FreeSpace fs(32);
  std::vector<bool> free_map(blocks, true);
  fs.insert(0, blocks);
  std::vector<Extent> owned;
  for (int step = 0; step < 20000; ++step) {
    if (owned.empty() || rng() % 2 == 0) {
      uint64_t count = 1 + rng() % (rng() % 4 == 0 ? 100 : 8);
      auto got = fs.choose(count, rng() % 3 == 0 ? rng() % blocks : 0, 1);
      if (!got) continue;
      ASSERT_LE(got->end(), blocks);
      for (uint64_t b = got->start; b < got->end(); ++b) ASSERT_TRUE(free_map[b]) << b;
      fs.remove(got->start, got->count);
      for (uint64_t b = got->start; b < got->end(); ++b) free_map[b] = false;
      owned.push_back(*got);
    } else {
      size_t i = rng() % owned.size();
      fs.insert(owned[i].start, owned[i].count);
      for (uint64_t b = owned[i].start; b < owned[i].end(); ++b) free_map[b] = true;
      owned[i] = owned.back();
      owned.pop_back();
    }
    if (step % 500 == 0) fs.check_invariants();
  }
  fs.check_invariants();
  uint64_t expected = 0;
  for (bool f : free_map) expected += f ? 1 : 0;
  EXPECT_EQ(fs.free_blocks(), expected);
}

}  // namespace
}  // namespace sealfs
