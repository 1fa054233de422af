// Bit addressing in arrays of 64-bit words: bit i is in word i / 64, at
// position i % 64 counting from the least significant bit. The on-media
// block bitmap (little-endian words) and every in-memory bitmap (the inode
// numbers in use, SparseBits, fsck's comparisons) share this order; this
// header is the one place that spells it out.
#pragma once

#include <cstdint>
#include <span>

namespace sealfs::bit_words {

constexpr uint64_t kBitsPerWord = 64;

// The word holding bit `bit`, and the mask of that bit in it.
constexpr uint64_t word_of(uint64_t bit) { return bit / kBitsPerWord; }
constexpr uint64_t mask_of(uint64_t bit) { return uint64_t{1} << (bit % kBitsPerWord); }

// How many words hold `bits` bits.
constexpr uint64_t words_for(uint64_t bits) { return (bits + kBitsPerWord - 1) / kBitsPerWord; }

// Positions [lo, hi) of one word set, 0 <= lo <= hi <= 64.
constexpr uint64_t span_mask(uint64_t lo, uint64_t hi) {
  const uint64_t below_hi = hi >= kBitsPerWord ? ~uint64_t{0} : (uint64_t{1} << hi) - 1;
  const uint64_t below_lo = lo >= kBitsPerWord ? ~uint64_t{0} : (uint64_t{1} << lo) - 1;
  return below_hi & ~below_lo;
}

// The bits of word `w` that a bitmap of `bits` bits uses: all of a word
// before its last, the low bits % 64 of its last (all of it when bits is a
// multiple of 64), none past it. A set bit outside this mask marks
// something that does not exist.
constexpr uint64_t valid_mask(uint64_t bits, uint64_t w) {
  const uint64_t first = w * kBitsPerWord;
  if (first >= bits) return 0;
  return span_mask(0, bits - first);
}

// valid_mask of the last word of a bitmap of `bits` (> 0) bits.
constexpr uint64_t last_word_mask(uint64_t bits) { return valid_mask(bits, words_for(bits) - 1); }

// The bit number of the lowest set bit of `word`, which is word `w`; word != 0.
inline uint64_t lowest_bit(uint64_t w, uint64_t word) {
  return w * kBitsPerWord + static_cast<uint64_t>(__builtin_ctzll(word));
}

inline bool test(std::span<const uint64_t> words, uint64_t bit) {
  return (words[word_of(bit)] & mask_of(bit)) != 0;
}
inline void set(std::span<uint64_t> words, uint64_t bit) { words[word_of(bit)] |= mask_of(bit); }
inline void clear(std::span<uint64_t> words, uint64_t bit) { words[word_of(bit)] &= ~mask_of(bit); }

// Calls f(w, mask) for each word w that bits [first, first + count) touch,
// in order, mask selecting the bits of the range in it. None when count is 0.
template <typename F>
void for_each_word(uint64_t first, uint64_t count, F&& f) {
  const uint64_t end = first + count;
  while (first < end) {
    const uint64_t w = word_of(first);
    const uint64_t base = w * kBitsPerWord;
    const uint64_t hi = end - base < kBitsPerWord ? end - base : kBitsPerWord;
    f(w, span_mask(first - base, hi));
    first = base + hi;
  }
}

// Calls f(bit) for every set bit of `words`, lowest first, skipping zero
// words in one comparison each.
template <typename F>
void for_each_set_bit(std::span<const uint64_t> words, F&& f) {
  for (uint64_t w = 0; w < words.size(); ++w) {
    for (uint64_t word = words[w]; word != 0; word &= word - 1) f(lowest_bit(w, word));
  }
}

}  // namespace sealfs::bit_words
