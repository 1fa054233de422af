// SparseBits: a bitmap of a fixed number of bits whose zero pages take no
// memory. The allocator's bitmaps and the mount's block cross-check cover
// the whole data area (32 MiB per copy for 1 TiB), while a young region has
// set bits in only a few places: storage is made per page of 4 KiB (32,768
// bits) on the first set bit in it, and walks skip absent pages, so a mount
// costs what the region holds, not its size (issue 12).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "util/bit_words.h"

namespace sealfs {

class SparseBits {
 public:
  static constexpr uint64_t kWordsPerPage = 512;
  static constexpr uint64_t kBitsPerPage = kWordsPerPage * bit_words::kBitsPerWord;

  SparseBits() = default;
  explicit SparseBits(uint64_t bits);
  SparseBits(const SparseBits& other);
  SparseBits& operator=(const SparseBits& other);
  SparseBits(SparseBits&&) noexcept = default;
  SparseBits& operator=(SparseBits&&) noexcept = default;

  uint64_t bit_count() const { return bits_; }
  uint64_t word_count() const { return bit_words::words_for(bits_); }
  uint64_t page_count() const { return pages_.size(); }

  uint64_t word(uint64_t w) const {
    const Page* p = pages_[w / kWordsPerPage].get();
    return p == nullptr ? 0 : (*p)[w % kWordsPerPage];
  }
  // Storing 0 into an absent page makes no page.
  void set_word(uint64_t w, uint64_t value);
  bool test(uint64_t i) const { return (word(bit_words::word_of(i)) & bit_words::mask_of(i)) != 0; }

  // Bits [first, first + count).
  void assign(uint64_t first, uint64_t count, bool value);
  bool all(uint64_t first, uint64_t count) const;
  bool none(uint64_t first, uint64_t count) const;

  // The words of page `p` (kWordsPerPage of them; the last page is padded
  // with zero words), or nullptr when no bit in it was ever set.
  const uint64_t* page(uint64_t p) const {
    const Page* pg = pages_[p].get();
    return pg == nullptr ? nullptr : pg->data();
  }
  // Pages that hold memory (for tests and memory reports).
  uint64_t pages_present() const;

 private:
  using Page = std::array<uint64_t, kWordsPerPage>;
  uint64_t& word_for_write(uint64_t w);

  uint64_t bits_ = 0;
  std::vector<std::unique_ptr<Page>> pages_;
};

}  // namespace sealfs
