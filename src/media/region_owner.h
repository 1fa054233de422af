// One owner per region: the daemon, mkfs and fsck claim the region before
// they map or read any of it, and a second claimant is refused (or waits for
// an owner that is going away) with a message naming the holder.
//
// The claim is a set of open-file-description (OFD) locks on a descriptor of
// the region's own inode, opened for the claim alone:
//
//   byte 0                    the ownership byte: a write lock for owners that
//                             write (read-write daemon, mkfs, fsck -y), a read
//                             lock for readers (read-only daemon, fsck -n), so
//                             readers share and writers exclude everyone.
//   kIdentityBase + role * kPidSpan + pid
//                             one byte, read-locked: who holds the claim and in
//                             which role. OFD locks report no pid (F_OFD_GETLK
//                             gives -1), so the holder's pid and role are
//                             written into where its lock lies.
//
// Why a descriptor of its own: the daemon hands dups of the region descriptor
// to direct-mapping clients, and an OFD lock follows its open file
// description into every dup; a client keeping its copy open must not keep the
// region claimed after the daemon exits. The claim descriptor is never passed
// on and is closed with the process, so a killed owner releases at once.
//
// Locks are advisory and bound to the inode: a devdax device reached through
// a second device node made with mknod (root only) is not covered; every
// sealfs tool opens the node it is given, and /dev/daxX.Y has one.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "util/status.h"

namespace sealfs {

enum class OwnerRole : uint32_t {
  kDaemon = 0,          // read-write daemon, serving
  kDaemonReadOnly = 1,  // read-only daemon, serving
  kDaemonClosing = 2,   // daemon whose mount is gone, finishing its unmount
  kMkfs = 3,
  kFsckRepair = 4,      // fsck -y
  kFsckCheck = 5,       // fsck -n
  kLayoutRead = 6,      // sealfs-layout on a region (reads only)
  kCount = 7,           // also: a lock that is not a sealfs tool's (RegionHolder)
};
const char* owner_role_name(OwnerRole role);

struct RegionHolder {
  pid_t pid = 0;
  OwnerRole role = OwnerRole::kDaemon;
  std::string command;  // /proc/PID/cmdline, arguments joined by spaces; may be empty
  // A daemon's live mount of this region, as its /proc/PID/mountinfo shows
  // it (a fuse.sealfs mount whose source is the region); empty if none is
  // seen: not a daemon, not mounted any more, or another mount namespace.
  std::string mount_point;
  // "pid 1234 (sealfs daemon, mounted read-write on /mnt/r: sealfs /var/tmp/r /mnt/r)"
  std::string describe() const;
};

struct ClaimRequest {
  OwnerRole role = OwnerRole::kDaemon;
  // How long to wait for a holder in kDaemonClosing to exit (its kernel mount
  // is gone; what is left is its clean unmount).
  std::chrono::milliseconds wait_for_closing{0};
  // How long to wait for a serving daemon to become a closing one or exit:
  // `umount` returns before the daemon notices, so right after an unmount the
  // old daemon may still say it serves. Not waited when its mount is seen
  // live (RegionHolder::mount_point).
  std::chrono::milliseconds wait_for_serving{0};
  // Called once, when the claim starts waiting for `holder`.
  std::function<void(const RegionHolder& holder)> on_wait;
};

// The request every sealfs tool makes (docs/daemon.md, "One owner per
// region"): a daemon finishing its unmount is waited for up to 30 s, a
// serving one whose mount is not seen gets a 5 s grace, and the wait is
// announced once on stderr as "PROGRAM: TARGET is in use by ...".
ClaimRequest tool_claim_request(OwnerRole role, const std::string& program,
                                const std::string& target);

class RegionClaim {
 public:
  // Claims the file behind `region_fd` (the caller's open descriptor of the
  // region; `path` is for messages). Refusal: kBusy, with the holder named.
  static Result<std::unique_ptr<RegionClaim>> acquire(int region_fd, const std::string& path,
                                                      const ClaimRequest& request);
  // Who holds a claim on the file behind `fd` that conflicts with an
  // exclusive one, if anyone does (another process's claim).
  static std::optional<RegionHolder> find_holder(int fd);
  // The mount point of a fuse.sealfs mount listed in /proc/PID/mountinfo
  // whose source names the file behind `fd`, or "".
  static std::string find_daemon_mount(pid_t pid, int fd);
  // The reverse, for tools given a MOUNTPOINT: the source (the region's
  // absolute path, the daemon's fsname) of the fuse.sealfs mount on
  // `mountpoint` in /proc/self/mountinfo, or "" when none is mounted there.
  static std::string find_mounted_region(const std::string& mountpoint);

  ~RegionClaim();
  RegionClaim(const RegionClaim&) = delete;
  RegionClaim& operator=(const RegionClaim&) = delete;

  OwnerRole role() const { return role_; }
  // Whether `fd` is a descriptor of the claimed file (a tool that opens the
  // region again by path checks that the path still names it).
  bool covers(int fd) const;
  // Announces a new role (the daemon: serving -> closing). The new identity
  // is locked before the old one is dropped, so a prober never sees none.
  Status change_role(OwnerRole role);
  // Lets the region go before this process exits: for the daemon once its
  // clean unmount has written everything, so that a successor (a mount,
  // fsck) need not wait for an exit that a close it cannot interrupt may
  // hold up (lease/mount_fd_closer.h). Nothing may write the region after.
  void release();

 private:
  RegionClaim(int fd, OwnerRole role) : fd_(fd), role_(role) {}
  int fd_;
  OwnerRole role_;
};

}  // namespace sealfs
