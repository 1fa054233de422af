#include "lease/mount_fd_closer.h"

#include <unistd.h>

namespace sealfs::lease {

MountFdCloser::MountFdCloser() : thread_([this] { run(); }) {}

MountFdCloser::~MountFdCloser() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void MountFdCloser::close_then(int fd, std::function<void()> then) {
  {
    std::lock_guard lock(mu_);
    queue_.emplace_back(fd, std::move(then));
  }
  cv_.notify_one();
}

void MountFdCloser::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything is closed
    auto [fd, then] = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    if (fd >= 0) close(fd);
    if (then) then();
    lock.lock();
  }
}

}  // namespace sealfs::lease
