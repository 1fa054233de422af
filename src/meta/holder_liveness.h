// Is the process that held a direct mapping still alive? A pid alone is not
// enough (pids are reused): compare the start time, field 22 of
// /proc/PID/stat (util/proc_file.h). Alive when /proc cannot tell.
#pragma once

#include <cstdint>

#include "util/proc_file.h"

namespace sealfs {

bool holder_process_alive(uint32_t pid, uint64_t start_time);

}  // namespace sealfs
