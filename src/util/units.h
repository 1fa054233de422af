// Sizes as people write them: "4096", "64K", "64M", "1G", "2T" (binary units;
// an optional trailing "iB" or "B" is accepted).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sealfs {

// nullopt for anything that is not a non-negative size that fits in 64 bits.
std::optional<uint64_t> parse_size(std::string_view text);
// "16 MiB", "1.5 GiB", "4096 B".
std::string format_size(uint64_t bytes);

}  // namespace sealfs
