#include "lease/warning_throttle.h"

#include <cstddef>

namespace sealfs::lease {
namespace {

// Keys seen once and quiet since need no memory; forgetting them keeps the
// map small when many uids come and go.
constexpr size_t kPruneAbove = 4096;

}  // namespace

bool WarningThrottle::allow(uint64_t key, uint64_t now_ns, uint64_t* suppressed) {
  if (entries_.size() > kPruneAbove) {
    std::erase_if(entries_, [&](const auto& kv) {
      return kv.second.held_back == 0 && now_ns - kv.second.last_ns >= interval_ns_;
    });
  }
  auto [it, fresh] = entries_.try_emplace(key);
  Entry& e = it->second;
  if (!fresh && now_ns - e.last_ns < interval_ns_) {
    ++e.held_back;
    return false;
  }
  *suppressed = e.held_back;
  e.held_back = 0;
  e.last_ns = now_ns;
  return true;
}

}  // namespace sealfs::lease
