// util/mountinfo: the one parser of /proc/PID/mountinfo.
#include "util/mountinfo.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <string>

namespace sealfs {
namespace {

// Lines in the kernel's format (fs/proc_namespace.c show_mountinfo).
constexpr const char* kText =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    // No optional fields at all: "-" right after the mount options.
    "35 22 0:31 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw\n"
    // Two optional fields, a space and a backslash escaped in the point and
    // the source, a tab in the root of the bind.
    "87 35 0:52 /sub\\011dir /mnt/my\\040disk\\134x rw master:7 propagate_from:2 - "
    "fuse.sealfs /dev/shm/region\\040one rw,user_id=0\n"
    // An empty source (a mount given the empty string) is a field too.
    "90 22 0:60 / /empty rw - tmpfs  rw\n";

TEST(MountinfoTest, ParsesEveryFieldOfWellFormedLines) {
  size_t malformed = 99;
  auto entries = parse_mountinfo(kText, &malformed);
  EXPECT_EQ(malformed, 0u);
  ASSERT_EQ(entries.size(), 4u);
  const MountInfoEntry& root = entries[0];
  EXPECT_EQ(root.mount_id, 22u);
  EXPECT_EQ(root.parent_id, 1u);
  EXPECT_EQ(root.major, 8u);
  EXPECT_EQ(root.minor, 1u);
  EXPECT_EQ(root.root, "/");
  EXPECT_EQ(root.mount_point, "/");
  EXPECT_EQ(root.fstype, "ext4");
  EXPECT_EQ(root.source, "/dev/sda1");

  EXPECT_EQ(entries[1].mount_point, "/dev/shm");
  EXPECT_EQ(entries[1].fstype, "tmpfs");
  EXPECT_EQ(entries[1].source, "tmpfs");
  EXPECT_EQ(entries[1].minor, 31u);

  const MountInfoEntry& ours = entries[2];
  EXPECT_EQ(ours.mount_id, 87u);
  EXPECT_EQ(ours.parent_id, 35u);
  EXPECT_EQ(ours.major, 0u);
  EXPECT_EQ(ours.minor, 52u);
  EXPECT_EQ(ours.root, "/sub\tdir");
  EXPECT_EQ(ours.mount_point, "/mnt/my disk\\x");
  EXPECT_EQ(ours.fstype, "fuse.sealfs");
  EXPECT_EQ(ours.source, "/dev/shm/region one");

  EXPECT_EQ(entries[3].fstype, "tmpfs");
  EXPECT_EQ(entries[3].source, "");
}

TEST(MountinfoTest, SkipsAndCountsMalformedLines) {
  const std::string text = std::string(kText) +
                           "garbage\n"                                         // one field
                           "40 22 0:40 / /nosep rw shared:3 tmpfs tmpfs rw\n"  // no "-"
                           "41 22 0:41 / /short rw - tmpfs\n"                  // source missing
                           "x 22 0:42 / /badid rw - tmpfs tmpfs rw\n"          // id not a number
                           "43 22 042 / /baddev rw - tmpfs tmpfs rw\n"         // no colon
                           "44 22 0:44 / /last rw - tmpfs tmpfs rw";           // no final newline
  size_t malformed = 0;
  auto entries = parse_mountinfo(text, &malformed);
  EXPECT_EQ(malformed, 5u);
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries.back().mount_point, "/last");
  EXPECT_EQ(entries.back().mount_id, 44u);
}

TEST(MountinfoTest, UnescapesOnlyThreeOctalDigits) {
  EXPECT_EQ(unescape_mountinfo_field("a\\040b"), "a b");
  EXPECT_EQ(unescape_mountinfo_field("end\\012"), "end\n");
  EXPECT_EQ(unescape_mountinfo_field("\\134\\134"), "\\\\");
  // Not an escape: too short, not octal, or above \377. They stay as written.
  EXPECT_EQ(unescape_mountinfo_field("a\\04"), "a\\04");
  EXPECT_EQ(unescape_mountinfo_field("a\\089"), "a\\089");
  EXPECT_EQ(unescape_mountinfo_field("a\\477"), "a\\477");
  EXPECT_EQ(unescape_mountinfo_field("\\"), "\\");
}

// The live file: the mount holding our working directory is listed, with
// the device number stat reports for it.
TEST(MountinfoTest, ReadsThisProcessAndAnotherPidsMountinfo) {
  auto self = read_mountinfo();
  ASSERT_TRUE(self.is_ok()) << self.status().to_string();
  ASSERT_FALSE(self->empty());
  struct stat st {};
  ASSERT_EQ(stat("/", &st), 0);
  bool found = false;
  for (const MountInfoEntry& m : *self) {
    if (m.mount_point == "/" && m.major == major(st.st_dev) && m.minor == minor(st.st_dev)) {
      found = true;
    }
  }
  EXPECT_TRUE(found);
  auto by_pid = read_mountinfo(getpid());
  ASSERT_TRUE(by_pid.is_ok()) << by_pid.status().to_string();
  EXPECT_EQ(by_pid->size(), self->size());
  auto gone = read_mountinfo(0x3fffffff);  // above PID_MAX_LIMIT
  ASSERT_FALSE(gone.is_ok());
  EXPECT_EQ(gone.status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace sealfs
