// SaturatingCount: counts in 32 bits, takes 64-bit amounts (a forget's
// nlookup) whole, and once at its maximum stays there, so that a count that
// overflowed never reaches zero while references remain.
#include "util/saturating_count.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace sealfs {
namespace {

TEST(SaturatingCountTest, CountsUpAndDownAndNeverBelowZero) {
  SaturatingCount c;
  EXPECT_TRUE(c.is_zero());
  c.add(1);
  c.add(2);
  EXPECT_EQ(c.value(), 3u);
  c.sub(1);
  EXPECT_EQ(c.value(), 2u);
  c.sub(5);  // a forget of more than is counted
  EXPECT_TRUE(c.is_zero());
  c.sub(1);
  EXPECT_TRUE(c.is_zero());
}

// A forget's nlookup is 64 bits: 2^32 + 1 must drop a count of 1 to zero,
// not be read as 1 or 0 after truncation.
TEST(SaturatingCountTest, SubtractsAll64BitsOfAnAmount) {
  SaturatingCount c;
  c.add(1);
  c.sub((uint64_t{1} << 32) + 1);
  EXPECT_TRUE(c.is_zero());
  c.add(2);
  c.sub(uint64_t{1} << 32);
  EXPECT_TRUE(c.is_zero());
}

// Past 2^32 - 1 references the true count is unknown: the count sticks, so
// no number of later subtractions (which would wrap a plain uint32_t back
// through zero) lets its owner be freed early.
TEST(SaturatingCountTest, StaysStuckAtTheTopOnceItOverflows) {
  SaturatingCount c;
  c.add(SaturatingCount::kStuck - 1);
  EXPECT_FALSE(c.stuck());
  c.add(1);
  EXPECT_TRUE(c.stuck());
  c.add(5);
  EXPECT_TRUE(c.stuck());
  c.sub(SaturatingCount::kStuck);
  EXPECT_FALSE(c.is_zero());
  c.sub(uint64_t{1} << 40);
  EXPECT_FALSE(c.is_zero());
  c.reset();
  EXPECT_TRUE(c.is_zero());
  // One add of more than fits sticks too.
  c.add(uint64_t{1} << 33);
  EXPECT_TRUE(c.stuck());
}

}  // namespace
}  // namespace sealfs
