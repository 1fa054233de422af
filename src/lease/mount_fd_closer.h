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
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>
#include <utility>

#include "util/thread_annotations.h"

namespace sealfs::lease {

class MountFdCloser {
 public:
  MountFdCloser();
  // Closes what is queued, running each `then`, and joins.
  ~MountFdCloser();
  MountFdCloser(const MountFdCloser&) = delete;
  MountFdCloser& operator=(const MountFdCloser&) = delete;

  // Closes fd on the closer's thread, then runs then() there. In the order
  // of the calls. then() must not call back into this closer.
  void close_then(int fd, std::function<void()> then);

 private:
  void run();

  Mutex mu_;  // leaf
  std::condition_variable_any cv_;  // waits on a MutexLock
  std::deque<std::pair<int, std::function<void()>>> queue_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace sealfs::lease
