#include "lease/conn_limits.h"

#include <algorithm>

namespace sealfs::lease {
namespace {

// FUSE (one descriptor per worker with clone_fd), the region, epoll, the
// timers, syslog and whatever libraries open.
constexpr uint64_t kReservedFds = 256;
constexpr uint64_t kFdsPerConnection = 3;
constexpr uint64_t kMaxConnections = 1024;
constexpr uint64_t kMinConnections = 16;

}  // namespace

uint32_t connection_cap_for_fd_limit(uint64_t fd_limit) {
  const uint64_t usable = fd_limit > kReservedFds ? fd_limit - kReservedFds : 0;
  return static_cast<uint32_t>(
      std::clamp(usable / kFdsPerConnection, kMinConnections, kMaxConnections));
}

ConnectionBudget::ConnectionBudget(const ConnectionLimits& limits) : limits_(limits) {
  if (limits_.total == 0) limits_.total = connection_cap_for_fd_limit(1024);
}

ConnectionBudget::Verdict ConnectionBudget::admit(uint32_t uid, bool trusted) {
  if (total_ >= limits_.total) return Verdict::kTotalFull;
  const uint32_t mine = of_uid(uid);
  if (mine >= (trusted ? limits_.per_trusted_uid : limits_.per_untrusted_uid)) {
    return Verdict::kUidFull;
  }
  if (!trusted && untrusted_ >= limits_.total / 2) return Verdict::kUntrustedFull;
  per_uid_[uid] = mine + 1;
  ++total_;
  if (!trusted) ++untrusted_;
  return Verdict::kAdmit;
}

void ConnectionBudget::release(uint32_t uid, bool trusted) {
  auto it = per_uid_.find(uid);
  if (it == per_uid_.end()) return;
  if (--it->second == 0) per_uid_.erase(it);
  --total_;
  if (!trusted) --untrusted_;
}

uint32_t ConnectionBudget::of_uid(uint32_t uid) const {
  auto it = per_uid_.find(uid);
  return it == per_uid_.end() ? 0 : it->second;
}

const char* verdict_reason(ConnectionBudget::Verdict verdict) {
  switch (verdict) {
    case ConnectionBudget::Verdict::kAdmit: return "admitted";
    case ConnectionBudget::Verdict::kUidFull: return "its uid has its maximum of connections";
    case ConnectionBudget::Verdict::kUntrustedFull:
      return "untrusted peers have their maximum of connections";
    case ConnectionBudget::Verdict::kTotalFull: return "the daemon has its maximum of connections";
  }
  return "?";
}

}  // namespace sealfs::lease
