// Reading back the access-control state two trees must agree on: POSIX ACLs
// (decoded, so that a report names the entry that differs) and the inode
// flags both sealfs and tmpfs keep. Set-id bits need nothing here: they are
// in the mode describe_stat() prints.
#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "state.h"

namespace difftest {
namespace {

// The kernel's xattr encoding of an ACL (include/uapi/linux/posix_acl_xattr.h):
// a version word, then (tag, perm, id) entries.
constexpr uint32_t kAclVersion = 2;
struct AclEntry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id;
};

// "user::", "user:65534:", ... as getfacl(1) writes them.
std::string entry_prefix(const AclEntry& e) {
  const std::string id = std::to_string(e.id);
  switch (e.tag) {
    case 0x01: return "user::";
    case 0x02: return "user:" + id + ":";
    case 0x04: return "group::";
    case 0x08: return "group:" + id + ":";
    case 0x10: return "mask::";
    case 0x20: return "other::";
    default: return "tag" + std::to_string(e.tag) + ":" + id + ":";
  }
}

std::string perm_text(uint16_t perm) {
  std::string text = "---";
  if (perm & 4) text[0] = 'r';
  if (perm & 2) text[1] = 'w';
  if (perm & 1) text[2] = 'x';
  if (perm & ~7u) text += "+" + std::to_string(perm & ~7u);
  return text;
}

int clear_entry_flags(const char* path, const struct stat* st, int, struct FTW*) {
  if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)) return 0;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return 0;
  int flags = 0;
  ioctl(fd, FS_IOC_SETFLAGS, &flags);
  close(fd);
  return 0;
}

}  // namespace

int compared_flag_bits() {
  return FS_IMMUTABLE_FL | FS_APPEND_FL | FS_NODUMP_FL | FS_NOATIME_FL;
}

std::string encode_acl(const std::vector<AclTriple>& entries) {
  std::string bytes(sizeof(uint32_t), '\0');
  std::memcpy(bytes.data(), &kAclVersion, sizeof(kAclVersion));
  for (const AclTriple& t : entries) {
    AclEntry e{t.tag, t.perm, t.id};
    bytes.append(reinterpret_cast<const char*>(&e), sizeof(e));
  }
  return bytes;
}

Outcome read_acl(const std::string& path, const char* name) {
  std::vector<char> buf(4096);
  ssize_t n = getxattr(path.c_str(), name, buf.data(), buf.size());
  if (n < 0) return capture(-1);
  std::string text;
  if (n < 4 || (n - 4) % static_cast<ssize_t>(sizeof(AclEntry)) != 0) {
    return Outcome{0, 0, "malformed ACL of " + std::to_string(n) + " bytes"};
  }
  uint32_t version = 0;
  std::memcpy(&version, buf.data(), sizeof(version));
  if (version != kAclVersion) text += "version " + std::to_string(version) + " ";
  for (ssize_t at = 4; at < n; at += sizeof(AclEntry)) {
    AclEntry e{};
    std::memcpy(&e, buf.data() + at, sizeof(e));
    text += entry_prefix(e) + perm_text(e.perm) + " ";
  }
  return Outcome{0, 0, text};
}

int inode_flag_bits(const std::string& path, bool follow) {
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
  if (fd < 0) return 0;
  int flags = 0;
  if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) flags = 0;
  close(fd);
  return flags;
}

Outcome read_inode_flags(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return capture(-1);
  int flags = 0;
  Outcome out = capture(ioctl(fd, FS_IOC_GETFLAGS, &flags));
  close(fd);
  if (out.ret == 0) {
    char text[32];
    std::snprintf(text, sizeof text, "flags=0x%x", flags & compared_flag_bits());
    out.data = text;
  }
  return out;
}

void clear_inode_flags_under(const std::string& path) {
  nftw(path.c_str(), clear_entry_flags, 16, FTW_PHYS);
}

}  // namespace difftest
