#include "fuse/startup_checks.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "lease/socket_path.h"
#include "util/log.h"

namespace sealfs::fuse {
namespace {

const char* file_type_name(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a directory";
}

// "readable", "writable" or "readable and writable" for the two bits.
std::string access_words(bool read, bool write) {
  if (read && write) return "readable and writable";
  return read ? "readable" : "writable";
}

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// A user private group: named after the owner, the owner's primary group,
// with no other listed members. Its members are the owner alone.
bool is_private_group_of(uid_t owner, gid_t group, std::string* group_name) {
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* found_group = nullptr;
  if (getgrgid_r(group, &gr, buf.data(), buf.size(), &found_group) != 0 ||
      found_group == nullptr) {
    *group_name = std::to_string(group);
    return false;
  }
  *group_name = gr.gr_name;
  const bool no_members = gr.gr_mem == nullptr || gr.gr_mem[0] == nullptr;
  std::vector<char> pbuf(16384);
  struct passwd pw {};
  struct passwd* found_user = nullptr;
  if (getpwuid_r(owner, &pw, pbuf.data(), pbuf.size(), &found_user) != 0 ||
      found_user == nullptr) {
    return false;
  }
  return no_members && pw.pw_gid == group && *group_name == pw.pw_name;
}

}  // namespace

Status check_mountpoint(const std::string& mountpoint) {
  struct stat st {};
  if (stat(mountpoint.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOTCONN) {
      return Status(Code::kBusy, "mount point " + mountpoint +
                                     " is a FUSE mount whose daemon is gone; run "
                                     "'fusermount3 -u -z " + mountpoint + "' first");
    }
    return Status::from_errno(err, "mount point " + mountpoint);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status(Code::kNotDir, "mount point " + mountpoint + " is " +
                                     file_type_name(st.st_mode) +
                                     ", not a directory; refusing to mount over it");
  }
  return Status::ok();
}

Status check_control_socket(const DaemonOptions& options) {
  if (options.control_socket.empty()) return Status::ok();
  return lease::socket_path_free(options.control_socket);
}

std::optional<std::string> region_exposure(const std::string& target, const struct stat& st,
                                           std::optional<uint32_t> dax_gid) {
  const mode_t mode = st.st_mode;
  const std::string consequence =
      ": they can read every file in the filesystem, whatever its modes say";
  if ((mode & (S_IROTH | S_IWOTH)) != 0) {
    return target + " is " + access_words(mode & S_IROTH, mode & S_IWOTH) +
           " by all users (mode " + octal_mode(mode) + ")" + consequence + "; run 'chmod o-rw " +
           target + "'";
  }
  if ((mode & (S_IRGRP | S_IWGRP)) == 0) return std::nullopt;
  if (dax_gid && st.st_gid == *dax_gid) return std::nullopt;
  std::string group_name;
  if (is_private_group_of(st.st_uid, st.st_gid, &group_name)) return std::nullopt;
  return target + " is " + access_words(mode & S_IRGRP, mode & S_IWGRP) + " by group " +
         group_name + " (mode " + octal_mode(mode) + "), which is not dax_group=" + consequence +
         "; run 'chmod g-rw " + target + "' or mount with dax_group=" + group_name;
}

std::optional<std::string> warn_if_region_exposed(const DaemonOptions& options) {
  struct stat st {};
  // A missing target is reported by the open that follows.
  if (stat(options.target.c_str(), &st) != 0) return std::nullopt;
  auto warning = region_exposure(options.target, st, options.dax_gid);
  if (warning) log().warn("{}", *warning);
  return warning;
}

}  // namespace sealfs::fuse
