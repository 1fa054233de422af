#include "meta/holder_liveness.h"

namespace sealfs {

bool holder_process_alive(uint32_t pid, uint64_t start_time) {
  Result<uint64_t> started = process_start_time(pid);
  // Dead means gone, or another process under the same pid. When /proc
  // cannot tell (no descriptors, no memory, hidepid=1) the holder counts as
  // alive: its blocks stay out of use rather than being handed out while it
  // may still map them.
  if (!started.is_ok()) return started.status().code() != Code::kNotFound;
  return *started == start_time;
}

}  // namespace sealfs
