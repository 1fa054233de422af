// The self-describing data of the lease stress test (stress_test.cc,
// stress_holder.cc).
//
// Every byte the stress test writes is part of an aligned 8-byte word that
// names its own file offset and its "lineage": the identity of the file
// contents it belongs to (a new lineage for every created file and for every
// truncation to zero). Words are stored whole (8-byte aligned stores through
// a mapping, or pwrite of whole words), so a word never tears; a reader can
// judge any byte it sees without knowing who wrote it or when:
//   zero                        a hole, an allocation, a cut (always valid);
//   this file's lineage, offset  valid;
//   anything else               a bug: another (often deleted) file's bytes,
//                               bytes at the wrong offset, or garbage.
// A "ghost" word is one a revoked holder stored through its stale mapping
// after its deadline; the ghost bit lets a report say so.
//
// Layout, little-endian: bits 0..33 offset/8, bits 34..54 lineage, bit 55
// ghost, bits 56..63 the magic 0xA5 (so a word is never zero).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace sealfs::itest::stress {

constexpr uint64_t kMagic = 0xA5;
constexpr uint64_t kOffsetBits = 34;
constexpr uint64_t kLineageBits = 21;
constexpr uint64_t kMaxLineage = (uint64_t{1} << kLineageBits) - 1;
constexpr const char* kLineageXattr = "user.stress.lineage";

inline uint64_t make_word(uint64_t lineage, bool ghost, uint64_t offset) {
  return (kMagic << 56) | (uint64_t{ghost} << 55) | ((lineage & kMaxLineage) << kOffsetBits) |
         ((offset / 8) & ((uint64_t{1} << kOffsetBits) - 1));
}

struct Decoded {
  bool magic = false;
  bool ghost = false;
  uint64_t lineage = 0;
  uint64_t offset = 0;
};

inline Decoded decode_word(uint64_t w) {
  Decoded d;
  d.magic = (w >> 56) == kMagic;
  d.ghost = ((w >> 55) & 1) != 0;
  d.lineage = (w >> kOffsetBits) & kMaxLineage;
  d.offset = (w & ((uint64_t{1} << kOffsetBits) - 1)) * 8;
  return d;
}

// Fills [offset, offset+length) of a file (both multiples of 8) into out.
inline void fill_words(void* out, uint64_t length, uint64_t lineage, bool ghost, uint64_t offset) {
  auto* p = static_cast<uint64_t*>(out);
  for (uint64_t i = 0; i < length / 8; ++i) p[i] = make_word(lineage, ghost, offset + i * 8);
}

// Whether `bytes` (n <= 8 bytes of the word starting at the 8-aligned file
// offset `word_offset`) are acceptable in a file of `lineage`: each byte is
// zero or the byte of this lineage's word (plain or ghost). Zeros inside a
// word come from cuts at unaligned offsets (truncate, punch, zero range).
inline bool bytes_ok(const uint8_t* bytes, size_t n, uint64_t lineage, uint64_t word_offset) {
  for (bool ghost : {false, true}) {
    const uint64_t w = make_word(lineage, ghost, word_offset);
    uint8_t want[8];
    std::memcpy(want, &w, 8);
    bool ok = true;
    for (size_t i = 0; i < n && ok; ++i) ok = bytes[i] == 0 || bytes[i] == want[i];
    if (ok) return true;
  }
  return false;
}

// The first bad byte range of data (a piece of a file of `lineage` that
// starts at file offset `offset`, any alignment): returns the file offset of
// the 8-byte word holding it, or UINT64_MAX when everything is acceptable.
inline uint64_t first_bad_word(const void* data, size_t length, uint64_t lineage,
                               uint64_t offset) {
  const auto* p = static_cast<const uint8_t*>(data);
  size_t i = 0;
  while (i < length) {
    const uint64_t file_off = offset + i;
    const uint64_t word_off = file_off & ~uint64_t{7};
    const size_t in_word = static_cast<size_t>(file_off - word_off);
    const size_t n = std::min<size_t>(8 - in_word, length - i);
    // Judge the present bytes against the word's bytes at their positions.
    uint8_t bytes[8] = {};
    std::memcpy(bytes + in_word, p + i, n);
    if (!bytes_ok(bytes, in_word + n, lineage, word_off)) return word_off;
    i += n;
  }
  return UINT64_MAX;
}

// The 8 bytes at a word offset of data (zero-padded), as a word.
inline uint64_t word_at(const void* data, size_t length, uint64_t offset, uint64_t word_off) {
  uint8_t bytes[8] = {};
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t k = 0; k < 8; ++k) {
    const uint64_t o = word_off + k;
    if (o >= offset && o < offset + length) bytes[k] = p[o - offset];
  }
  uint64_t w = 0;
  std::memcpy(&w, bytes, 8);
  return w;
}

inline std::string describe_word(uint64_t w) {
  Decoded d = decode_word(w);
  char buf[160];
  if (!d.magic) {
    std::snprintf(buf, sizeof buf, "0x%016llx (not a stress word)",
                  static_cast<unsigned long long>(w));
  } else {
    std::snprintf(buf, sizeof buf, "0x%016llx (lineage %llu%s, written for offset %llu)",
                  static_cast<unsigned long long>(w), static_cast<unsigned long long>(d.lineage),
                  d.ghost ? " ghost" : "", static_cast<unsigned long long>(d.offset));
  }
  return buf;
}

}  // namespace sealfs::itest::stress
