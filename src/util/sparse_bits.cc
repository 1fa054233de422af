#include "util/sparse_bits.h"

namespace sealfs {

SparseBits::SparseBits(uint64_t bits)
    : bits_(bits), pages_((bits + kBitsPerPage - 1) / kBitsPerPage) {}

SparseBits::SparseBits(const SparseBits& other) : bits_(other.bits_), pages_(other.pages_.size()) {
  for (size_t i = 0; i < pages_.size(); ++i) {
    if (other.pages_[i]) pages_[i] = std::make_unique<Page>(*other.pages_[i]);
  }
}

SparseBits& SparseBits::operator=(const SparseBits& other) {
  if (this != &other) *this = SparseBits(other);
  return *this;
}

uint64_t& SparseBits::word_for_write(uint64_t w) {
  std::unique_ptr<Page>& p = pages_[w / kWordsPerPage];
  if (!p) p = std::make_unique<Page>();  // value-initialised: zeros
  return (*p)[w % kWordsPerPage];
}

void SparseBits::set_word(uint64_t w, uint64_t value) {
  if (value == 0 && !pages_[w / kWordsPerPage]) return;
  word_for_write(w) = value;
}

void SparseBits::assign(uint64_t first, uint64_t count, bool value) {
  bit_words::for_each_word(first, count, [&](uint64_t w, uint64_t mask) {
    if (value) {
      word_for_write(w) |= mask;
    } else if (pages_[w / kWordsPerPage]) {
      word_for_write(w) &= ~mask;
    }
  });
}

bool SparseBits::all(uint64_t first, uint64_t count) const {
  bool ok = true;
  bit_words::for_each_word(first, count,
                           [&](uint64_t w, uint64_t mask) { ok = ok && (word(w) & mask) == mask; });
  return ok;
}

bool SparseBits::none(uint64_t first, uint64_t count) const {
  bool ok = true;
  bit_words::for_each_word(first, count,
                           [&](uint64_t w, uint64_t mask) { ok = ok && (word(w) & mask) == 0; });
  return ok;
}

uint64_t SparseBits::pages_present() const {
  uint64_t n = 0;
  for (const auto& p : pages_) n += p ? 1 : 0;
  return n;
}

}  // namespace sealfs
