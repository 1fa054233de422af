// Turns fuzzer bytes into a mutated sealfs image: a base image (base_images.h)
// plus patches that land on its used blocks, each optionally re-sealed with a
// correct crc so the mutation reaches the code behind the crc check.
//
// Input layout (all little-endian; a short tail is ignored):
//   byte 0           base image (modulo the number of bases)
//   then records of  u16 block pick (modulo the base's used blocks)
//                    u16 offset in the block (modulo 4096)
//                    u8  control: low 5 bits + 1 = patch length, bit 5 = XOR
//                        instead of overwrite, bits 6-7 != 0: re-seal the crc
//                    the patch bytes
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base_images.h"

namespace sealfs::fuzz {

// Fills `image` (its storage is reused) and returns the base it came from.
const BaseImage& mutate(const uint8_t* data, size_t size, std::vector<std::byte>& image);

}  // namespace sealfs::fuzz
