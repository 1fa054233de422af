#include "lease/lease_core.h"

#include <time.h>

#include <algorithm>
#include <cstdlib>

#include "sealfs/sealfs.h"
#include "util/log.h"
#include "util/sync_point.h"

namespace sealfs::lease {

struct LeaseCore::Lease {
  LeaseInfo info;
  std::vector<MapExtent> extents;
};

uint64_t MonotonicClock::now_ns() const {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

const char* lease_state_name(LeaseState s) {
  switch (s) {
    case LeaseState::kActive: return "active";
    case LeaseState::kBreaking: return "breaking";
    case LeaseState::kRevoking: return "revoking";
    case LeaseState::kRevoked: return "revoked";
    case LeaseState::kOrphaned: return "orphaned";
  }
  return "?";
}

LeaseCore::LeaseCore(const Clock& clock, Notifier& notifier, QuarantineSink* sink,
                     LeaseOptions options)
    : clock_(clock), notifier_(notifier), sink_(sink), options_(options) {
  if (options_.break_time_ns > options_.max_break_time_ns) {
    log().critical("lease: break time {} exceeds the hard cap {}", options_.break_time_ns,
                   options_.max_break_time_ns);
    std::abort();
  }
}

LeaseCore::~LeaseCore() { shutdown(); }

bool LeaseCore::blocks(LeaseState s) {
  return s == LeaseState::kActive || s == LeaseState::kBreaking || s == LeaseState::kRevoking;
}

LeaseCore::Inode& LeaseCore::inode_locked(uint64_t ino) {
  auto [it, inserted] = inodes_.try_emplace(ino);
  // A forgotten inode comes back with a generation newer than any it had, so
  // a holder comparing generations never mistakes a changed layout for its
  // old one.
  if (inserted) it->second.generation = ++generation_counter_;
  return it->second;
}

void LeaseCore::forget_inode_if_idle_locked(uint64_t ino) {
  auto it = inodes_.find(ino);
  if (it != inodes_.end() && it->second.leases.empty() && !it->second.breaking) inodes_.erase(it);
}

Result<Grant> LeaseCore::grant(const GrantRequest& request) {
  MutexLock lock(mu_);
  SEALFS_SYNC_POINT("lease.grant.before_install");  // under the engine mutex
  Inode& inode = inode_locked(request.ino);
  if (inode.breaking) {
    forget_inode_if_idle_locked(request.ino);
    return Status(Code::kNxio, "inode " + std::to_string(request.ino) + " is breaking its leases");
  }
  Lease lease;
  LeaseInfo& info = lease.info;
  info.lease_id = next_lease_id_++;
  info.conn = request.conn;
  info.holder = request.holder;
  info.ino = request.ino;
  info.offset = request.offset;
  info.length = request.length;
  info.prot = request.prot;
  info.layout_only = request.layout_only;
  info.policy = request.policy == wire::kPolicyDefault ? options_.policy : request.policy;
  uint64_t break_time = request.break_time_ns ? request.break_time_ns : options_.break_time_ns;
  info.generation = inode.generation;
  lease.extents = request.extents;
  info.break_time_ns = std::min(break_time, options_.max_break_time_ns);
  info.exclusive = request.exclusive && !request.layout_only;
  if (info.exclusive) {
    if (std::optional<uint32_t> tid = other_opener_locked(request.ino, request.holder)) {
      forget_inode_if_idle_locked(request.ino);
      return Status(Code::kBusy, "inode " + std::to_string(request.ino) +
                                     " is open in another process (thread " +
                                     std::to_string(*tid) + ")");
    }
  }
  if (sink_ != nullptr && !request.layout_only) {
    Status pinned = sink_->pin(info.holder, info.lease_id, info.ino, lease.extents);
    if (!pinned.is_ok()) {
      forget_inode_if_idle_locked(request.ino);
      return pinned.with_context("pinning lease extents");
    }
  }
  Grant grant{info.lease_id, info.generation, info.break_time_ns};
  inode.leases.insert(info.lease_id);
  holders_[info.holder].leases++;
  leases_.emplace(info.lease_id, std::move(lease));
  return grant;
}

std::optional<LeaseInfo> LeaseCore::lease_of(uint64_t conn, uint64_t lease_id) const {
  MutexLock lock(mu_);
  auto it = leases_.find(lease_id);
  if (it == leases_.end() || it->second.info.conn != conn) return std::nullopt;
  return it->second.info;
}

Status LeaseCore::extend(uint64_t conn, uint64_t lease_id, uint64_t new_length,
                         const std::vector<MapExtent>& added) {
  MutexLock lock(mu_);
  auto it = leases_.find(lease_id);
  if (it == leases_.end() || it->second.info.conn != conn) {
    return Status(Code::kNotFound, "no lease " + std::to_string(lease_id));
  }
  Lease& lease = it->second;
  auto inode = inodes_.find(lease.info.ino);
  if (lease.info.state != LeaseState::kActive || inode == inodes_.end() || inode->second.breaking) {
    return Status(Code::kNxio, "lease " + std::to_string(lease_id) + " is breaking");
  }
  if (sink_ != nullptr && !lease.info.layout_only) {
    RETURN_IF_ERROR(sink_->pin(lease.info.holder, lease_id, lease.info.ino, added)
                        .with_context("pinning extended lease extents"));
  }
  lease.extents.insert(lease.extents.end(), added.begin(), added.end());
  lease.info.length = new_length;
  return Status::ok();
}

bool LeaseCore::breaking(uint64_t ino) const {
  MutexLock lock(mu_);
  auto it = inodes_.find(ino);
  return it != inodes_.end() && it->second.breaking;
}

bool LeaseCore::sealed(uint64_t ino) const {
  MutexLock lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return false;
  if (it->second.breaking) return true;
  // A revoked lease no longer seals: its blocks are quarantined when the
  // file frees them (QuarantineSink::quarantine ran at revocation), so the
  // breaker's re-run must pass the gate.
  for (uint64_t id : it->second.leases) {
    if (leases_.at(id).info.state != LeaseState::kRevoked) return true;
  }
  return false;
}

uint64_t LeaseCore::generation(uint64_t ino) const {
  MutexLock lock(mu_);
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? generation_counter_ : it->second.generation;
}

void LeaseCore::remove_lease_locked(uint64_t lease_id, Ready& ready) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  const LeaseInfo info = it->second.info;
  if (sink_ != nullptr && !info.layout_only) sink_->unpin(info.holder, info.lease_id);
  if (!info.layout_only && (info.prot & wire::kProtWrite) != 0) notifier_.writable_lease_ended(info.ino);
  leases_.erase(it);
  auto holder = holders_.find(info.holder);
  if (holder != holders_.end()) {
    holder->second.leases--;
    if (holder->second.leases == 0 && !holder->second.quarantined) holders_.erase(holder);
  }
  auto inode = inodes_.find(info.ino);
  if (inode != inodes_.end()) {
    inode->second.leases.erase(lease_id);
    finish_if_done_locked(info.ino, ready);
    forget_inode_if_idle_locked(info.ino);
  }
  notifier_.deadlines_changed();
}

void LeaseCore::finish_if_done_locked(uint64_t ino, Ready& ready) {
  wake_openers_locked(ino, ready);
  auto it = inodes_.find(ino);
  if (it == inodes_.end() || !it->second.breaking) return;
  Inode& inode = it->second;
  for (uint64_t id : inode.leases) {
    if (blocks(leases_.at(id).info.state)) return;
  }
  inode.breaking = false;
  inode.generation = ++generation_counter_;
  for (auto& c : inode.waiting) ready.push_back(std::move(c));
  inode.waiting.clear();
  notifier_.break_finished(ino);
}

void LeaseCore::run(Ready& ready, const Status& status) {
  for (auto& c : ready) c(status);
  ready.clear();
}

Status LeaseCore::release(uint64_t conn, uint64_t lease_id) {
  Ready ready;
  {
    MutexLock lock(mu_);
    auto it = leases_.find(lease_id);
    if (it == leases_.end() || it->second.info.conn != conn) {
      return Status(Code::kNotFound, "no lease " + std::to_string(lease_id) + " on this connection");
    }
    remove_lease_locked(lease_id, ready);
  }
  run(ready, Status::ok());
  return Status::ok();
}

Status LeaseCore::check_register(uint64_t conn, uint64_t lease_id) const {
  MutexLock lock(mu_);
  auto it = leases_.find(lease_id);
  if (it == leases_.end() || it->second.info.conn != conn || it->second.info.layout_only) {
    return Status(Code::kInvalid, "no mapping lease " + std::to_string(lease_id));
  }
  if (it->second.info.state != LeaseState::kActive) {
    return Status(Code::kNxio, "lease " + std::to_string(lease_id) + " is breaking");
  }
  return Status::ok();
}

void LeaseCore::revoke_to_quarantine_locked(Lease& lease) {
  LeaseInfo& info = lease.info;
  if (!info.layout_only && sink_ != nullptr) {
    Status s = sink_->quarantine(info.holder, info.ino, lease.extents);
    if (!s.is_ok()) {
      // The blocks cannot be fenced off from reuse, so the holder must go
      // before the breaker may proceed: stay blocking until it exits.
      log().error("lease {}: quarantine failed ({}); killing holder pid {}", info.lease_id,
                  s.to_string(), info.holder.pid);
      notifier_.kill_holder(info.holder);
      info.state = LeaseState::kRevoking;
      info.deadline_ns = UINT64_MAX;
      return;
    }
    holders_[info.holder].quarantined = true;
  }
  info.state = LeaseState::kRevoked;
  info.deadline_ns = 0;
}

void LeaseCore::connection_closed(uint64_t conn, bool holder_alive) {
  Ready ready;
  {
    MutexLock lock(mu_);
    std::vector<uint64_t> ids;
    for (auto& [id, lease] : leases_) {
      if (lease.info.conn == conn) ids.push_back(id);
    }
    for (uint64_t id : ids) {
      Lease& lease = leases_.at(id);
      if (!holder_alive || lease.info.layout_only || lease.info.state == LeaseState::kRevoked) {
        // Dead holders reach nothing; layout leases map nothing; revoked
        // leases are already quarantined (the quarantine outlives this).
        remove_lease_locked(id, ready);
        continue;
      }
      if (lease.info.state == LeaseState::kActive) {
        lease.info.state = LeaseState::kOrphaned;
      } else {
        // Nobody left to fence: quarantine now; the record stays for holder_exited.
        revoke_to_quarantine_locked(lease);
      }
      finish_if_done_locked(lease.info.ino, ready);
    }
    notifier_.deadlines_changed();
  }
  run(ready, Status::ok());
}

void LeaseCore::holder_exited(const HolderId& holder) {
  Ready ready;
  {
    MutexLock lock(mu_);
    std::vector<uint64_t> ids;
    for (auto& [id, lease] : leases_) {
      if (lease.info.holder == holder) ids.push_back(id);
    }
    for (uint64_t id : ids) remove_lease_locked(id, ready);
    auto it = holders_.find(holder);
    if (it != holders_.end()) {
      if (it->second.quarantined && sink_ != nullptr) sink_->release_holder(holder);
      holders_.erase(it);
    }
  }
  run(ready, Status::ok());
}

bool LeaseCore::holder_needed(const HolderId& holder) const {
  MutexLock lock(mu_);
  return holders_.count(holder) != 0;
}

void LeaseCore::may_change_layout(uint64_t ino, uint64_t offset, uint64_t length, uint32_t reason,
                                  Continuation then) {
  (void)offset;
  (void)length;  // leases cover their range, but any change to a leased inode breaks all
  Ready ready;
  bool run_now = false;
  {
    MutexLock lock(mu_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) {
      run_now = true;
    } else {
      Inode& inode = it->second;
      const uint64_t now = clock_.now_ns();
      bool any_blocking = false;
      for (uint64_t id : inode.leases) {
        Lease& lease = leases_.at(id);
        LeaseInfo& info = lease.info;
        switch (info.state) {
          case LeaseState::kActive:
            info.state = LeaseState::kBreaking;
            info.break_reason = reason;
            info.deadline_ns = now + info.break_time_ns;
            notifier_.send_break(info.conn, info.lease_id, reason, info.deadline_ns);
            any_blocking = true;
            break;
          case LeaseState::kBreaking:
          case LeaseState::kRevoking:
            any_blocking = true;  // joins the break already running
            break;
          case LeaseState::kOrphaned:
            revoke_to_quarantine_locked(lease);
            any_blocking = any_blocking || blocks(info.state);
            break;
          case LeaseState::kRevoked:
            break;
        }
      }
      if (any_blocking) {
        if (!inode.breaking) inode.reason = reason;
        inode.breaking = true;
        inode.waiting.push_back(std::move(then));
        notifier_.deadlines_changed();
      } else {
        run_now = true;
        inode.generation = ++generation_counter_;
        forget_inode_if_idle_locked(ino);
      }
    }
  }
  if (run_now) then(Status::ok());
  run(ready, Status::ok());
}

std::optional<uint32_t> LeaseCore::other_opener_locked(uint64_t ino,
                                                       const HolderId& holder) const {
  auto open = openers_.find(ino);
  if (open == openers_.end()) return std::nullopt;
  // Each thread once, with its first open: it must have started by then.
  std::map<uint32_t, uint64_t> first_open;
  for (const auto& [handle, who] : open->second) {
    auto [at, fresh] = first_open.try_emplace(who.tid, who.tick);
    if (!fresh) at->second = std::min(at->second, who.tick);
  }
  for (const auto& [tid, tick] : first_open) {
    if (tid == 0 || !owner_ || !owner_(holder, tid, tick)) return tid;
  }
  return std::nullopt;
}

bool LeaseCore::open_elsewhere(uint64_t ino, const HolderId& holder) const {
  MutexLock lock(mu_);
  return other_opener_locked(ino, holder).has_value();
}

uint64_t LeaseCore::file_opened(uint64_t ino, const Opener& who) {
  MutexLock lock(mu_);
  const uint64_t handle = next_handle_++;
  openers_[ino].emplace(handle, who);
  return handle;
}

void LeaseCore::file_closed(uint64_t ino, uint64_t handle) {
  MutexLock lock(mu_);
  auto it = openers_.find(ino);
  if (it == openers_.end()) return;
  it->second.erase(handle);
  if (it->second.empty()) openers_.erase(it);
}

bool LeaseCore::shuts_out_locked(const LeaseInfo& info, const Opener& who) const {
  if (!info.exclusive) return false;
  if (!blocks(info.state) && info.state != LeaseState::kOrphaned) return false;
  // The opener is alive (blocked in its open), so its number is its own.
  return who.tid == 0 || !owner_ || !owner_(info.holder, who.tid, std::nullopt);
}

bool LeaseCore::open_blocked(uint64_t ino, const Opener& who) const {
  MutexLock lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return false;
  for (uint64_t id : it->second.leases) {
    if (shuts_out_locked(leases_.at(id).info, who)) return true;
  }
  return false;
}

void LeaseCore::may_open(uint64_t ino, const Opener& who, Continuation then) {
  bool run_now = true;
  {
    MutexLock lock(mu_);
    auto it = inodes_.find(ino);
    if (it != inodes_.end()) {
      const uint64_t now = clock_.now_ns();
      OpenWaiter waiter;
      for (uint64_t id : it->second.leases) {
        Lease& lease = leases_.at(id);
        LeaseInfo& info = lease.info;
        if (!shuts_out_locked(info, who)) continue;
        if (info.state == LeaseState::kActive) {
          info.state = LeaseState::kBreaking;
          info.break_reason = SEALFS_BREAK_SHARED;
          // No longer than the mount's break time, whatever the holder
          // asked for: other processes' opens wait for it (a holder with a
          // 600 s break time would hold every open of the file that long).
          info.deadline_ns = now + std::min(info.break_time_ns, options_.break_time_ns);
          notifier_.send_break(info.conn, info.lease_id, SEALFS_BREAK_SHARED, info.deadline_ns);
        } else if (info.state == LeaseState::kOrphaned) {
          // Nobody to tell: its blocks go to quarantine, as for a layout change.
          revoke_to_quarantine_locked(lease);
        }
        if (blocks(info.state)) waiter.leases.push_back(id);
      }
      if (!waiter.leases.empty()) {
        run_now = false;
        waiter.then = std::move(then);
        open_waiters_[ino].push_back(std::move(waiter));
        notifier_.deadlines_changed();
      }
    }
  }
  if (run_now) then(Status::ok());
}

void LeaseCore::wake_openers_locked(uint64_t ino, Ready& ready) {
  auto it = open_waiters_.find(ino);
  if (it == open_waiters_.end()) return;
  auto& waiters = it->second;
  for (auto w = waiters.begin(); w != waiters.end();) {
    bool done = true;
    for (uint64_t id : w->leases) {
      auto lease = leases_.find(id);
      if (lease != leases_.end() && blocks(lease->second.info.state)) done = false;
    }
    if (!done) {
      ++w;
      continue;
    }
    ready.push_back(std::move(w->then));
    w = waiters.erase(w);
  }
  if (waiters.empty()) open_waiters_.erase(it);
}

void LeaseCore::tick() {
  Ready ready, refused;
  {
    MutexLock lock(mu_);
    const uint64_t now = clock_.now_ns();
    std::set<uint64_t> touched;
    std::vector<uint64_t> kept;  // exclusive leases whose break for an open ran out
    for (auto& [id, lease] : leases_) {
      LeaseInfo& info = lease.info;
      if (!blocks(info.state) || info.deadline_ns > now) continue;
      auto inode = inodes_.find(info.ino);
      const bool layout_waits = inode != inodes_.end() && inode->second.breaking;
      if (info.state == LeaseState::kBreaking && info.break_reason == SEALFS_BREAK_SHARED &&
          !layout_waits) {
        // Broken for another process's open only (no layout change joined):
        // no block moves, so revoking buys nothing, and it would cost the
        // holder its life (fence: SIGBUS when a stopped holder resumes) or
        // its stores (quarantine leaves its mapping live beside the
        // opener's page cache). The holder keeps the lease; the open is
        // refused (EBUSY) instead, and the next open breaks it again.
        log().warn("lease: holder pid {} did not let go of its exclusive mapping of inode {} "
                   "in time; the open that asked for it is refused",
                   info.holder.pid, info.ino);
        info.state = LeaseState::kActive;
        info.deadline_ns = 0;
        info.break_reason = 0;
        kept.push_back(id);
        continue;
      }
      if (info.state == LeaseState::kBreaking) {
        SEALFS_SYNC_POINT("lease.break.before_revoke");
        switch (info.policy) {
          case wire::kPolicyKill:
            notifier_.kill_holder(info.holder);
            revoke_to_quarantine_locked(lease);
            break;
          case wire::kPolicyQuarantine:
            log().warn("lease: quarantining the blocks of holder pid {} (lease {}, inode {}) at "
                       "its break deadline", info.holder.pid, info.lease_id, info.ino);
            revoke_to_quarantine_locked(lease);
            break;
          default:  // fence
            // At warning level, as a kill is (lease_server.cc): the holder
            // will fault on its next access, and the admin should know why.
            log().warn("lease: fencing holder pid {} (lease {}, inode {}) at its break deadline",
                       info.holder.pid, info.lease_id, info.ino);
            notifier_.send_revoke(info.conn, info.lease_id);
            info.state = LeaseState::kRevoking;
            info.deadline_ns = now + options_.revoke_grace_ns;
            if (options_.revoke_grace_ns == 0) revoke_to_quarantine_locked(lease);
            break;
        }
        touched.insert(info.ino);
      } else if (info.state == LeaseState::kRevoking) {
        revoke_to_quarantine_locked(lease);
        touched.insert(info.ino);
      }
    }
    for (uint64_t ino : touched) finish_if_done_locked(ino, ready);
    for (uint64_t id : kept) refuse_openers_locked(leases_.at(id).info.ino, id, refused);
    notifier_.deadlines_changed();
  }
  run(ready, Status::ok());
  run(refused, Status(Code::kBusy, "the file's exclusive holder did not let go in time"));
}

void LeaseCore::refuse_openers_locked(uint64_t ino, uint64_t lease_id, Ready& refused) {
  auto it = open_waiters_.find(ino);
  if (it == open_waiters_.end()) return;
  auto& waiters = it->second;
  for (auto w = waiters.begin(); w != waiters.end();) {
    if (std::find(w->leases.begin(), w->leases.end(), lease_id) == w->leases.end()) {
      ++w;
      continue;
    }
    refused.push_back(std::move(w->then));
    w = waiters.erase(w);
  }
  if (waiters.empty()) open_waiters_.erase(it);
}

std::optional<uint64_t> LeaseCore::next_deadline_ns() const {
  MutexLock lock(mu_);
  std::optional<uint64_t> next;
  for (auto& [id, lease] : leases_) {
    const LeaseInfo& info = lease.info;
    if ((info.state == LeaseState::kBreaking || info.state == LeaseState::kRevoking) &&
        info.deadline_ns != UINT64_MAX) {
      if (!next || info.deadline_ns < *next) next = info.deadline_ns;
    }
  }
  return next;
}

void LeaseCore::shutdown() {
  Ready ready;
  {
    MutexLock lock(mu_);
    for (auto& [ino, inode] : inodes_) {
      for (auto& c : inode.waiting) ready.push_back(std::move(c));
      inode.waiting.clear();
      inode.breaking = false;
    }
    for (auto& [ino, waiters] : open_waiters_) {
      for (auto& w : waiters) ready.push_back(std::move(w.then));
    }
    open_waiters_.clear();
  }
  run(ready, Status(Code::kIoError, "lease engine shut down with a break pending"));
}

void LeaseCore::revoke_all() {
  Ready ready;
  {
    MutexLock lock(mu_);
    std::set<uint64_t> touched;
    for (auto& [id, lease] : leases_) {
      if (lease.info.state == LeaseState::kRevoked) continue;
      revoke_to_quarantine_locked(lease);
      touched.insert(lease.info.ino);
    }
    for (uint64_t ino : touched) finish_if_done_locked(ino, ready);
    notifier_.deadlines_changed();
  }
  run(ready, Status(Code::kIoError, "lease engine shut down"));
}

std::vector<LeaseInfo> LeaseCore::leases() const {
  MutexLock lock(mu_);
  std::vector<LeaseInfo> out;
  for (auto& [id, lease] : leases_) out.push_back(lease.info);
  return out;
}

namespace {
bool writable_mapping(const LeaseInfo& info) {
  return !info.layout_only && (info.prot & wire::kProtWrite) != 0 &&
         info.state != LeaseState::kRevoked;
}
}  // namespace

bool LeaseCore::writable_lease_held(uint64_t ino) const {
  MutexLock lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return false;
  for (uint64_t id : it->second.leases) {
    if (writable_mapping(leases_.at(id).info)) return true;
  }
  return false;
}

}  // namespace sealfs::lease
