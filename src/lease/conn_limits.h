// How many control-socket connections the engine keeps, and from whom.
//
// Anyone may connect to the control socket (trust is decided per peer), so an
// untrusted local user could otherwise open connections until the daemon runs
// out of descriptors and trusted holders' map requests fail. Connections are
// counted per uid and in total; an untrusted uid gets a small share, all
// untrusted uids together at most half of the total, so the other half is
// always there for trusted peers (root, the daemon's user, dax_group).
#pragma once

#include <cstdint>
#include <map>

namespace sealfs::lease {

struct ConnectionLimits {
  uint32_t per_untrusted_uid = 64;
  uint32_t per_trusted_uid = 512;
  uint32_t total = 0;  // 0: connection_cap_for_fd_limit(RLIMIT_NOFILE) at start
  // An untrusted peer can hold nothing (it may not map): one that sends
  // nothing for this long is disconnected.
  uint64_t untrusted_idle_ns = 10'000'000'000ull;
};

// The total for a process whose RLIMIT_NOFILE soft limit is `fd_limit`:
// descriptors are kept back for FUSE, the region and the engine, and each
// connection is counted at three (its socket, its holder's pidfd, a
// descriptor in flight); never more than 1024, never fewer than 16.
uint32_t connection_cap_for_fd_limit(uint64_t fd_limit);

class ConnectionBudget {
 public:
  enum class Verdict { kAdmit, kUidFull, kUntrustedFull, kTotalFull };

  explicit ConnectionBudget(const ConnectionLimits& limits);

  // Counts the connection when the verdict is kAdmit.
  Verdict admit(uint32_t uid, bool trusted);
  // A connection admitted with the same uid and trust closed.
  void release(uint32_t uid, bool trusted);

  uint32_t total() const { return total_; }
  uint32_t untrusted() const { return untrusted_; }
  uint32_t of_uid(uint32_t uid) const;
  const ConnectionLimits& limits() const { return limits_; }

 private:
  ConnectionLimits limits_;
  std::map<uint32_t, uint32_t> per_uid_;
  uint32_t total_ = 0;
  uint32_t untrusted_ = 0;
};

const char* verdict_reason(ConnectionBudget::Verdict verdict);

}  // namespace sealfs::lease
