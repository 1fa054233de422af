#include "tools/layout/sizes.h"

#include <fmt/format.h>

namespace sealfs::layout {

namespace {

constexpr const char* kUnits[] = {"", "K", "M", "G", "T", "P", "E"};
constexpr int kLargestUnit = 6;

uint64_t unit_bytes(int unit) { return uint64_t{1} << (10 * unit); }

// The largest unit that divides every value and is not above `limit`
// (a zero limit allows any unit that divides).
int largest_dividing_unit(uint64_t a, uint64_t b, uint64_t limit) {
  int unit = 0;
  while (unit < kLargestUnit) {
    const uint64_t next = unit_bytes(unit + 1);
    if (a % next != 0 || b % next != 0 || (limit != 0 && next > limit)) break;
    ++unit;
  }
  return unit;
}

std::string in_unit(uint64_t bytes, int unit) {
  if (bytes == 0) return "0";
  return fmt::format("{}{}", bytes / unit_bytes(unit), kUnits[unit]);
}

}  // namespace

std::string human(uint64_t bytes) {
  int unit = 0;
  uint64_t whole = bytes;
  while (whole >= 1024 && unit < kLargestUnit) {
    whole /= 1024;
    ++unit;
  }
  if (unit == 0) return std::to_string(bytes);
  const uint64_t scale = unit_bytes(unit);
  if (bytes % scale == 0) return fmt::format("{}{}", bytes / scale, kUnits[unit]);
  const double value = static_cast<double>(bytes) / static_cast<double>(scale);
  std::string text = fmt::format("{:.1f}", value);
  if (text.ends_with(".0")) text = fmt::format("{:.2f}", value);
  if (text.ends_with(".00")) text = "~" + text.substr(0, text.size() - 3);
  return text + kUnits[unit];
}

std::string exact_offset(uint64_t bytes) {
  return in_unit(bytes, largest_dividing_unit(bytes, bytes, bytes));
}

std::string exact_range(uint64_t start, uint64_t end) {
  const int unit = largest_dividing_unit(start, end, end);
  return fmt::format("[{}, {})", in_unit(start, unit), in_unit(end, unit));
}

}  // namespace sealfs::layout
