#include "mem_kernels.h"

#include <immintrin.h>

#include <random>
#include <vector>

namespace dbench {

bool kernels_supported() { return __builtin_cpu_supports("avx2"); }

__attribute__((target("avx2"))) uint64_t read_pass(const void* p, size_t len) {
  const auto* v = static_cast<const __m256i*>(p);
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0, n = len / sizeof(__m256i); i < n; i += 4) {
    a = _mm256_xor_si256(a, _mm256_load_si256(v + i));
    b = _mm256_xor_si256(b, _mm256_load_si256(v + i + 1));
    c = _mm256_xor_si256(c, _mm256_load_si256(v + i + 2));
    d = _mm256_xor_si256(d, _mm256_load_si256(v + i + 3));
  }
  __m256i all = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
  return static_cast<uint64_t>(_mm256_extract_epi64(all, 0) ^ _mm256_extract_epi64(all, 3));
}

__attribute__((target("avx2"))) void write_pass_nt(void* p, size_t len, uint64_t pattern) {
  auto* v = static_cast<__m256i*>(p);
  const __m256i x = _mm256_set1_epi64x(static_cast<long long>(pattern));
  for (size_t i = 0, n = len / sizeof(__m256i); i < n; i += 4) {
    _mm256_stream_si256(v + i, x);
    _mm256_stream_si256(v + i + 1, x);
    _mm256_stream_si256(v + i + 2, x);
    _mm256_stream_si256(v + i + 3, x);
  }
  _mm_sfence();
}

__attribute__((target("avx2"))) void write_pass_plain(void* p, size_t len, uint64_t pattern) {
  auto* v = static_cast<__m256i*>(p);
  const __m256i x = _mm256_set1_epi64x(static_cast<long long>(pattern));
  for (size_t i = 0, n = len / sizeof(__m256i); i < n; i += 4) {
    _mm256_store_si256(v + i, x);
    _mm256_store_si256(v + i + 1, x);
    _mm256_store_si256(v + i + 2, x);
    _mm256_store_si256(v + i + 3, x);
  }
}

uint64_t load_block(const void* block) { return read_pass(block, kBlock); }

void store_block_nt(void* block, uint64_t pattern) { write_pass_nt(block, kBlock, pattern); }

uint64_t build_chase(char* base, size_t pages, uint64_t seed) {
  std::mt19937_64 rng(seed);
  // Sattolo's shuffle: a single cycle through every page.
  std::vector<uint32_t> next(pages);
  for (size_t i = 0; i < pages; ++i) next[i] = static_cast<uint32_t>(i);
  for (size_t i = pages - 1; i > 0; --i) {
    std::uniform_int_distribution<size_t> pick(0, i - 1);
    std::swap(next[i], next[pick(rng)]);
  }
  // A random line per page, so the slots do not all fall in one cache set.
  constexpr size_t kLinesPerPage = kBlock / 64;
  std::vector<uint64_t> slot(pages);
  std::uniform_int_distribution<size_t> line(0, kLinesPerPage - 1);
  for (size_t i = 0; i < pages; ++i) slot[i] = i * kBlock + line(rng) * 64;
  for (size_t i = 0; i < pages; ++i) {
    *reinterpret_cast<uint64_t*>(base + slot[i]) = slot[next[i]];
  }
  return slot[0];
}

uint64_t run_chase(const char* base, uint64_t start, size_t hops, Samples* out) {
  uint64_t at = start;
  for (size_t i = 0; i < hops; ++i) {
    uint64_t t0 = ticks_begin();
    at = *reinterpret_cast<const volatile uint64_t*>(base + at);
    out->add(ticks_end() - t0);
  }
  return at;
}

}  // namespace dbench
