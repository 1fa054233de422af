// Sending and receiving bytes with descriptors attached (SCM_RIGHTS), shared
// by the daemon's lease server and the client library so both sides parse
// control messages the same way.
#pragma once

#include <sys/socket.h>

#include <cstring>
#include <deque>

namespace sealfs::wire {

// sendmsg of [data, +len) with `fd` attached when fd >= 0. Returns what
// sendmsg returns (EINTR is the caller's to retry).
inline ssize_t send_with_fd(int sock, const void* data, size_t len, int fd, int flags) {
  struct iovec iov {const_cast<void*>(data), len};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  return sendmsg(sock, &msg, flags);
}

// The most descriptors one message can carry (the kernel's SCM_MAX_FD).
inline constexpr size_t kMaxPassedFds = 253;

// recvmsg into [buf, +len); descriptors that arrive are appended to `fds`
// (close-on-exec), every one a message can carry: a descriptor the kernel
// dropped for want of room would be closed inside this recvmsg, on the
// caller's thread, and a peer's descriptor may take forever to close (the
// daemon closes those on a thread that may wait: src/lease/mount_fd_closer.h).
// *truncated is set when the kernel dropped descriptors all the same (the
// receiver is out of descriptors). Returns what recvmsg returns.
inline ssize_t recv_with_fds(int sock, void* buf, size_t len, int flags, std::deque<int>& fds,
                             bool* truncated) {
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
  struct iovec iov {buf, len};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds.push_back(fd);
      }
    }
  }
  *truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  return n;
}

}  // namespace sealfs::wire
