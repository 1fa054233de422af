// The lease engine inside the daemon: what connects src/lease (control
// socket, break/revoke state machine) to the mounted Filesystem and to FUSE.
//
// Lifetime, in the order run_daemon() drives it:
//   DaemonLeases leases(options);          // before mount: gate() must exist
//   mount_options.gate = &leases.gate();   // the meta layer asks it
//   ... Filesystem::mount, fuse_session_mount ...
//   leases.start(fs, region, session);     // binds the socket, watches
//                                          // holders that outlived a daemon
//   ... serve ...
//   leases.stop();                         // before Filesystem::unmount
//
// Until start() and after stop() no inode is sealed: there are no leases.
#pragma once

#include <fuse_lowlevel.h>

#include <cstdint>
#include <memory>
#include <atomic>
#include <mutex>
#include <string>
#include <unordered_set>

#include "fuse/options.h"
#include "lease/lease_server.h"
#include "meta/filesystem.h"
#include "util/status.h"

namespace sealfs {
class RegionPmem2;
}

namespace sealfs::fuse {

class RestoredHolderWatch;

class DaemonLeases {
 public:
  explicit DaemonLeases(const DaemonOptions& options);
  ~DaemonLeases();
  DaemonLeases(const DaemonLeases&) = delete;
  DaemonLeases& operator=(const DaemonLeases&) = delete;

  LayoutGate& gate();

  // Starts the engine once the kernel mount exists (its mount id is what
  // received descriptors must be on).
  Status start(Filesystem& fs, const RegionPmem2& region, fuse_session* session);

  // Breaks every lease (reason UNMOUNT) and gives holders up to
  // min(lease_break_time, 5 s) to let go; revokes the rest into quarantine
  // (their library fences them when the connection closes), then stops the
  // engine. Queued layout changes are answered with an error. Idempotent.
  void stop();

  bool running() const;
  // See LeaseCore::may_change_layout; without a running engine `then` runs
  // at once with an error.
  void may_change_layout(Ino ino, uint32_t reason, lease::Continuation then);

  // An inode that was ever leased in this mount: opened with direct_io, so
  // read(2) sees stores made through direct mappings (docs/daemon.md).
  bool had_lease(Ino ino) const;
  // The kernel caches writes (INIT granted -o writeback_cache): map requests
  // must then come after the client wrote the file back.
  void set_writeback_cache() { writeback_cache_.store(true); }
  // The value of the virtual xattr user.sealfs.control ("" before start).
  const std::string& control_socket() const { return socket_path_; }

 private:
  class Gate;
  class Source;
  friend class Source;

  // Breaks every lease with reason UNMOUNT and waits for holders to let go,
  // at most min(lease_break_time, 5 s).
  void break_for_unmount();
  void note_leased(Ino ino);
  void drop_cached_attributes(Ino ino);

  const DaemonOptions& options_;
  std::atomic<bool> writeback_cache_{false};
  fuse_session* session_ = nullptr;
  std::string mountpoint_;  // canonical, resolved before the mount
  std::unique_ptr<Gate> gate_;
  Filesystem* fs_ = nullptr;
  std::string socket_dir_;  // created by start() when no control_socket was given
  std::string socket_path_;
  std::unique_ptr<lease::LayoutSource> meta_source_;
  std::unique_ptr<Source> source_;
  std::unique_ptr<lease::QuarantineSink> sink_;
  std::shared_ptr<lease::LeaseServer> server_;
  std::unique_ptr<RestoredHolderWatch> restored_;

  mutable std::mutex leased_mu_;  // leaf
  std::unordered_set<Ino> leased_;
};

}  // namespace sealfs::fuse
