#include "meta/holder_liveness.h"

#include <fstream>
#include <sstream>
#include <string>

namespace sealfs {

std::optional<uint64_t> process_start_time(uint32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return std::nullopt;
  std::string line;
  std::getline(in, line);
  // The command name (field 2) may hold spaces and parentheses: fields
  // after it start past the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  // Field 3 is the first after ')'; start time is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
  }
  try {
    return std::stoull(field);
  } catch (...) {
    return std::nullopt;
  }
}

bool holder_process_alive(uint32_t pid, uint64_t start_time) {
  auto t = process_start_time(pid);
  return t.has_value() && *t == start_time;
}

}  // namespace sealfs
