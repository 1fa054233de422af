// The one source of randomness in a difftest run. splitmix64 is fully
// specified (unlike std:: distributions), so a seed replays the same
// sequence with any compiler and standard library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace difftest {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform enough in [0, n); the modulo bias is irrelevant at our ranges.
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
  // Inclusive on both ends.
  uint64_t between(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  bool percent(unsigned p) { return below(100) < p; }

  // Bytes to write: mostly random, sometimes all zeros or one repeated byte,
  // so that a filesystem that confuses written zeros with holes shows it.
  std::string bytes(size_t n) {
    std::string out(n, '\0');
    uint64_t kind = below(10);
    if (kind == 0) return out;
    if (kind == 1) return std::string(n, static_cast<char>(1 + below(255)));
    for (size_t i = 0; i < n; i += 8) {
      uint64_t word = next();
      for (size_t j = 0; j < 8 && i + j < n; ++j) out[i + j] = static_cast<char>(word >> (8 * j));
    }
    return out;
  }

 private:
  uint64_t state_;
};

}  // namespace difftest
