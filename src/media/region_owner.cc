#include "media/region_owner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "util/mountinfo.h"
#include "util/proc_file.h"

namespace sealfs {

namespace {

constexpr off_t kOwnershipByte = 0;
// Identity bytes lie far beyond any region (locks past EOF are allowed and
// touch no data). kPidSpan is PID_MAX_LIMIT on 64-bit Linux, so every pid of
// the holder's pid namespace fits.
constexpr off_t kIdentityBase = off_t{1} << 56;
constexpr off_t kPidSpan = off_t{1} << 22;
constexpr auto kPollInterval = std::chrono::milliseconds(20);
constexpr auto kAnonymousLockPatience = std::chrono::seconds(2);

off_t identity_offset(OwnerRole role, pid_t pid) {
  return kIdentityBase + static_cast<off_t>(role) * kPidSpan + pid;
}

bool writes(OwnerRole role) {
  return role == OwnerRole::kDaemon || role == OwnerRole::kDaemonClosing ||
         role == OwnerRole::kMkfs || role == OwnerRole::kFsckRepair;
}

int lock_byte(int fd, short type, off_t offset) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = offset;
  fl.l_len = 1;
  return fcntl(fd, F_OFD_SETLK, &fl);
}

std::string read_command(pid_t pid) {
  auto cmdline = read_kernel_file("/proc/" + std::to_string(pid) + "/cmdline");
  std::string raw = cmdline.is_ok() ? std::move(*cmdline) : std::string();
  while (!raw.empty() && raw.back() == '\0') raw.pop_back();
  for (char& c : raw) {
    if (c == '\0') c = ' ';
  }
  if (raw.empty()) {
    // cmdline is empty for a zombie or hidden by hidepid; comm may not be.
    auto comm = process_command_name(static_cast<uint32_t>(pid));
    if (comm.is_ok()) raw = std::move(*comm);
  }
  constexpr size_t kMax = 200;
  if (raw.size() > kMax) raw = raw.substr(0, kMax) + "...";
  return raw;
}

bool is_daemon(OwnerRole role) {
  return role == OwnerRole::kDaemon || role == OwnerRole::kDaemonReadOnly;
}

}  // namespace

const char* owner_role_name(OwnerRole role) {
  switch (role) {
    case OwnerRole::kDaemon: return "sealfs daemon, mounted read-write";
    case OwnerRole::kDaemonReadOnly: return "sealfs daemon, mounted read-only";
    case OwnerRole::kDaemonClosing: return "sealfs daemon, finishing its unmount";
    case OwnerRole::kMkfs: return "mkfs.sealfs";
    case OwnerRole::kFsckRepair: return "fsck.sealfs repairing";
    case OwnerRole::kFsckCheck: return "fsck.sealfs checking";
    case OwnerRole::kLayoutRead: return "sealfs-layout reading";
    case OwnerRole::kCount: break;
  }
  return "another program's lock, not a sealfs tool";
}

std::string RegionHolder::describe() const {
  if (pid == 0) return "another program's lock (not a sealfs tool; it does not say which)";
  std::string text = "pid " + std::to_string(pid) + " (" + owner_role_name(role);
  if (!mount_point.empty()) text += " on " + mount_point;
  if (!command.empty()) text += ": " + command;
  return text + ")";
}

std::string RegionClaim::find_mounted_region(const std::string& mountpoint) {
  std::error_code ec;
  const std::string want = std::filesystem::canonical(mountpoint, ec).string();
  if (ec) return "";
  auto mounts = read_mountinfo();
  if (!mounts.is_ok()) return "";
  std::string found;
  for (const MountInfoEntry& m : *mounts) {
    // The last mount on a point is the one seen there.
    if (m.mount_point != want) continue;
    found = m.fstype == "fuse.sealfs" ? m.source : "";
  }
  return found;
}

std::string RegionClaim::find_daemon_mount(pid_t pid, int fd) {
  struct stat region_st {};
  if (fstat(fd, &region_st) != 0) return "";
  auto mounts = read_mountinfo(pid);
  if (!mounts.is_ok()) return "";
  for (const MountInfoEntry& m : *mounts) {
    if (m.fstype != "fuse.sealfs") continue;
    struct stat source_st {};
    if (::stat(m.source.c_str(), &source_st) != 0) continue;
    if (source_st.st_dev == region_st.st_dev && source_st.st_ino == region_st.st_ino &&
        source_st.st_rdev == region_st.st_rdev) {
      return m.mount_point;
    }
  }
  return "";
}

ClaimRequest tool_claim_request(OwnerRole role, const std::string& program,
                                const std::string& target) {
  ClaimRequest request;
  request.role = role;
  request.wait_for_closing = std::chrono::seconds(30);
  request.wait_for_serving = std::chrono::seconds(5);
  request.on_wait = [program, target](const RegionHolder& holder) {
    std::fprintf(stderr, "%s: %s is in use by %s; waiting for it to let go\n", program.c_str(),
                 target.c_str(), holder.describe().c_str());
  };
  return request;
}

std::optional<RegionHolder> RegionClaim::find_holder(int fd) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = kIdentityBase;
  fl.l_len = static_cast<off_t>(OwnerRole::kCount) * kPidSpan;
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0 || fl.l_type == F_UNLCK) return std::nullopt;
  const off_t rel = fl.l_start - kIdentityBase;
  RegionHolder holder;
  if (rel < 0 || rel >= static_cast<off_t>(OwnerRole::kCount) * kPidSpan || fl.l_len != 1) {
    // Not one of ours: another program's lock covering the identity bytes
    // (a whole-file POSIX lock, say). A POSIX lock reports its pid.
    holder.role = OwnerRole::kCount;
    holder.pid = fl.l_pid > 0 ? fl.l_pid : 0;
    if (holder.pid > 0) holder.command = read_command(holder.pid);
    return holder;
  }
  holder.role = static_cast<OwnerRole>(rel / kPidSpan);
  holder.pid = static_cast<pid_t>(rel % kPidSpan);
  holder.command = read_command(holder.pid);
  if (is_daemon(holder.role)) holder.mount_point = find_daemon_mount(holder.pid, fd);
  return holder;
}

Result<std::unique_ptr<RegionClaim>> RegionClaim::acquire(int region_fd, const std::string& path,
                                                          const ClaimRequest& request) {
  const bool exclusive = writes(request.role);
  // A new open file description of the same inode (see the header).
  std::string self = "/proc/self/fd/" + std::to_string(region_fd);
  int fd = ::open(self.c_str(), (exclusive ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::from_errno(errno, "reopen " + path + " to claim it");
  std::unique_ptr<RegionClaim> claim(new RegionClaim(fd, request.role));

  const auto start = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> anonymous_since;
  bool announced = false;
  for (;;) {
    if (lock_byte(fd, exclusive ? F_WRLCK : F_RDLCK, kOwnershipByte) == 0) break;
    int err = errno;
    if (err != EAGAIN && err != EACCES) {
      return Status::from_errno(err, path + ": cannot lock the region to claim it (the "
                                           "filesystem it is on must support OFD locks)");
    }
    std::optional<RegionHolder> holder = find_holder(fd);
    if (!holder) {
      // A sealfs owner between its two locks (starting or exiting) shows no
      // identity for microseconds; a lock of another program on byte 0 never
      // shows one.
      const auto now = std::chrono::steady_clock::now();
      if (!anonymous_since) anonymous_since = now;
      if (now - *anonymous_since >= kAnonymousLockPatience) {
        return Status(Code::kBusy, path + " is locked by another program (not a sealfs tool; "
                                          "its lock does not say which)");
      }
      std::this_thread::sleep_for(kPollInterval);
      continue;
    }
    anonymous_since.reset();
    std::chrono::milliseconds budget{0};
    if (holder->role == OwnerRole::kDaemonClosing) {
      budget = request.wait_for_closing;
    } else if (is_daemon(holder->role) && holder->mount_point.empty()) {
      budget = request.wait_for_serving;  // its mount may just have gone
    }
    if (std::chrono::steady_clock::now() - start >= budget) {
      std::string text = path + " is in use by " + holder->describe();
      if (announced) text += fmt::format(", still after {:.1f} s", budget.count() / 1000.0);
      return Status(Code::kBusy, text);
    }
    if (!announced && request.on_wait) request.on_wait(*holder);
    announced = true;
    std::this_thread::sleep_for(kPollInterval);
  }
  if (lock_byte(fd, F_RDLCK, identity_offset(request.role, getpid())) != 0) {
    return Status::from_errno(errno, path + ": cannot record the claim's owner");
  }
  return claim;
}

Status RegionClaim::change_role(OwnerRole role) {
  if (role == role_) return Status::ok();
  if (lock_byte(fd_, F_RDLCK, identity_offset(role, getpid())) != 0) {
    return Status::from_errno(errno, "region claim: record the new role");
  }
  if (lock_byte(fd_, F_UNLCK, identity_offset(role_, getpid())) != 0) {
    return Status::from_errno(errno, "region claim: drop the old role");
  }
  role_ = role;
  return Status::ok();
}

bool RegionClaim::covers(int fd) const {
  struct stat mine {}, theirs {};
  return fstat(fd_, &mine) == 0 && fstat(fd, &theirs) == 0 && mine.st_dev == theirs.st_dev &&
         mine.st_ino == theirs.st_ino;
}

RegionClaim::~RegionClaim() { release(); }

void RegionClaim::release() {
  // The claim's own open of the file: its locks go with its last close.
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace sealfs
