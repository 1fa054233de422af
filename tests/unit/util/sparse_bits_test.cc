// SparseBits against a plain bit vector: same answers, and memory only for
// the pages that ever held a set bit.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "util/sparse_bits.h"

namespace sealfs {
namespace {

TEST(SparseBitsTest, MatchesAPlainBitVectorUnderRandomRanges) {
  const uint64_t bits = 5 * SparseBits::kBitsPerPage + 77;  // a ragged last page
  SparseBits sparse(bits);
  std::vector<bool> plain(bits, false);
  std::mt19937_64 rng(7);
  for (int step = 0; step < 4000; ++step) {
    const uint64_t first = rng() % bits;
    const uint64_t count = 1 + rng() % std::min<uint64_t>(bits - first, 3 * 64 + 5);
    const bool value = rng() % 3 != 0;
    sparse.assign(first, count, value);
    for (uint64_t i = first; i < first + count; ++i) plain[i] = value;
    const uint64_t q = rng() % bits;
    const uint64_t qn = 1 + rng() % std::min<uint64_t>(bits - q, 200);
    bool all = true, none = true;
    for (uint64_t i = q; i < q + qn; ++i) {
      all = all && plain[i];
      none = none && !plain[i];
    }
    ASSERT_EQ(sparse.all(q, qn), all) << "step " << step;
    ASSERT_EQ(sparse.none(q, qn), none) << "step " << step;
  }
  for (uint64_t i = 0; i < bits; ++i) ASSERT_EQ(sparse.test(i), plain[i]) << "bit " << i;
  SparseBits copy = sparse;
  for (uint64_t w = 0; w < sparse.word_count(); ++w) ASSERT_EQ(copy.word(w), sparse.word(w));
}

TEST(SparseBitsTest, OnlyPagesThatHeldASetBitTakeMemory) {
  SparseBits bits(uint64_t{1} << 33);  // a 1 TiB data area of 4 KiB blocks
  EXPECT_EQ(bits.page_count(), (uint64_t{1} << 33) / SparseBits::kBitsPerPage);
  EXPECT_EQ(bits.pages_present(), 0u);
  bits.assign(0, 10, false);          // clearing makes nothing
  bits.set_word(12345, 0);            // nor does storing a zero word
  EXPECT_EQ(bits.pages_present(), 0u);
  bits.assign(SparseBits::kBitsPerPage - 3, 6, true);  // straddles two pages
  EXPECT_EQ(bits.pages_present(), 2u);
  EXPECT_NE(bits.page(0), nullptr);
  EXPECT_NE(bits.page(1), nullptr);
  EXPECT_EQ(bits.page(2), nullptr);
  EXPECT_TRUE(bits.all(SparseBits::kBitsPerPage - 3, 6));
  EXPECT_TRUE(bits.none(0, SparseBits::kBitsPerPage - 3));
  EXPECT_EQ(bits.word(uint64_t{1} << 26), 0u);  // far away: absent, reads zero
}

}  // namespace
}  // namespace sealfs
