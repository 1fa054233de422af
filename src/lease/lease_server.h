// The lease engine's control-socket server: one thread running an epoll loop
// over the listening socket, client connections, holders' pidfds, a timerfd
// for break deadlines and an eventfd for work queued from other threads.
//
// Grants run on this thread under the inode's layout lock (LayoutSource);
// breaks are started from any thread through may_change_layout(), which
// never blocks; continuations of breaks run on this thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "lease/conn_limits.h"
#include "lease/lease_core.h"
#include "util/status.h"

namespace sealfs::lease {

struct ServerOptions {
  std::string socket_path;  // created (mode 0666: trust is checked per peer)
  uint64_t mnt_id = 0;      // received descriptors must be on this mount,
  // or on one this accepts (bind mounts of the same filesystem).
  std::function<bool(uint64_t mnt_id)> also_accept;
  uint32_t daemon_uid = 0;  // trusted, as are root and dax_group members
  std::optional<uint32_t> dax_group;
  LeaseOptions lease;
  // Outbound bytes queued to one client before it counts as unresponsive
  // and is disconnected.
  size_t max_outbox_bytes = 1 << 20;
  // Connections kept per uid and in total; over them a connection is
  // accepted and closed at once (so the listen backlog never fills).
  ConnectionLimits limits;
  // Warnings a peer causes: at most one per uid per interval.
  uint64_t warning_interval_ns = 30'000'000'000ull;
};

class LeaseServer {
 public:
  // Binds the socket and starts the engine thread.
  static Result<std::unique_ptr<LeaseServer>> start(ServerOptions options, LayoutSource& source,
                                                    QuarantineSink* sink,
                                                    const Clock* clock = nullptr);
  ~LeaseServer();  // stops the thread; pending continuations get an error

  // The gate (thread-safe, never blocks); see LeaseCore::may_change_layout.
  void may_change_layout(uint64_t ino, uint64_t offset, uint64_t length, uint32_t reason,
                         Continuation then);
  // Breaks every lease of each file that has a writable direct mapping
  // (on the engine thread, soon; thread-safe, takes only a leaf): the
  // region had a media error and the mount is read-only (docs/daemon.md
  // "Media errors").
  void break_writable_leases(uint32_t reason);
  // Stops handling messages and timers (the thread exits); connections stay
  // open until destruction. Idempotent. For an orderly unmount: after this
  // the core can be shut down and revoked with nothing racing it.
  void stop_thread();
  LeaseCore& core();
  const std::string& socket_path() const;
  size_t connection_count() const;

 private:
  LeaseServer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sealfs::lease
