// Closes descriptors of files on the daemon's own mount away from the lease
// engine's thread.
//
// A map or inspection request passes the client's descriptor of the file.
// Closing it runs the kernel's flush, which with the writeback cache (and
// for pages dirtied through a mapping of the mount) writes the file's dirty
// pages back through this daemon and waits for them. Those writes may wait
// for the engine (a write that changes a leased file's layout waits for its
// break) or for a lock the engine holds, so the engine never waits for a
// close that may need it: it hands the descriptor here, with what to do
// once it is closed (grant the MAP, or let the held answer go: a client may
// unmount as soon as it has its answer, and a descriptor the daemon still
// held would keep the mount busy). docs/protocol.md says what this means
// for the order of a connection's messages. The one close the engine makes
// itself is a MAP's descriptor of a file that nothing seals (LeaseServer's
// handle_map): what that close makes the daemon do passes the file's gate
// without waiting.
//
// A closer made with AtExit::kAbandon takes what a peer chose and this
// daemon does not serve: descriptors of other filesystems and the peers'
// connections themselves (whose close releases the descriptors still unread
// in them). Such a close may never end (a TCP socket with SO_LINGER whose
// peer reads nothing, a file of a FUSE server that never answers), so its
// destructor does not wait for the closes: it waits only for a `then`
// that is running, drops the others, and leaves the thread to close what is
// queued on its own (docs/protocol.md, "Validation"). A close the kernel
// cannot interrupt (a FUSE server that read the FLUSH) still keeps the
// process from finishing its exit; the daemon lets the region go before
// that (fuse/daemon.cc, RegionClaim::release).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <utility>

#include "util/thread_annotations.h"

namespace sealfs::lease {

class MountFdCloser {
 public:
  enum class AtExit {
    kJoin,     // the destructor closes what is queued, running each `then`, and joins
    kAbandon,  // the destructor leaves the closes to the thread and runs no more `then`
  };
  explicit MountFdCloser(AtExit at_exit = AtExit::kJoin);
  ~MountFdCloser();
  MountFdCloser(const MountFdCloser&) = delete;
  MountFdCloser& operator=(const MountFdCloser&) = delete;

  // Closes fd on the closer's thread, then runs then() there. In the order
  // of the calls. then() must not call back into this closer.
  void close_then(int fd, std::function<void()> then);

 private:
  // Shared with the thread, which an abandoning destructor leaves running.
  struct State {
    Mutex mu;  // leaf
    std::condition_variable_any cv;  // waits on a MutexLock
    std::deque<std::pair<int, std::function<void()>>> queue GUARDED_BY(mu);
    bool stopping GUARDED_BY(mu) = false;
    // The owner is gone: no `then` may run any more.
    bool abandoned GUARDED_BY(mu) = false;
    bool running_then GUARDED_BY(mu) = false;
  };
  static void run(const std::shared_ptr<State>& state);

  const AtExit at_exit_;
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace sealfs::lease
