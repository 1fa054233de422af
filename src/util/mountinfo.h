// /proc/PID/mountinfo (proc_pid_mountinfo(5)), parsed once for every caller:
// the daemon finding its own mount, the region claim naming the daemon that
// holds a region, the lease engine accepting bind mounts.
//
// A line is
//   ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
// with fields separated by one space (a field may be empty: a mount made
// with an empty source string shows two spaces). The kernel writes a space,
// tab, newline or backslash inside ROOT, MOUNT_POINT and SOURCE as a
// backslash and three octal digits; the entries here hold them unescaped.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace sealfs {

struct MountInfoEntry {
  uint64_t mount_id = 0;   // what statx's STX_MNT_ID and /proc/PID/fdinfo mnt_id report
  uint64_t parent_id = 0;
  uint32_t major = 0;      // st_dev of files on this mount
  uint32_t minor = 0;
  std::string root;        // the directory of the filesystem mounted here (a bind's subtree)
  std::string mount_point;
  std::string fstype;      // "ext4", "fuse.sealfs", ...
  std::string source;      // the mount's device or source string ("none" when it has none)
};

// The entries of mountinfo text in file order (the newest mount on a point
// is the last one on it). A line that does not have the shape above (too
// few fields, no "-" separator, a number that does not parse) is skipped and
// counted in *malformed when that is given.
std::vector<MountInfoEntry> parse_mountinfo(std::string_view text, size_t* malformed = nullptr);

// read_kernel_file + parse_mountinfo of /proc/self/mountinfo (pid 0) or of
// /proc/PID/mountinfo, which shows PID's mount namespace. kNotFound when the
// process is gone. The file is read in full, however many mounts it lists.
Result<std::vector<MountInfoEntry>> read_mountinfo(pid_t pid = 0);

// A mountinfo field with its \ooo escapes replaced by the bytes they stand
// for; a backslash not followed by three octal digits (at most \377) stays.
std::string unescape_mountinfo_field(std::string_view field);

}  // namespace sealfs
