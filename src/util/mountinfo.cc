#include "util/mountinfo.h"

#include <charconv>
#include <limits>

#include "util/proc_file.h"

namespace sealfs {
namespace {

// Splits at every single space: an empty field is a field.
std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  for (;;) {
    size_t space = line.find(' ');
    fields.push_back(line.substr(0, space));
    if (space == std::string_view::npos) return fields;
    line.remove_prefix(space + 1);
  }
}

template <typename Int>
bool parse_number(std::string_view text, Int& value) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

bool parse_line(std::string_view line, MountInfoEntry& entry) {
  const std::vector<std::string_view> fields = split_fields(line);
  // Six fixed fields, then optional ones up to the separator "-", then three.
  constexpr size_t kFixed = 6;
  size_t separator = kFixed;
  while (separator < fields.size() && fields[separator] != "-") ++separator;
  if (separator + 3 >= fields.size()) return false;  // no "-", or fields missing after it
  const std::string_view devno = fields[2];
  const size_t colon = devno.find(':');
  if (colon == std::string_view::npos) return false;
  if (!parse_number(fields[0], entry.mount_id) || !parse_number(fields[1], entry.parent_id) ||
      !parse_number(devno.substr(0, colon), entry.major) ||
      !parse_number(devno.substr(colon + 1), entry.minor)) {
    return false;
  }
  if (fields[3].empty() || fields[4].empty() || fields[separator + 1].empty()) return false;
  entry.root = unescape_mountinfo_field(fields[3]);
  entry.mount_point = unescape_mountinfo_field(fields[4]);
  entry.fstype = std::string(fields[separator + 1]);
  entry.source = unescape_mountinfo_field(fields[separator + 2]);
  return true;
}

}  // namespace

std::string unescape_mountinfo_field(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() &&
        field[i + 1] >= '0' && field[i + 1] <= '3' && field[i + 2] >= '0' && field[i + 2] <= '7' &&
        field[i + 3] >= '0' && field[i + 3] <= '7') {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                               (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

std::vector<MountInfoEntry> parse_mountinfo(std::string_view text, size_t* malformed) {
  std::vector<MountInfoEntry> entries;
  size_t bad = 0;
  while (!text.empty()) {
    const size_t newline = text.find('\n');
    const std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    if (line.empty()) continue;
    MountInfoEntry entry;
    if (parse_line(line, entry)) {
      entries.push_back(std::move(entry));
    } else {
      ++bad;
    }
  }
  if (malformed != nullptr) *malformed = bad;
  return entries;
}

Result<std::vector<MountInfoEntry>> read_mountinfo(pid_t pid) {
  const std::string path =
      pid == 0 ? std::string("/proc/self/mountinfo") : "/proc/" + std::to_string(pid) + "/mountinfo";
  // No limit: a cut-off file would lose the newest mounts, which are last.
  ASSIGN_OR_RETURN(std::string text,
                   read_kernel_file(path, std::numeric_limits<size_t>::max()));
  return parse_mountinfo(text);
}

}  // namespace sealfs
