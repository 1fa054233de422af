// CallerPrivilege reads a request's capabilities from /proc/<tid>/status
// only when that task's filesystem uid is the request's: otherwise the
// request runs on credentials the task borrowed (nfsd's threads serve NFS
// clients that way, and /proc shows them as root with every capability),
// and the header's uid decides.
#include "fuse/caller_privilege.h"

#include <gtest/gtest.h>
#include <sys/fsuid.h>
#include <unistd.h>

namespace sealfs::fuse {
namespace {

uid_t own_fsuid() { return static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1))); }

TEST(CallerPrivilegeTest, ARequestUnderAnotherUidThanTheTasksGetsNoCapabilitiesOfTheTask) {
  const uid_t mine = own_fsuid();
  const uid_t other = mine == 0 ? 65534 : mine + 1;
  ASSERT_NE(other, 0u);
  CallerPrivilege borrowed(other, other, gettid());
  EXPECT_FALSE(borrowed.has_fsetid());
  EXPECT_FALSE(borrowed.has_fowner());
  EXPECT_FALSE(borrowed.has_linux_immutable());
  EXPECT_TRUE(borrowed.in_group(other));
  EXPECT_FALSE(borrowed.in_group(getgid() == other ? other + 1 : getgid()));
}

// A root request has CAP_FSETID: read from /proc when the task is root
// too (root's effective set), from the header when the task is another
// user's (before the uid check, that user's empty set said no).
TEST(CallerPrivilegeTest, ARootRequestHasFsetidWhateverTheTasksUid) {
  CallerPrivilege root(0, 0, gettid());
  EXPECT_TRUE(root.has_fsetid());
  EXPECT_TRUE(root.has_fowner());
}

}  // namespace
}  // namespace sealfs::fuse
