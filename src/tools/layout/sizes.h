// Sizes and byte ranges as sealfs-layout prints them for people (the JSON
// always has bytes). A size may be rounded ("~234M": the "~" says so); a
// range or an offset never is: two extents 4K apart at 32.5M once printed
// as the same "[32.5M, 32.5M)".
#pragma once

#include <cstdint>
#include <string>

namespace sealfs::layout {

// "0", "4K", "1.5G", "16T": binary units, one decimal unless exact (two
// when one would print ".0"), "~" in front when even two would round.
std::string human(uint64_t bytes);

// An offset, exactly: in the largest binary unit that divides it ("22M",
// "16388K", "12345" for an offset that is no multiple of 1K).
std::string exact_offset(uint64_t bytes);

// "[START, END)" exactly, both ends in one unit: the largest that divides
// both and is not above the end ("[22M, 62M)", "[33284K, 33288K)",
// "[8192, 12345)"). Distinct ranges never print alike.
std::string exact_range(uint64_t start, uint64_t end);

}  // namespace sealfs::layout
