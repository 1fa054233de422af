#include "lease/mount_fd_closer.h"

#include <unistd.h>

#include "util/sync_point.h"

namespace sealfs::lease {

MountFdCloser::MountFdCloser(AtExit at_exit)
    : at_exit_(at_exit), state_(std::make_shared<State>()), thread_([s = state_] { run(s); }) {}

MountFdCloser::~MountFdCloser() {
  State& s = *state_;
  {
    MutexLock lock(s.mu);
    s.stopping = true;
    if (at_exit_ == AtExit::kAbandon) {
      s.abandoned = true;
      // A `then` that started may still use its owner, which goes next.
      while (s.running_then) s.cv.wait(lock);
    }
  }
  s.cv.notify_all();
  if (at_exit_ == AtExit::kAbandon) {
    thread_.detach();  // it holds the state, and ends once the queue is closed
  } else {
    thread_.join();
  }
}

void MountFdCloser::close_then(int fd, std::function<void()> then) {
  {
    MutexLock lock(state_->mu);
    state_->queue.emplace_back(fd, std::move(then));
  }
  state_->cv.notify_all();
}

void MountFdCloser::run(const std::shared_ptr<State>& state) {
  State& s = *state;
  MutexLock lock(s.mu);
  for (;;) {
    // A loop rather than wait(lock, predicate): the analysis sees the
    // predicate lambda as a function of its own, without the lock.
    while (!s.stopping && s.queue.empty()) s.cv.wait(lock);
    if (s.queue.empty()) return;  // stopping, and everything is closed
    auto [fd, then] = std::move(s.queue.front());
    s.queue.pop_front();
    lock.unlock();
    if (fd >= 0) close(fd);
    SEALFS_SYNC_POINT("lease.closer.closed");  // closer thread, no lock held
    lock.lock();
    if (!then || s.abandoned) continue;
    s.running_then = true;
    lock.unlock();
    then();
    then = nullptr;  // what it holds goes before the owner may
    lock.lock();
    s.running_then = false;
    s.cv.notify_all();
  }
}

}  // namespace sealfs::lease
