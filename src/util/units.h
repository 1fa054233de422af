// Sizes as people write them: a whole number, optionally followed by one of
// the binary units K, M, G, T, P (either case; powers of 1024), optionally
// followed by "iB": "4096", "64K", "64M", "64MiB", "1G", "2T". "64MB" and
// the like are refused: many tools read MB as 10^6 bytes, and guessing
// either way formats a region of a size the user did not mean.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace sealfs {

// The size, or kInvalid with a message that says what is wrong with `text`
// and what to write instead.
Result<uint64_t> parse_size(std::string_view text);
// "16 MiB", "1.5 GiB", "4096 B".
std::string format_size(uint64_t bytes);

}  // namespace sealfs
