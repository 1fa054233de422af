#include "meta/holder_liveness.h"

namespace sealfs {

bool holder_process_alive(uint32_t pid, uint64_t start_time) {
  auto t = process_start_time(pid);
  return t.has_value() && *t == start_time;
}

}  // namespace sealfs
