// At most one warning per key (a peer's uid) per interval, so that a peer
// misbehaving in a loop cannot flood the daemon's log; the next warning that
// gets through says how many were held back.
#pragma once

#include <cstdint>
#include <map>

namespace sealfs::lease {

class WarningThrottle {
 public:
  explicit WarningThrottle(uint64_t interval_ns) : interval_ns_(interval_ns) {}

  // True if a warning for `key` may be logged at `now_ns`; then *suppressed
  // is how many were held back since the last one logged for it.
  bool allow(uint64_t key, uint64_t now_ns, uint64_t* suppressed);

 private:
  struct Entry {
    uint64_t last_ns = 0;
    uint64_t held_back = 0;
  };
  uint64_t interval_ns_;
  std::map<uint64_t, Entry> entries_;
};

}  // namespace sealfs::lease
