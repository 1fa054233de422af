// Set-id bits on a real mount, as the kernel clears them: a change of
// contents or size by a caller without CAP_FSETID drops S_ISUID, and
// S_ISGID when the group may execute or the caller is outside the file's
// group; chown drops them whoever asks. Each case runs the same command on
// a tmpfs file beside the sealfs one where tmpfs supports the operation,
// and both must end in the mode the test expects.
//
// And FUSE's HANDLE_KILLPRIV_V2: with the daemon clearing the bits itself,
// the kernel stops asking for security.capability before every write.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "tmpfs_twin.h"

namespace sealfs::itest {
namespace {

class SetidTest : public TmpfsTwinFixture {
 protected:
  SetidTest() : TmpfsTwinFixture("setid") {}
  void mount_shared(const std::string& extra = "") {
    MountConfig config;
    config.options = "allow_other" + (extra.empty() ? "" : "," + extra);
    ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  }

  // A root-owned 8 KiB file with exactly `mode` and group `gid`.
  static void make_file(const std::string& file, mode_t mode, gid_t gid) {
    write_file(file, std::string(8192, 'x'));
    ASSERT_EQ(chown(file.c_str(), 0, gid), 0) << file << ": " << std::strerror(errno);
    ASSERT_EQ(chmod(file.c_str(), mode), 0) << file << ": " << std::strerror(errno);
  }
  static mode_t mode_of(const std::string& file) {
    struct stat st {};
    EXPECT_EQ(stat(file.c_str(), &st), 0) << file;
    return st.st_mode & 07777;
  }

  // Runs `command` (F stands for the file) as `as` (nullopt: root) on a
  // file made with `mode`/`gid` and just stat'ed, on sealfs and, when `on_tmpfs`, on tmpfs;
  // both must end with `expected`.
  void check(const std::string& what, const std::string& command, mode_t mode, gid_t gid,
             std::optional<TestUser> as, mode_t expected, bool on_tmpfs = true) {
    SCOPED_TRACE(what);
    std::vector<std::string> dirs = {mountpoint()};
    if (on_tmpfs) dirs.push_back(tmpfs_);
    for (const std::string& d : dirs) {
      std::string file = d + "/case" + std::to_string(case_++);
      ASSERT_NO_FATAL_FAILURE(make_file(file, mode, gid));
      // Cached in the kernel now (attr_timeout is a day): the daemon must
      // tell it when it clears the bits itself.
      ASSERT_EQ(mode_of(file), mode);
      std::string sh = "F=" + file + "; " + command;
      std::string out;
      int rc = as ? run_command({"sh", "-c", sh}, &out, as->uid, as->gid)
                  : run_command({"sh", "-c", sh}, &out);
      ASSERT_EQ(rc, 0) << d << ": " << sh << "\n" << out;
      EXPECT_EQ(mode_of(file), expected)
          << std::oct << d << ": " << command << " on mode 0" << mode << " gid " << std::dec
          << gid;
    }
  }

  // Every way of changing contents, by the test user, on a 06777 file.
  void content_changes();

  int case_ = 0;
};

// Each way of changing contents, by a caller without CAP_FSETID, on a
// set-uid, set-gid, group-executable file of another group.
TEST_F(SetidTest, ContentChangesByAnUnprivilegedCallerClearBoth) {
  ASSERT_NO_FATAL_FAILURE(mount_shared("no_killpriv_v2"));
  content_changes();
}

// Under HANDLE_KILLPRIV_V2 the kernel clears nothing itself: the daemon does
// it all.
TEST_F(SetidTest, ContentChangesClearBothUnderKillprivV2) {
  ASSERT_NO_FATAL_FAILURE(mount_shared("killpriv_v2"));
  content_changes();
  check("outsider writes", "dd if=/dev/zero of=$F bs=512 count=1 conv=notrunc status=none",
        02666, 0, user_, 0666);
  check("member writes", "dd if=/dev/zero of=$F bs=512 count=1 conv=notrunc status=none", 02666,
        user_.gid, user_, 02666);
  check("chown g+x", "chown " + std::to_string(user_.uid) + " $F", 06755, 0, std::nullopt, 0755);
}

void SetidTest::content_changes() {
  const mode_t both = 06777;
  check("write", "dd if=/dev/zero of=$F bs=4096 count=1 conv=notrunc status=none", both, 0,
        user_, 0777);
  check("truncate", "truncate -s 100 $F", both, 0, user_, 0777);
  check("open O_TRUNC", ": > $F", both, 0, user_, 0777);
  check("fallocate", "fallocate -o 0 -l 65536 $F", both, 0, user_, 0777);
  check("fallocate keep size", "fallocate -n -o 0 -l 65536 $F", both, 0, user_, 0777);
  check("punch hole", "fallocate -p -o 0 -l 4096 $F", both, 0, user_, 0777);
  // tmpfs has no zero range; the rule is the same as for the punch.
  check("zero range", "fallocate -z -o 0 -l 4096 $F", both, 0, user_, 0777, false);
  // Within the file: copy_file_range across filesystems is refused.
  check("copy_file_range", "xfs_io -c 'copy_range -s 4096 -d 0 -l 4096 '$F $F", both, 0, user_,
        0777);
}

// S_ISGID without group execute is not set-group-ID: the kernel keeps it for
// a member of the file's group and clears it for anyone else.
TEST_F(SetidTest, SetgidWithoutGroupExecuteStaysForGroupMembersOnly) {
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  check("member writes", "dd if=/dev/zero of=$F bs=512 count=1 conv=notrunc status=none", 02666,
        user_.gid, user_, 02666);
  check("member punches", "fallocate -p -o 0 -l 4096 $F", 02666, user_.gid, user_, 02666);
  check("member truncates", "truncate -s 0 $F", 02666, user_.gid, user_, 02666);
  check("outsider writes", "dd if=/dev/zero of=$F bs=512 count=1 conv=notrunc status=none",
        02666, 0, user_, 0666);
  check("outsider fallocates", "fallocate -o 0 -l 65536 $F", 02666, 0, user_, 0666);
  // Group executable: set-group-ID proper, cleared even for a member.
  check("member writes g+x", "dd if=/dev/zero of=$F bs=512 count=1 conv=notrunc status=none",
        02676, user_.gid, user_, 0676);
}

// CAP_FSETID (root here) keeps both bits through every change of contents.
TEST_F(SetidTest, CallerWithFsetidKeepsTheBits) {
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  check("root writes", "dd if=/dev/zero of=$F bs=4096 count=1 conv=notrunc status=none", 06777,
        0, std::nullopt, 06777);
  check("root fallocates", "fallocate -o 0 -l 65536 $F", 06777, 0, std::nullopt, 06777);
  check("root punches", "fallocate -p -o 0 -l 4096 $F", 06777, 0, std::nullopt, 06777);
  check("root truncates", "truncate -s 1 $F", 06777, 0, std::nullopt, 06777);
}

// chown clears S_ISUID whoever asks (root here), and S_ISGID when the group
// may execute; a chown to the same owner counts.
TEST_F(SetidTest, ChownClearsSetuidAndExecutableSetgid) {
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  const std::string to_user = "chown " + std::to_string(user_.uid) + " $F";
  check("chown g+x", to_user, 06755, 0, std::nullopt, 0755);
  check("chown g-x", to_user, 06745, 0, std::nullopt, 02745);
  check("chown to the same owner", "chown 0 $F", 04755, 0, std::nullopt, 0755);
  check("chgrp", "chgrp " + std::to_string(user_.gid) + " $F", 06755, 0, std::nullopt, 0755);
}

// chown(f, -1, -1) changes no owner and still clears, for the owner (root
// here). FUSE sends it as a setattr with nothing to set, the request that
// also precedes a write by a caller without CAP_FSETID: the daemon takes it
// as a chown only from a caller that may chmod the file, so a non-owner's
// clears nothing (tmpfs refuses it with EPERM; docs/daemon.md "Set-id bits").
TEST_F(SetidTest, ChownToNobodyClearsForTheOwner) {
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  const std::string keep = "python3 -c 'import os, sys; os.chown(sys.argv[1], -1, -1)' $F";
  check("chown -1 -1 g+x", keep, 06755, 0, std::nullopt, 0755);
  check("chown -1 -1 g-x", keep, 06745, 0, std::nullopt, 02745);
  check("non-owner chown -1 -1", keep + " 2>/dev/null || true", 06755, 0, user_, 06755, false);
  // A non-owner's write still clears, through the write itself.
  check("non-owner writes after", keep + " 2>/dev/null; echo x >> $F", 06757, 0, user_, 0757);
}

// With the writeback cache the kernel writes a set-id file through (under
// HANDLE_KILLPRIV_V2), so the daemon still sees the writer.
TEST_F(SetidTest, WritebackCacheMountClearsToo) {
  ASSERT_NO_FATAL_FAILURE(mount_shared("writeback_cache,killpriv_v2"));
  check("write", "dd if=/dev/zero of=$F bs=4096 count=1 conv=notrunc status=none", 06777, 0,
        user_, 0777);
  check("append", "echo more >> $F", 06777, 0, user_, 0777);
  check("truncate", "truncate -s 100 $F", 06777, 0, user_, 0777);
  check("member writes", "dd if=/dev/zero of=$F bs=512 count=1 conv=notrunc status=none", 02666,
        user_.gid, user_, 02666);
  check("root writes", "dd if=/dev/zero of=$F bs=4096 count=1 conv=notrunc status=none", 06777,
        0, std::nullopt, 06777);
  // Here the kernel sends chown(f, -1, -1) as a bare ctime (it trusts its
  // own cmtime): still a chown (found by review).
  const std::string keep = "python3 -c 'import os, sys; os.chown(sys.argv[1], -1, -1)' $F";
  check("chown -1 -1 g+x", keep, 06755, 0, std::nullopt, 0755);
}

// The daemon clears the bits itself under KILLPRIV_V2 and the kernel keeps
// attributes for attr_timeout (a day): it must be told, or stat(2) and
// exec(2) go on seeing a set-id file. One shell session, as an admin would
// see it: stat, a change by the user, stat again.
TEST_F(SetidTest, ClearedBitsShowInTheNextStat) {
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  const std::string as_user = "setpriv --reuid=" + std::to_string(user_.uid) +
                              " --regid=" + std::to_string(user_.gid) + " --clear-groups ";
  for (const std::string& change :
       {std::string("fallocate -p -o 0 -l 4096"), std::string("fallocate -n -o 0 -l 65536"),
        std::string("fallocate -z -o 0 -l 4096"), std::string("fallocate -o 0 -l 65536")}) {
    SCOPED_TRACE(change);
    std::string file = path("shown" + std::to_string(case_++));
    std::string sh = "F=" + file +
                     "; head -c 8192 /dev/zero > $F && chmod 06777 $F && stat -c %a $F && " +
                     as_user + change + " $F && stat -c %a $F";
    std::string out;
    ASSERT_EQ(run_command({"sh", "-c", sh}, &out), 0) << out;
    EXPECT_EQ(out, "6777\n777\n");
  }
}

// The set-id bits cleared are on the media, not only in the kernel's cache.
TEST_F(SetidTest, ClearedBitsSurviveARemount) {
  ASSERT_NO_FATAL_FAILURE(mount_shared());
  std::string file = path("f");
  ASSERT_NO_FATAL_FAILURE(make_file(file, 06777, 0));
  std::string out;
  ASSERT_EQ(run_command({"fallocate", "-p", "-o", "0", "-l", "4096", file}, &out, user_.uid,
                        user_.gid),
            0)
      << out;
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_EQ(mode_of(file), 0777u);
}

// HANDLE_KILLPRIV_V2 (the default): the kernel asks for security.capability on the first
// write to an inode only, not before each of them.
TEST_F(SetidTest, WritesDoNotProbeSecurityCapabilityEachTime) {
  ASSERT_NO_FATAL_FAILURE(mount_shared("debug"));  // v2 is the default
  std::string file = path("w");
  int fd = open(file.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  char block[4096];
  std::memset(block, 'w', sizeof block);
  constexpr int kWrites = 64;
  for (int i = 0; i < kWrites; ++i) {
    ASSERT_EQ(pwrite(fd, block, sizeof block, static_cast<off_t>(i) * 4096), 4096);
  }
  close(fd);
  size_t probes = log_count("no security.capability");
  EXPECT_LE(probes, 2u) << "getxattr(security.capability) requests for " << kWrites << " writes";
  EXPECT_EQ(read_file(file), std::string(kWrites * 4096, 'w'));
}

}  // namespace
}  // namespace sealfs::itest
