#include "util/units.h"

#include <cctype>
#include <cstdio>

namespace sealfs {

namespace {

constexpr std::string_view kGrammar =
    "a size is a whole number of bytes, optionally followed by K, M, G, T or P (binary: "
    "powers of 1024) and optionally iB after it, e.g. 4096, 64M, 64MiB, 1G";

Status bad_size(std::string_view text, std::string_view why, bool with_grammar = true) {
  std::string message = "'" + std::string(text) + "': " + std::string(why);
  if (with_grammar) message += "; " + std::string(kGrammar);
  return Status(Code::kInvalid, message);
}

// log2 of the unit a suffix letter names; -1 for none.
int unit_shift(char letter) {
  switch (std::toupper(static_cast<unsigned char>(letter))) {
    case 'K': return 10;
    case 'M': return 20;
    case 'G': return 30;
    case 'T': return 40;
    case 'P': return 50;
    default: return -1;
  }
}

}  // namespace

Result<uint64_t> parse_size(std::string_view text) {
  uint64_t value = 0;
  size_t i = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) return bad_size(text, "too large");
    value = value * 10 + digit;
  }
  if (i == 0) return bad_size(text, "not a number");
  const std::string_view suffix = text.substr(i);
  if (suffix.empty()) return value;
  if (suffix[0] == '.' || suffix[0] == ',') {
    return bad_size(text, "not a whole number (write the next smaller unit: 1536M, not 1.5G)");
  }
  const int shift = unit_shift(suffix[0]);
  if (shift < 0) return bad_size(text, "unknown unit '" + std::string(suffix) + "'");
  const std::string_view rest = suffix.substr(1);
  if (rest == "B" || rest == "b") {
    const std::string binary =
        std::string(text.substr(0, i)) +
        static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0])));
    return bad_size(text,
                    "ambiguous: " + std::string(suffix) +
                        " means powers of 1000 to some tools and of 1024 to others; sealfs "
                        "sizes are binary: write " + binary + " or " + binary + "iB",
                    /*with_grammar=*/false);
  }
  if (!rest.empty() && rest != "iB") {
    return bad_size(text, "unknown unit '" + std::string(suffix) + "'");
  }
  if (value > (UINT64_MAX >> shift)) return bad_size(text, "too large");
  return value << shift;
}

std::string format_size(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  unsigned u = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024.0 && u + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    v /= 1024.0;
    ++u;
  }
  char buf[48];
  if (u == 0) std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(bytes));
  else if (v == static_cast<double>(static_cast<uint64_t>(v)))
    std::snprintf(buf, sizeof(buf), "%llu %s", static_cast<unsigned long long>(v), kUnits[u]);
  else std::snprintf(buf, sizeof(buf), "%.1f %s", v, kUnits[u]);
  return buf;
}

}  // namespace sealfs
