#include "fuse/caller_privilege.h"

#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <string>

#include "util/proc_file.h"

namespace sealfs::fuse {
namespace {

// linux/capability.h
constexpr int kCapFowner = 3;
constexpr int kCapFsetid = 4;
constexpr int kCapLinuxImmutable = 9;

// Same user namespace as the daemon: compare the namespace inodes.
bool same_user_namespace(pid_t tid) {
  struct stat mine {}, theirs {};
  std::string path = "/proc/" + std::to_string(tid) + "/ns/user";
  if (stat("/proc/self/ns/user", &mine) != 0 || stat(path.c_str(), &theirs) != 0) return false;
  return mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev;
}

}  // namespace

void CallerPrivilege::load() {
  if (loaded_) return;
  loaded_ = true;
  caps_ = uid_ == 0 ? ~uint64_t{0} : 0;
  groups_ = {gid_};
  if (tid_ <= 0) return;
  auto status = read_kernel_file("/proc/" + std::to_string(tid_) + "/status");
  if (!status.is_ok()) return;
  std::optional<uint64_t> cap_eff = status_mask(*status, "CapEff");
  if (!cap_eff) return;
  // /proc shows a task's own credentials, not ones it borrowed
  // (override_creds): nfsd's threads serve each NFS request as the client's
  // user with their capabilities cut to match, but their status reads as
  // root with every capability. A filesystem uid in /proc other than the
  // request's says the request runs on borrowed credentials: /proc cannot
  // tell, and the header decides.
  std::vector<uint32_t> uids = status_ids(*status, "Uid");  // real, effective, saved, fs
  if (uids.size() < 4 || uids[3] != uid_) return;
  std::vector<uint32_t> groups = {gid_};
  for (uint32_t g : status_ids(*status, "Groups")) groups.push_back(g);
  caps_ = same_user_namespace(tid_) ? *cap_eff : 0;
  groups_ = std::move(groups);
}

bool CallerPrivilege::has_capability(int cap) {
  load();
  return (caps_ & (uint64_t{1} << cap)) != 0;
}

bool CallerPrivilege::has_fsetid() { return has_capability(kCapFsetid); }
bool CallerPrivilege::has_fowner() { return has_capability(kCapFowner); }
bool CallerPrivilege::has_linux_immutable() { return has_capability(kCapLinuxImmutable); }

bool CallerPrivilege::in_group(uint32_t gid) {
  load();
  return std::find(groups_.begin(), groups_.end(), gid) != groups_.end();
}

}  // namespace sealfs::fuse
