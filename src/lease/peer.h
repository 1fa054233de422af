// What the engine learns about a peer and a descriptor it received, from
// SO_PEERCRED / SO_PEERPIDFD and /proc, without a FUSE round trip to itself
// (an fstat on a descriptor of our own mount would send GETATTR back into
// the daemon).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lease/layout_source.h"
#include "util/status.h"

namespace sealfs::lease {

struct PeerInfo {
  uint32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary, from /proc/PID/status
  uint64_t start_time = 0;
  int pidfd = -1;                // owned by the caller after peer_info()
};

// Credentials of the process at the other end of a connected Unix socket.
Result<PeerInfo> peer_info(int socket_fd);

struct FdInfo {
  uint64_t ino = 0;
  uint32_t flags = 0;   // open flags (O_ACCMODE, O_PATH, ...)
  uint64_t mnt_id = 0;
};
// Inode, open flags and mount of a descriptor this process holds
// (wire::identify_fd: statx, or /proc/self/fdinfo/FD on old kernels).
Result<FdInfo> fd_info(int fd);
// The mount id of any open descriptor (used to learn our own mount's id).
Result<uint64_t> mount_id_of(int fd);

// True if the process behind pidfd has exited.
bool pidfd_exited(int pidfd);

// The engine's ThreadOwner (lease_core.h), from /proc: thread `tid` is one
// of `holder`'s threads (the holder's pid and start time still name one
// process), started no later than `opened_at` when given. False for tid 0,
// and always when /proc is not of the daemon's pid namespace, where its
// numbers would name other processes.
bool thread_of_holder(const HolderId& holder, uint32_t tid, std::optional<uint64_t> opened_at);

}  // namespace sealfs::lease
