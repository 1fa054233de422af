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

namespace sealfs {

class SparseBits {
 public:
  static constexpr uint64_t kWordsPerPage = 512;
  static constexpr uint64_t kBitsPerPage = kWordsPerPage * 64;

  SparseBits() = default;
  explicit SparseBits(uint64_t bits);
  SparseBits(const SparseBits& other);
  SparseBits& operator=(const SparseBits& other);
  SparseBits(SparseBits&&) noexcept = default;
  SparseBits& operator=(SparseBits&&) noexcept = default;

  uint64_t bit_count() const { return bits_; }
  uint64_t word_count() const { return (bits_ + 63) / 64; }
  uint64_t page_count() const { return pages_.size(); }

  uint64_t word(uint64_t w) const {
    const Page* p = pages_[w / kWordsPerPage].get();
    return p == nullptr ? 0 : (*p)[w % kWordsPerPage];
  }
  // Storing 0 into an absent page makes no page.
  void set_word(uint64_t w, uint64_t value);
  bool test(uint64_t i) const { return (word(i / 64) >> (i % 64)) & 1u; }

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

  // Calls f(word_index, mask) for each word that [first, first + count)
  // touches, mask selecting the bits of the range in it.
  template <typename F>
  static void for_each_word(uint64_t first, uint64_t count, F&& f) {
    const uint64_t end = first + count;
    while (first < end) {
      const uint64_t w = first / 64;
      const uint64_t lo = first % 64;
      const uint64_t hi = end - w * 64 < 64 ? end - w * 64 : 64;
      const uint64_t upto = hi == 64 ? ~uint64_t{0} : (uint64_t{1} << hi) - 1;
      f(w, upto & ~((uint64_t{1} << lo) - 1));
      first = w * 64 + hi;
    }
  }

 private:
  using Page = std::array<uint64_t, kWordsPerPage>;
  uint64_t& word_for_write(uint64_t w);

  uint64_t bits_ = 0;
  std::vector<std::unique_ptr<Page>> pages_;
};

}  // namespace sealfs
