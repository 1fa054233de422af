// POSIX ACLs on a real mount (docs/daemon.md "POSIX ACLs"): setfacl and
// getfacl, permission checks by named-user entries and the mask, default
// ACLs inherited on create with the umask ignored under them, chmod moving
// the mask, S_ISGID dropped when an outsider sets an ACL, and ACLs across a
// remount. Each scripted case runs the same commands in a tmpfs directory
// (tmpfs keeps POSIX ACLs in the kernel) and the two must print the same.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "tmpfs_twin.h"

namespace sealfs::itest {
namespace {

class AclTest : public TmpfsTwinFixture {
 protected:
  AclTest() : TmpfsTwinFixture("acl") {}
  void SetUp() override {
    TmpfsTwinFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    MountConfig config;
    config.options = "allow_other";
    ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
    ASSERT_EQ(chmod(mountpoint().c_str(), 0755), 0);
  }

  // `script` run by sh in `where` (U is the test user's uid), as root or
  // as the test user; its output, with the exit status last.
  std::string run_in(const std::string& where, const std::string& script, bool as_user = false) {
    std::string sh = "cd " + where + " && U=" + std::to_string(user_.uid) + " && " + script;
    std::string out;
    int rc = as_user ? run_command({"sh", "-c", sh}, &out, user_.uid, user_.gid)
                     : run_command({"sh", "-c", sh}, &out);
    return out + "exit " + std::to_string(rc) + "\n";
  }
  // The same script on sealfs and on tmpfs: both outputs must be equal;
  // returns sealfs's.
  std::string same_as_tmpfs(const std::string& script, bool as_user = false) {
    std::string ours = run_in(mountpoint(), script, as_user);
    std::string theirs = run_in(tmpfs_, script, as_user);
    EXPECT_EQ(ours, theirs) << script;
    return ours;
  }
};

TEST_F(AclTest, SetfaclAndGetfaclAsOnTmpfs) {
  std::string out = same_as_tmpfs(
      "umask 022; echo data > f && chmod 0640 f && "
      "setfacl -m u:$U:rw,g:$U:r f && getfacl -n f && stat -c %a f && "
      "setfacl -m m::r f && getfacl -n f && stat -c %a f && "
      "setfacl -x u:$U f && getfacl -n f && "
      "setfacl -b f && getfacl -n f && stat -c %a f");
  // What setfacl wrote is there, not only what tmpfs prints.
  EXPECT_NE(out.find("user:" + std::to_string(user_.uid) + ":rw-\n"), std::string::npos) << out;
  EXPECT_NE(out.find("mask::rw-\n"), std::string::npos) << out;
  EXPECT_NE(out.find("exit 0\n"), std::string::npos) << out;
}

// The kernel asks the daemon for the ACL and checks it: a named entry grants
// what the mode does not, the mask limits it, chmod moves the mask.
TEST_F(AclTest, NamedUserAndMaskDecideAccess) {
  for (const std::string& where : {mountpoint(), tmpfs_}) {
    SCOPED_TRACE(where);
    ASSERT_EQ(run_in(where, "echo secret > f && chmod 0600 f"), "exit 0\n");
    EXPECT_NE(run_in(where, "cat f", true), "secret\nexit 0\n") << "mode 0600 lets others in";
    ASSERT_EQ(run_in(where, "setfacl -m u:$U:r f"), "exit 0\n");
    EXPECT_EQ(run_in(where, "cat f", true), "secret\nexit 0\n") << "the named entry grants read";
    EXPECT_NE(run_in(where, "echo more >> f", true), "exit 0\n") << "but not write";
    ASSERT_EQ(run_in(where, "setfacl -m m::- f"), "exit 0\n");
    EXPECT_NE(run_in(where, "cat f", true), "secret\nexit 0\n") << "an empty mask denies";
    ASSERT_EQ(run_in(where, "chmod 0640 f && getfacl -n f | grep mask"), "mask::r--\nexit 0\n");
    EXPECT_EQ(run_in(where, "cat f", true), "secret\nexit 0\n") << "chmod g+r set the mask";
    ASSERT_EQ(run_in(where, "chmod 0600 f"), "exit 0\n");
    EXPECT_NE(run_in(where, "cat f", true), "secret\nexit 0\n") << "chmod g-r cleared it";
  }
}

// A default ACL replaces the umask for new files, directories and nodes;
// without one the umask applies (the daemon does both: FUSE_CAP_DONT_MASK).
TEST_F(AclTest, DefaultAclsAreInheritedAndTheUmaskIgnoredUnderThem) {
  std::string out = same_as_tmpfs(
      "mkdir d && setfacl -d -m u:$U:rwx,g::r-x,o::- d && getfacl -n d && "
      "(umask 077; touch d/f && mkdir d/sub && mkfifo d/p && ln -s f d/l) && "
      "getfacl -n d/f d/sub d/p && stat -c '%n %a' d/f d/sub d/p && "
      "(umask 077; touch plain && mkdir plaindir) && stat -c '%n %a' plain plaindir && "
      "getfacl -n plain");
  // umask 077 would have left 600 and 700.
  EXPECT_NE(out.find("d/f 660\nd/sub 770\n"), std::string::npos) << out;
  EXPECT_NE(out.find("plain 600\n"), std::string::npos) << out;
  EXPECT_NE(out.find("default:user:" + std::to_string(user_.uid) + ":rwx\n"), std::string::npos)
      << out;
}

// posix_acl_update_mode: an owner outside the file's group, without
// CAP_FSETID, loses S_ISGID when it sets an access ACL.
TEST_F(AclTest, SettingAnAclClearsSetgidForAnOwnerOutsideTheGroup) {
  same_as_tmpfs("touch g && chown $U:0 g && chmod 02770 g");
  std::string out = same_as_tmpfs("setfacl -m u:0:r g && stat -c %a g", true);
  EXPECT_EQ(out, "770\nexit 0\n");
  out = same_as_tmpfs("chmod 02770 g && setfacl -m u:0:rw g && stat -c %a g");
  EXPECT_EQ(out, "2770\nexit 0\n") << "root keeps it";
}

TEST_F(AclTest, AclsSurviveARemount) {
  const std::string script =
      "getfacl -n f d && stat -c '%n %a' f d";
  ASSERT_EQ(run_in(mountpoint(),
                   "echo secret > f && chmod 0600 f && setfacl -m u:$U:r,m::r f && mkdir d && "
                   "setfacl -d -m u:$U:rx d"),
            "exit 0\n");
  std::string before = run_in(mountpoint(), script);
  ASSERT_NE(before.find("user:" + std::to_string(user_.uid) + ":r--"), std::string::npos)
      << before;
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_EQ(run_in(mountpoint(), script), before);
  EXPECT_EQ(run_in(mountpoint(), "cat f", true), "secret\nexit 0\n");
}

}  // namespace
}  // namespace sealfs::itest
