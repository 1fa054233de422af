#include "lease/mount_fd_closer.h"

#include <unistd.h>

#include "util/sync_point.h"

namespace sealfs::lease {

MountFdCloser::MountFdCloser() : thread_([this] { run(); }) {}

MountFdCloser::~MountFdCloser() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void MountFdCloser::close_then(int fd, std::function<void()> then) {
  {
    MutexLock lock(mu_);
    queue_.emplace_back(fd, std::move(then));
  }
  cv_.notify_one();
}

void MountFdCloser::run() {
  MutexLock lock(mu_);
  for (;;) {
    // A loop rather than wait(lock, predicate): the analysis sees the
    // predicate lambda as a function of its own, without the lock.
    while (!stopping_ && queue_.empty()) cv_.wait(lock);
    if (queue_.empty()) return;  // stopping, and everything is closed
    auto [fd, then] = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    if (fd >= 0) close(fd);
    SEALFS_SYNC_POINT("lease.closer.closed");  // closer thread, no lock held
    if (then) then();
    lock.lock();
  }
}

}  // namespace sealfs::lease
