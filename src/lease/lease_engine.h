// The lease engine of one mount: the one object that owns everything about
// direct-map leases in the daemon. It is the meta layer's LayoutGate (an
// inode is sealed while it has leases), owns the control-socket server, the
// layout source over the mounted Filesystem and the quarantine sink, watches
// holders that outlived the previous daemon, and remembers which inodes ever
// had a lease that was not exclusive. The FUSE layer above reaches it through this header only and
// hears about what it must tell the kernel through LeaseObserver.
//
// Lifetime, in the order the daemon drives it:
//   LeaseEngine engine(options);           // before mount: the gate must exist
//   mount_options.gate = &engine;          // the meta layer asks it
//   ... Filesystem::mount, kernel mount ...
//   engine.start(fs, region, &observer);   // binds the socket, watches
//                                          // holders that outlived a daemon
//   ... serve ...
//   engine.stop();                         // before Filesystem::unmount
//
// Until start() and after stop() no inode is sealed: there are no leases.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include "lease/lease_core.h"
#include "meta/filesystem.h"
#include "util/status.h"
#include "util/thread_annotations.h"
#include "wire/wire.h"

namespace sealfs {
class RegionPmem2;
}

namespace sealfs::lease {

class LeaseServer;
class LayoutSource;
class QuarantineSink;
class RestoredHolderWatch;

// What the engine tells the layer that serves the files (the FUSE daemon):
// changes the kernel did not ask for and so does not know about.
class LeaseObserver {
 public:
  virtual ~LeaseObserver() = default;
  // A grant or an EXTEND changed (or may have changed, even when refused)
  // the file's size or block count: cached attributes are stale. Called on
  // the engine's thread with the inode's layout lock held: must not wait
  // for a request of the same mount (src/meta/locking.h: the one exception
  // to "no fuse_lowlevel_notify_* under a lock" is this notice).
  virtual void attributes_changed(Ino ino) = 0;
};

struct EngineOptions {
  std::string mountpoint;       // where the kernel mount will be
  std::string control_socket;   // "" = a fresh private directory
  uint32_t break_time_s = 45;   // lease-break time
  uint32_t revoke_policy = wire::kPolicyFence;
  std::optional<uint32_t> dax_group;  // trusted besides root and the daemon's uid
  // No writeback cache in the mount: told to clients (wire::kMountWriteThrough).
  // Off unless the daemon says so: a client told too much could skip a
  // sync that the kernel's cached writes need.
  bool write_through = false;
};

class LeaseEngine final : public LayoutGate {
 public:
  // Resolves the mount point now: afterwards, looking it up could send a
  // request to this daemon before its loop runs.
  explicit LeaseEngine(EngineOptions options);
  ~LeaseEngine() override;
  LeaseEngine(const LeaseEngine&) = delete;
  LeaseEngine& operator=(const LeaseEngine&) = delete;

  // LayoutGate: asked by the meta layer under the inode's lock.
  bool sealed(Ino ino) override;
  void free_deferred(Ino ino) override;

  // Starts the engine once the kernel mount exists (its mount id is what
  // received descriptors must be on). `observer` outlives the engine's
  // running time. kNotFound when the mount is already gone; kBusy when
  // already started.
  Status start(Filesystem& fs, const RegionPmem2& region, LeaseObserver* observer);

  // Breaks every lease (reason UNMOUNT) and gives holders up to
  // min(break time, 5 s) to let go; revokes the rest into quarantine (their
  // library fences them when the connection closes), then stops the engine.
  // Queued layout changes are answered with an error. Idempotent.
  void stop();

  bool running() const;
  // Breaks the inode's leases and runs `then` on the engine's thread when
  // they are gone (LeaseCore::may_change_layout); without a running engine
  // `then` runs at once with an error.
  void may_change_layout(Ino ino, uint32_t reason, Continuation then);

  // fsync or fdatasync of ino through the mount: while a writable mapping
  // of it is held, its stores may have changed the file (POSIX's rule for
  // msync of a shared mapping), so its mtime and ctime move
  // (LayoutSource::direct_stores_possible). From a request thread, no lock
  // held.
  void file_synced(Ino ino);

  // Handles opened through the mount, for exclusive leases (lease_core.h).
  // From request threads, no lock held. file_opened registers the handle
  // of an open by thread `tid` (0 = not visible in the daemon's pid
  // namespace) and returns its number for file_closed (0 while no engine
  // runs: then nothing is leased). open_blocked: an exclusive lease of
  // another process makes that open wait; may_open breaks those and runs
  // `then` once they are gone (with an error if the engine stops first).
  uint64_t file_opened(Ino ino, uint32_t tid);
  void file_closed(Ino ino, uint64_t handle);
  bool open_blocked(Ino ino, uint32_t tid);
  void may_open(Ino ino, uint32_t tid, Continuation then);

  // An inode that had a lease without kMapExclusive in this mount: its
  // holders may store beside other processes' views, so its readers bypass
  // the page cache and every open drops the cached pages (close-to-open;
  // docs/daemon.md "Caching and coherence"). Exclusive holders never do
  // (lease_core.h), and leave the file's handles as they were.
  bool had_shared_lease(Ino ino) const;
  // The kernel caches writes: a map request must say the client wrote the
  // file back first (refusal kFlushFirst otherwise). Set before serving.
  void require_flushed_maps() { require_flushed_maps_.store(true); }
  // The control socket's path ("" before start).
  const std::string& control_socket() const { return socket_path_; }

 private:
  class Source;
  friend class Source;

  std::shared_ptr<LeaseServer> current_server() const;
  void break_for_unmount(LeaseServer& server);
  void note_leased(Ino ino, bool exclusive);
  void attributes_changed(Ino ino);

  const EngineOptions options_;
  std::atomic<bool> require_flushed_maps_{false};
  // Written by start() before the engine thread exists and before the
  // gate can say "sealed" (which is what lets free_deferred run); read-only
  // while the engine runs.
  Filesystem* fs_ = nullptr;
  LeaseObserver* observer_ = nullptr;
  const RegionPmem2* region_ = nullptr;  // whose first media fault breaks writable leases
  std::string socket_dir_;  // created by start() when no control_socket was given
  std::string socket_path_;
  std::unique_ptr<LayoutSource> meta_source_;
  std::unique_ptr<Source> source_;
  std::unique_ptr<QuarantineSink> sink_;
  std::unique_ptr<RestoredHolderWatch> restored_;

  // The gate is asked from any thread; start() and stop() swap the server.
  mutable Mutex server_mu_;  // leaf
  std::shared_ptr<LeaseServer> server_ GUARDED_BY(server_mu_);

  mutable Mutex leased_mu_;  // leaf
  std::unordered_set<Ino> shared_leased_ GUARDED_BY(leased_mu_);
};

}  // namespace sealfs::lease
