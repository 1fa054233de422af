// The usual 8-4-4-4-12 text form of a filesystem uuid.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace sealfs {

inline std::string uuid_text(const std::array<uint8_t, 16>& u) {
  return fmt::format("{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
                     "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                     u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
                     u[12], u[13], u[14], u[15]);
}

}  // namespace sealfs
