// The lease engine's state machine: lease table per inode, breaks, deadlines,
// revoke policies, quarantine hand-off. No sockets and no threads of its own:
// the server (lease_server.h) feeds it messages and timer ticks, and tests
// drive it directly with a fake clock.
//
// Lease states:
//   active    granted; seals the inode's layout
//   breaking  BREAK sent; the holder must release before its deadline
//   revoking  (fence) REVOKE sent at the deadline; an ack within the grace
//             period counts as a release
//   revoked   deadline passed: its extents were handed to the QuarantineSink
//             and it no longer holds the breaker back; the record stays
//             until the holder releases, acks or exits
//   orphaned  the holder's connection closed while its process lives (exec,
//             a closed socket): nobody to talk to, so a breaker quarantines
//             it at once instead of waiting
// active, breaking and revoking leases block layout changes.
//
// Exclusive leases (wire::kMapExclusive, docs/design.md "Exclusive
// leases"): granted only while every handle of the file open through the
// mount was opened by the holder's process, and broken (reason
// SEALFS_BREAK_SHARED) when another process opens it; that open waits for
// the break like a layout change. So a direct view of a file and another
// process's page-cache view of it never exist at once. The core keeps the
// table of open handles (file_opened/file_closed) under its mutex, so a
// grant and an open cannot pass each other.
//
// Threads: every method is thread-safe. Continuations never run under the
// engine mutex; they run on the thread whose call made them ready (the
// server's loop thread for release/close/exit/tick) or, when no lease blocks
// the inode, on the caller of may_change_layout. The Notifier is called
// under the engine mutex and must only queue work.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "lease/layout_source.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace sealfs::lease {

struct LeaseOptions {
  uint64_t break_time_ns = 45'000'000'000ull;       // mount option lease_break_time
  uint64_t max_break_time_ns = 600'000'000'000ull;  // hard cap on per-grant overrides
  uint32_t policy = wire::kPolicyFence;             // mount default revoke policy
  uint64_t revoke_grace_ns = 100'000'000ull;        // fence: wait this long for the ack
};

// The engine's outbound actions (queued by the server, recorded by tests).
class Notifier {
 public:
  virtual ~Notifier() = default;
  virtual void send_break(uint64_t conn, uint64_t lease_id, uint32_t reason,
                          uint64_t deadline_ns) = 0;
  virtual void send_revoke(uint64_t conn, uint64_t lease_id) = 0;
  virtual void kill_holder(const HolderId& holder) = 0;
  // A break on `ino` finished and its continuations ran or are about to run
  // on this thread; waiting re-grants may be retried afterwards.
  virtual void break_finished(uint64_t ino) = 0;
  // The earliest deadline may have changed (rearm the timer).
  virtual void deadlines_changed() = 0;
  // A writable mapping lease of `ino` is gone (released, its connection or
  // holder gone), whatever its state: stores through it may have changed
  // the file. Called under the core's lock: note it, act later.
  virtual void writable_lease_ended(uint64_t ino) { (void)ino; }
};

// A handle of a file opened through the mount (FUSE OPEN or CREATE): the
// thread that opened it, which is what the kernel tells the daemon, and when.
struct Opener {
  uint32_t tid = 0;   // in the daemon's pid namespace; 0 = not visible from it
  uint64_t tick = 0;  // clock ticks since boot at the open (util/proc_file.h)
};

// Is thread `tid` one of `holder`'s threads now, and, when `opened_at` is
// given, did it start no later than that tick (so it is the thread that
// opened then, not a later one that got its number)? The server's answers
// from /proc (lease_server.cc); tests give their own.
using ThreadOwner =
    std::function<bool(const HolderId& holder, uint32_t tid, std::optional<uint64_t> opened_at)>;

enum class LeaseState { kActive, kBreaking, kRevoking, kRevoked, kOrphaned };
const char* lease_state_name(LeaseState s);

struct GrantRequest {
  uint64_t conn = 0;
  HolderId holder;
  uint64_t ino = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t prot = 0;
  bool layout_only = false;
  uint64_t break_time_ns = 0;  // 0 = default
  uint32_t policy = wire::kPolicyDefault;
  bool exclusive = false;  // wire::kMapExclusive
  std::vector<MapExtent> extents;
};

struct Grant {
  uint64_t lease_id = 0;
  uint64_t generation = 0;
  uint64_t break_time_ns = 0;
};

struct LeaseInfo {
  uint64_t lease_id = 0;
  uint64_t conn = 0;
  HolderId holder;
  uint64_t ino = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t prot = 0;
  bool layout_only = false;
  bool exclusive = false;
  uint32_t policy = 0;
  LeaseState state = LeaseState::kActive;
  uint64_t break_time_ns = 0;  // sampled at grant; the break's deadline is start + this
  uint64_t deadline_ns = 0;    // while breaking or revoking
  uint32_t break_reason = 0;   // SEALFS_BREAK_* of the break that reached it
  uint64_t generation = 0;
};

// Runs once, when every lease that blocked the change is gone. The Status is
// not ok only when the engine shuts down with the break pending.
using Continuation = std::function<void(Status)>;

class LeaseCore {
 public:
  LeaseCore(const Clock& clock, Notifier& notifier, QuarantineSink* sink, LeaseOptions options);
  ~LeaseCore();
  LeaseCore(const LeaseCore&) = delete;
  LeaseCore& operator=(const LeaseCore&) = delete;

  // Before any exclusive grant (the server sets /proc's; without one no
  // opener counts as the holder's). Not thread-safe.
  void set_thread_owner(ThreadOwner owner) { owner_ = std::move(owner); }

  // Installs a lease. The caller holds the inode's layout lock (taken before
  // it asked the LayoutSource for the extents). kNxio while the inode is
  // breaking; kNoSpace if the sink cannot pin; kBusy for an exclusive
  // request while a handle of the file opened by another process is open.
  Result<Grant> grant(const GrantRequest& request);

  // A handle of `ino` opened through the mount by `who`: the returned
  // number goes back to file_closed when the kernel releases the handle
  // (or the open fails). Call before may_open / open_blocked.
  uint64_t file_opened(uint64_t ino, const Opener& who);
  void file_closed(uint64_t ino, uint64_t handle);
  // Some handle of ino open now was opened by a process other than holder's
  // (what refuses an exclusive grant).
  bool open_elsewhere(uint64_t ino, const HolderId& holder) const;
  // Whether an open of ino by `who` must wait: an exclusive lease of
  // another process blocks it.
  bool open_blocked(uint64_t ino, const Opener& who) const;
  // Breaks the exclusive leases of ino held by processes other than who's
  // (SEALFS_BREAK_SHARED, deadline at most the mount's break time) and runs
  // `then` once none of them blocks: now, on this thread, when none does.
  // Never blocks. A holder that does not let go by the deadline is not
  // revoked (nothing of the file moves, and revoking would kill it or lose
  // its stores): it keeps the lease, and `then` gets kBusy (the open fails
  // with EBUSY). If a layout change joined the break, its revoke rules.
  void may_open(uint64_t ino, const Opener& who, Continuation then);
  bool breaking(uint64_t ino) const;
  // The lease `lease_id` of `conn`, if it has it.
  std::optional<LeaseInfo> lease_of(uint64_t conn, uint64_t lease_id) const;
  // EXTEND: the lease grows to new_length and `added` (its new extents,
  // allocated under the inode's layout lock, which the caller holds) are
  // pinned and join it. kNotFound (no such lease of conn), kNxio (the
  // inode or the lease is breaking or revoked), kNoSpace (cannot pin).
  Status extend(uint64_t conn, uint64_t lease_id, uint64_t new_length,
                const std::vector<MapExtent>& added);
  // True while ino is breaking or has a lease that is not revoked (the meta
  // layer's LayoutGate: such inodes must change their layout through
  // may_change_layout).
  bool sealed(uint64_t ino) const;
  uint64_t generation(uint64_t ino) const;

  // RELEASE (or a REVOKE ack) from `conn`. kNotFound if conn holds no such lease.
  Status release(uint64_t conn, uint64_t lease_id);
  // May a registration attach to this lease? kNxio while breaking or revoked.
  Status check_register(uint64_t conn, uint64_t lease_id) const;
  // The connection is gone; `holder_alive` says whether its process still
  // runs (and may still reach its mappings).
  void connection_closed(uint64_t conn, bool holder_alive);
  // The holder's process has exited: release everything it held and free
  // its quarantine.
  void holder_exited(const HolderId& holder);
  // Whether the engine still cares about `holder` (leases or quarantine);
  // when false the server may stop watching its pidfd.
  bool holder_needed(const HolderId& holder) const;

  // The one gate for layout changes. No blocking lease: runs `then` now, on
  // this thread. Otherwise starts a break (or joins the running one) and
  // queues `then`; never blocks.
  void may_change_layout(uint64_t ino, uint64_t offset, uint64_t length, uint32_t reason,
                         Continuation then);

  // Acts on every deadline that has passed (the server's timerfd).
  void tick();
  std::optional<uint64_t> next_deadline_ns() const;

  // Answers every queued continuation with an error (engine shutdown).
  void shutdown();
  // Unmount: every lease not yet revoked is revoked into quarantine now,
  // without a break (its holder may still reach the blocks). Call after
  // shutdown(), so no breaker's continuation runs.
  void revoke_all();

  std::vector<LeaseInfo> leases() const;
  // ino has a writable mapping lease that is not revoked.
  bool writable_lease_held(uint64_t ino) const;

 private:
  struct Lease;
  struct Inode {
    uint64_t generation = 0;
    std::set<uint64_t> leases;
    bool breaking = false;
    uint32_t reason = 0;
    std::vector<Continuation> waiting;
  };
  struct HolderState {
    uint32_t leases = 0;
    bool quarantined = false;
  };
  using Ready = std::vector<Continuation>;
  struct OpenWaiter {
    std::vector<uint64_t> leases;  // the exclusive leases it waits for
    Continuation then;
  };

  static bool blocks(LeaseState s);
  Inode& inode_locked(uint64_t ino) REQUIRES(mu_);
  void remove_lease_locked(uint64_t lease_id, Ready& ready) REQUIRES(mu_);
  void revoke_to_quarantine_locked(Lease& lease) REQUIRES(mu_);
  void finish_if_done_locked(uint64_t ino, Ready& ready) REQUIRES(mu_);
  // An exclusive mapping lease of another process than who's: what an open
  // by who must wait for.
  bool shuts_out_locked(const LeaseInfo& info, const Opener& who) const REQUIRES(mu_);
  // The first thread of another process than holder's with ino open, if any.
  std::optional<uint32_t> other_opener_locked(uint64_t ino, const HolderId& holder) const
      REQUIRES(mu_);
  void wake_openers_locked(uint64_t ino, Ready& ready) REQUIRES(mu_);
  // The opens of ino that wait for lease_id go to `refused`: its holder
  // kept it past the break's deadline.
  void refuse_openers_locked(uint64_t ino, uint64_t lease_id, Ready& refused) REQUIRES(mu_);
  void forget_inode_if_idle_locked(uint64_t ino) REQUIRES(mu_);
  static void run(Ready& ready, const Status& status);

  const Clock& clock_;
  Notifier& notifier_;
  QuarantineSink* sink_;
  const LeaseOptions options_;

  // The engine mutex: its place in the lock order is in src/meta/locking.h.
  mutable Mutex mu_;
  uint64_t next_lease_id_ GUARDED_BY(mu_) = 1;
  uint64_t generation_counter_ GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Lease> leases_ GUARDED_BY(mu_);
  std::map<uint64_t, Inode> inodes_ GUARDED_BY(mu_);
  std::map<HolderId, HolderState> holders_ GUARDED_BY(mu_);
  uint64_t next_handle_ GUARDED_BY(mu_) = 1;
  // ino -> its open handles (by file_opened's number).
  std::unordered_map<uint64_t, std::map<uint64_t, Opener>> openers_ GUARDED_BY(mu_);
  std::map<uint64_t, std::vector<OpenWaiter>> open_waiters_ GUARDED_BY(mu_);
  ThreadOwner owner_;  // set before serving, read-only after
};

}  // namespace sealfs::lease
