#include "util/crc32c.h"

#include <array>
#include <cstring>

namespace sealfs {
namespace {

constexpr uint32_t kPoly = 0x82f63b78;  // reflected Castagnoli polynomial

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kTable = make_table();

uint32_t extend_portable(uint32_t crc, const uint8_t* p, size_t len) {
  for (size_t i = 0; i < len; ++i) crc = kTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t extend_sse42(uint32_t crc, const uint8_t* p,
                                                        size_t len) {
  uint64_t c = crc;
  while (len >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    len -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}

bool have_sse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  if (have_sse42()) return ~extend_sse42(crc, p, len);
#endif
  return ~extend_portable(crc, p, len);
}

uint32_t crc32c_with_hole(const void* data, size_t len, size_t crc_offset) {
  static constexpr uint8_t kZero[4] = {0, 0, 0, 0};
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t crc = crc32c_extend(0, p, crc_offset);
  crc = crc32c_extend(crc, kZero, 4);
  return crc32c_extend(crc, p + crc_offset + 4, len - crc_offset - 4);
}

}  // namespace sealfs
