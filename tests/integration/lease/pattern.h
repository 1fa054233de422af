// Deterministic bytes shared by the lease holder and the tests: a range of a
// file or a mapping can be checked at any offset without keeping a copy.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sealfs::itest {

inline uint8_t lease_pattern_byte(uint64_t seed, uint64_t offset) {
  uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull ^ (offset / 8) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  uint8_t b = static_cast<uint8_t>(x >> (8 * (offset % 8)));
  // Never zero: a region of zeros must never pass for a pattern.
  return b == 0 ? 0x5A : b;
}

inline void fill_lease_pattern(void* out, size_t length, uint64_t seed, uint64_t offset) {
  auto* p = static_cast<uint8_t*>(out);
  for (size_t i = 0; i < length; ++i) p[i] = lease_pattern_byte(seed, offset + i);
}

// Index of the first byte of `data` that is not the pattern at `offset`, or
// `length` when all match.
inline size_t lease_pattern_mismatch(const void* data, size_t length, uint64_t seed,
                                     uint64_t offset) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < length; ++i) {
    if (p[i] != lease_pattern_byte(seed, offset + i)) return i;
  }
  return length;
}

}  // namespace sealfs::itest
