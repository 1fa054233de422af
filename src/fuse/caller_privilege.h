// CallerPrivilege: what the kernel's capable(CAP_FSETID) and in_group_p()
// would answer for the task behind a FUSE request, for clearing set-id bits
// (meta/filesystem.h, SetidCaller); and capable(CAP_FOWNER) and
// capable(CAP_LINUX_IMMUTABLE), for changing inode flags (FlagsCaller).
//
// The request header carries the caller's fsuid, fsgid and thread id; its
// capabilities and supplementary groups are read from /proc/<tid>/status,
// once per request and only when a set-id file asks. CAP_FSETID counts only
// in the daemon's own user namespace: a task that is root in a user
// namespace of its own holds CAP_FSETID there, not over this mount, just as
// capable() (which checks the initial namespace) would say. When /proc
// cannot tell (the task is gone, or invisible from the daemon's pid
// namespace, or its filesystem uid there is not the request's: a kernel
// thread such as nfsd's acting with borrowed credentials) the answer falls
// back to the header: every capability for fsuid 0, none for anyone else,
// and the fsgid as the only group.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "meta/filesystem.h"

namespace sealfs::fuse {

class CallerPrivilege final : public SetidCaller, public FlagsCaller {
 public:
  CallerPrivilege(uint32_t uid, uint32_t gid, pid_t tid) : uid_(uid), gid_(gid), tid_(tid) {}
  bool has_fsetid() override;
  bool in_group(uint32_t gid) override;
  uint32_t fsuid() override { return uid_; }
  bool has_fowner() override;
  bool has_linux_immutable() override;
  bool may_chmod(uint32_t uid) override { return uid == uid_ || has_fowner(); }

 private:
  void load();
  bool has_capability(int cap);

  uint32_t uid_, gid_;
  pid_t tid_;
  bool loaded_ = false;
  // Effective capabilities that count over this mount (see above).
  uint64_t caps_ = 0;
  std::vector<uint32_t> groups_;
};

}  // namespace sealfs::fuse
