// util/bit_words: the word/bit order shared by every bitmap.
#include "util/bit_words.h"

#include <gtest/gtest.h>

#include <vector>

namespace sealfs::bit_words {
namespace {

TEST(BitWordsTest, BitIIsPositionIModulo64OfWordIOver64) {
  EXPECT_EQ(word_of(0), 0u);
  EXPECT_EQ(word_of(63), 0u);
  EXPECT_EQ(word_of(64), 1u);
  EXPECT_EQ(mask_of(0), 1u);
  EXPECT_EQ(mask_of(63), uint64_t{1} << 63);
  EXPECT_EQ(mask_of(65), 2u);
  EXPECT_EQ(words_for(0), 0u);
  EXPECT_EQ(words_for(1), 1u);
  EXPECT_EQ(words_for(64), 1u);
  EXPECT_EQ(words_for(65), 2u);
}

TEST(BitWordsTest, SetClearTestOverWords) {
  std::vector<uint64_t> words(3, 0);
  for (uint64_t bit : {0u, 63u, 64u, 130u, 191u}) set(words, bit);
  EXPECT_EQ(words[0], 1u | (uint64_t{1} << 63));
  EXPECT_EQ(words[1], 1u);
  EXPECT_EQ(words[2], (uint64_t{1} << 2) | (uint64_t{1} << 63));
  for (uint64_t bit = 0; bit < 192; ++bit) {
    const bool expected = bit == 0 || bit == 63 || bit == 64 || bit == 130 || bit == 191;
    EXPECT_EQ(test(words, bit), expected) << bit;
  }
  clear(words, 63);
  clear(words, 62);  // already clear: stays so
  EXPECT_EQ(words[0], 1u);
  EXPECT_FALSE(test(words, 63));
  EXPECT_TRUE(test(words, 0));
}

TEST(BitWordsTest, ValidMaskOfTheLastWord) {
  EXPECT_EQ(last_word_mask(1), 1u);
  EXPECT_EQ(last_word_mask(63), ~uint64_t{0} >> 1);
  EXPECT_EQ(last_word_mask(64), ~uint64_t{0});
  EXPECT_EQ(last_word_mask(65), 1u);
  EXPECT_EQ(last_word_mask(128), ~uint64_t{0});
  // Word by word: full before the last, partial in it, empty past it.
  EXPECT_EQ(valid_mask(100, 0), ~uint64_t{0});
  EXPECT_EQ(valid_mask(100, 1), (uint64_t{1} << 36) - 1);
  EXPECT_EQ(valid_mask(100, 2), 0u);
  EXPECT_EQ(valid_mask(128, 1), ~uint64_t{0});
  EXPECT_EQ(valid_mask(128, 2), 0u);
}

TEST(BitWordsTest, SpanMask) {
  EXPECT_EQ(span_mask(0, 0), 0u);
  EXPECT_EQ(span_mask(0, 64), ~uint64_t{0});
  EXPECT_EQ(span_mask(3, 5), 0x18u);
  EXPECT_EQ(span_mask(63, 64), uint64_t{1} << 63);
  EXPECT_EQ(span_mask(64, 64), 0u);
  EXPECT_EQ(span_mask(7, 7), 0u);
}

// for_each_word against setting the bits one by one, for every small range.
TEST(BitWordsTest, ForEachWordCoversExactlyTheRange) {
  for (uint64_t first = 0; first < 130; ++first) {
    for (uint64_t count = 0; count < 200; ++count) {
      std::vector<uint64_t> expected(6, 0), got(6, 0);
      for (uint64_t b = first; b < first + count; ++b) set(expected, b);
      uint64_t last_w = 0;
      bool any = false;
      for_each_word(first, count, [&](uint64_t w, uint64_t mask) {
        EXPECT_TRUE(!any || w == last_w + 1) << "words in order, each once";
        EXPECT_NE(mask, 0u);
        got[w] |= mask;
        last_w = w;
        any = true;
      });
      ASSERT_EQ(got, expected) << first << "+" << count;
    }
  }
}

TEST(BitWordsTest, ForEachSetBitAndLowestBit) {
  std::vector<uint64_t> words = {0, (uint64_t{1} << 5) | (uint64_t{1} << 63), 0, 1};
  std::vector<uint64_t> bits;
  for_each_set_bit(words, [&](uint64_t bit) { bits.push_back(bit); });
  EXPECT_EQ(bits, (std::vector<uint64_t>{69, 127, 192}));
  EXPECT_EQ(lowest_bit(1, words[1]), 69u);
  EXPECT_EQ(lowest_bit(3, words[3]), 192u);
}

}  // namespace
}  // namespace sealfs::bit_words
