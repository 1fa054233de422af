#include "lease/peer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "wire/fdinfo.h"
#include "util/proc_file.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; older headers lack it
#endif

namespace sealfs::lease {
namespace {

std::vector<uint32_t> supplementary_groups(uint32_t pid) {
  auto text = read_kernel_file("/proc/" + std::to_string(pid) + "/status");
  if (!text.is_ok()) return {};
  return status_ids(*text, "Groups");
}

}  // namespace

Result<PeerInfo> peer_info(int socket_fd) {
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status::from_errno(errno, "SO_PEERCRED");
  }
  PeerInfo peer;
  peer.pid = static_cast<uint32_t>(cred.pid);
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  // SO_PEERPIDFD names the very process that connected; pidfd_open(pid)
  // could name a successor if the peer died and its pid was reused.
  int pidfd = -1;
  len = sizeof(pidfd);
  if (getsockopt(socket_fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0) {
    pidfd = static_cast<int>(syscall(SYS_pidfd_open, cred.pid, 0));
    if (pidfd < 0) return Status::from_errno(errno, "pidfd_open of peer");
  }
  peer.pidfd = pidfd;
  peer.groups = supplementary_groups(peer.pid);
  Result<uint64_t> start = process_start_time(peer.pid);
  if (!start.is_ok() || pidfd_exited(pidfd)) {
    close(pidfd);
    return Status(Code::kNotFound, "peer exited while connecting");
  }
  peer.start_time = *start;
  return peer;
}

Result<FdInfo> fd_info(int fd) {
  wire::FdInfoFields f;
  if (!wire::identify_fd(fd, &f)) return Status::from_errno(errno ? errno : EBADF, "fdinfo");
  if (!f.has_ino || !f.has_flags || !f.has_mnt_id) {
    return Status(Code::kNotSupported, "fdinfo lacks ino/flags/mnt_id");
  }
  return FdInfo{f.ino, f.flags, f.mnt_id};
}

Result<uint64_t> mount_id_of(int fd) {
  ASSIGN_OR_RETURN(FdInfo info, fd_info(fd));
  return info.mnt_id;
}

bool pidfd_exited(int pidfd) {
  struct pollfd p {pidfd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP)) != 0;
}

namespace {

bool proc_is_ours() {
  static const bool ours = [] {
    char link[32] = {};
    const ssize_t n = readlink("/proc/self", link, sizeof(link) - 1);
    return n > 0 && std::string(link, static_cast<size_t>(n)) == std::to_string(getpid());
  }();
  return ours;
}

}  // namespace

bool thread_of_holder(const HolderId& holder, uint32_t tid, std::optional<uint64_t> opened_at) {
  if (tid == 0 || holder.pid == 0 || !proc_is_ours()) return false;
  Result<uint64_t> process_started = process_start_time(holder.pid);
  if (!process_started.is_ok() || *process_started != holder.start_time) return false;
  Result<uint64_t> thread_started = thread_start_time(holder.pid, tid);
  if (!thread_started.is_ok()) return false;
  return !opened_at || *thread_started <= *opened_at;
}

}  // namespace sealfs::lease
