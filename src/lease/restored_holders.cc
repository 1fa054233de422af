#include "lease/restored_holders.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "meta/holder_liveness.h"
#include "util/log.h"

namespace sealfs::lease {

RestoredHolderWatch::RestoredHolderWatch(Filesystem& fs, const std::vector<Holder>& holders)
    : fs_(fs) {
  for (const Holder& h : holders) {
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, h.pid, 0));
    if (pidfd < 0 && errno != ESRCH) {
      // Cannot tell (out of descriptors): the blocks stay quarantined,
      // unwatched, until the next mount looks again.
      log().warn("holder pid {}: pidfd_open: {}; its blocks stay quarantined until the next mount",
                 h.pid, strerror(errno));
      continue;
    }
    // The start time is compared after the pidfd exists, so a pid reused
    // in between cannot be mistaken for the holder.
    if (pidfd < 0 || !holder_process_alive(h.pid, h.start_time)) {
      if (pidfd >= 0) close(pidfd);
      release(h);
      continue;
    }
    log().info("holder pid {} outlived the previous daemon; its blocks stay quarantined", h.pid);
    watched_.push_back({h, pidfd});
  }
  if (watched_.empty()) return;
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) {
    log().error("restored holders: eventfd: {}; released at the next mount", strerror(errno));
    for (auto& w : watched_) close(w.pidfd);
    watched_.clear();
    return;
  }
  thread_ = std::thread([this] { loop(); });
}

RestoredHolderWatch::~RestoredHolderWatch() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    ssize_t ignored = write(stop_fd_, &one, sizeof(one));
    (void)ignored;
    thread_.join();
  }
  for (auto& w : watched_) close(w.pidfd);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void RestoredHolderWatch::release(const Holder& holder) {
  Status s = fs_.release_holder(holder);
  if (!s.is_ok()) {
    log().warn("holder pid {} exited; its quarantine stays until the next mount: {}", holder.pid,
               s.to_string());
  } else {
    log().info("holder pid {} exited; its quarantined blocks are free again", holder.pid);
  }
}

void RestoredHolderWatch::loop() {
  while (!watched_.empty()) {
    std::vector<pollfd> fds;
    fds.push_back({stop_fd_, POLLIN, 0});
    for (auto& w : watched_) fds.push_back({w.pidfd, POLLIN, 0});
    int n = poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      log().error("restored holders: poll: {}", strerror(errno));
      return;
    }
    if (fds[0].revents != 0) return;
    for (size_t i = fds.size() - 1; i >= 1; --i) {
      if (fds[i].revents == 0) continue;
      Watched gone = watched_[i - 1];
      watched_.erase(watched_.begin() + static_cast<long>(i - 1));
      close(gone.pidfd);
      release(gone.holder);
    }
  }
}

}  // namespace sealfs::lease
