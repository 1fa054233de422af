// crc32c (Castagnoli): the checksum on every metadata object.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sealfs {

// Continues a running crc: crc32c_extend(crc32c(a), b) == crc32c(a ++ b).
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t len);
inline uint32_t crc32c(const void* data, size_t len) { return crc32c_extend(0, data, len); }

// crc32c of an object whose crc field (at crc_offset, 4 bytes) counts as zero.
uint32_t crc32c_with_hole(const void* data, size_t len, size_t crc_offset);

}  // namespace sealfs
