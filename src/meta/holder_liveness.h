// Is the process that held a direct mapping still alive? A pid alone is not
// enough (pids are reused): compare the start time, field 22 of
// /proc/PID/stat.
#pragma once

#include <cstdint>
#include <optional>

namespace sealfs {

std::optional<uint64_t> process_start_time(uint32_t pid);
bool holder_process_alive(uint32_t pid, uint64_t start_time);

}  // namespace sealfs
