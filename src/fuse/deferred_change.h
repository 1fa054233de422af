// Layout changes that meet a sealed inode (a direct-mapping lease on it).
//
// A handler tries its change; the meta layer refuses with kLayoutSealed
// and changes nothing. The handler then hands the request to
// defer_layout_change(): the lease engine breaks the inode's leases and,
// once they are released or revoked, the attempt runs again from the
// engine's thread and replies. No FUSE worker ever waits for a holder. If
// the caller is interrupted (a signal) while it waits, it gets EINTR and
// nothing has changed; the break itself goes on.
#pragma once

#include <functional>

#include "fuse/reply.h"
#include "lease/lease_core.h"

namespace sealfs::fuse {

// Tries the change once. Returns true when it replied (success or error),
// false when the layout was sealed and it did not reply. A retry runs on
// another thread after the handler returned: it must own what it uses.
using LayoutAttempt = std::function<bool(Reply&)>;

void defer_layout_change(Reply& r, Ino ino, uint32_t reason, LayoutAttempt retry);

// How a deferred request waits: it starts whatever break its attempt met
// and calls `then` once that is over. Runs again before each retry.
using BreakWait = std::function<void(lease::Continuation then)>;

// The general form: waits with `wait` (a layout change's waits with
// LeaseEngine::may_change_layout), and calls `abandoned` when the request
// is answered without another attempt (interrupted, or the engine stopped):
// what the first attempt took (a registered handle, an inode's open) is
// given back there.
void defer_change(Reply& r, Ino ino, BreakWait wait, LayoutAttempt retry,
                  std::function<void()> abandoned);

// For handlers: is this failure the sealed-layout refusal?
inline bool sealed(const Status& s) { return is_layout_sealed(s); }

}  // namespace sealfs::fuse
