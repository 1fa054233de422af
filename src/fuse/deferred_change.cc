#include "fuse/deferred_change.h"

#include <signal.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "util/proc_file.h"
#include "util/sync_point.h"

namespace sealfs::fuse {
namespace {

struct DeferredChange {
  fuse_req_t req;
  const char* op;
  Ino ino;
  BreakWait wait;
  LayoutAttempt attempt;
  std::function<void()> abandoned;
  // Whoever sets `claimed` answers the request: the interrupt callback
  // (EINTR) or the continuation (the change). Reset between rounds.
  std::mutex mu;
  bool claimed = false;
};

bool claim(DeferredChange& d) {
  std::lock_guard lock(d.mu);
  if (d.claimed) return false;
  d.claimed = true;
  return true;
}

// Does the caller (thread `tid`) have a signal pending that it will act on:
// a caught or fatal one, not a stop or continue? The kernel sends
// FUSE_INTERRUPT for any signal, SIGSTOP included; a kernel filesystem would
// restart the call after SIGCONT, so a stop must not turn into EINTR.
bool interrupting_signal_pending(pid_t tid) {
  Result<std::string> status = read_kernel_file("/proc/" + std::to_string(tid) + "/status");
  if (!status.is_ok()) return true;  // gone or unknown: let the caller go
  const uint64_t thread = status_mask(*status, "SigPnd").value_or(0);
  const uint64_t shared = status_mask(*status, "ShdPnd").value_or(0);
  const uint64_t blocked = status_mask(*status, "SigBlk").value_or(0);
  auto bit = [](int sig) { return uint64_t{1} << (sig - 1); };
  const uint64_t job_control = bit(SIGSTOP) | bit(SIGTSTP) | bit(SIGTTIN) | bit(SIGTTOU) | bit(SIGCONT);
  return ((thread | shared) & ~blocked & ~job_control) != 0;
}

// libfuse calls this with the request's lock held; the request stays valid
// until it returns even if the other side replies meanwhile.
void on_interrupt(fuse_req_t req, void* data) {
  auto* d = static_cast<DeferredChange*>(data);
  if (!interrupting_signal_pending(fuse_req_ctx(req)->pid)) {
    log().debug("fuse {} (inode {}): stopped while leases break; still waiting", d->op, d->ino);
    return;
  }
  if (!claim(*d)) return;
  log().debug("fuse {} (inode {}): interrupted while leases break", d->op, d->ino);
  if (d->abandoned) d->abandoned();
  fuse_reply_err(req, EINTR);
}

void wait_for_break(const std::shared_ptr<DeferredChange>& d);

void resume(const std::shared_ptr<DeferredChange>& d, const Status& engine) {
  if (!claim(*d)) return;  // answered EINTR: the request is gone
  // Waits until a concurrent on_interrupt has returned; none comes after.
  fuse_req_interrupt_func(d->req, nullptr, nullptr);
  bool again = false;
  handle(d->req, d->op, d->ino, [&](Reply& r) {
    if (!engine.is_ok()) {
      if (d->abandoned) d->abandoned();
      return r.error(engine);
    }
    if (d->attempt(r)) return;
    // A new lease was granted between the break and this retry.
    r.handed_on();
    again = true;
  });
  if (!again) return;
  {
    std::lock_guard lock(d->mu);
    d->claimed = false;
  }
  wait_for_break(d);
}

void wait_for_break(const std::shared_ptr<DeferredChange>& d) {
  SEALFS_SYNC_POINT("fuse.layout.deferred");
  // Replies EINTR at once if the request was interrupted already.
  fuse_req_interrupt_func(d->req, on_interrupt, d.get());
  d->wait([d](Status s) { resume(d, s); });
}

}  // namespace

void defer_layout_change(Reply& r, Ino ino, uint32_t reason, LayoutAttempt retry) {
  log().debug("fuse {} (inode {}): layout sealed, breaking its leases", r.op(), ino);
  lease::LeaseEngine* leases = r.ctx().leases;
  defer_change(
      r, ino,
      [leases, ino, reason](lease::Continuation then) {
        leases->may_change_layout(ino, reason, std::move(then));
      },
      std::move(retry), {});
}

void defer_change(Reply& r, Ino ino, BreakWait wait, LayoutAttempt retry,
                  std::function<void()> abandoned) {
  if (r.ctx().leases == nullptr) {
    if (abandoned) abandoned();
    return r.error(EBUSY);
  }
  auto d = std::make_shared<DeferredChange>();
  d->req = r.req();
  d->op = r.op();
  d->ino = ino;
  d->wait = std::move(wait);
  d->attempt = std::move(retry);
  d->abandoned = std::move(abandoned);
  r.handed_on();
  wait_for_break(d);
}

}  // namespace sealfs::fuse
