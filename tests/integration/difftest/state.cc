#include "state.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

namespace difftest {

std::string errno_name(int err) {
  if (err == kSigbus) return "SIGBUS";
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "errno " + std::to_string(err);
}

std::string describe(const Outcome& outcome) {
  std::string text = "ret=" + std::to_string(outcome.ret);
  if (outcome.ret < 0) text += " " + errno_name(outcome.err);
  if (!outcome.data.empty()) {
    bool printable = outcome.data.size() <= 120 &&
                     std::all_of(outcome.data.begin(), outcome.data.end(),
                                 [](char c) { return c == '\n' || (c >= 32 && c < 127); });
    if (printable) {
      std::string shown = outcome.data;
      std::replace(shown.begin(), shown.end(), '\n', '|');
      text += " data=\"" + shown + "\"";
    } else {
      text += " data=" + std::to_string(outcome.data.size()) + " bytes";
    }
  }
  return text;
}

std::string describe_difference(const Outcome& a, const Outcome& b) {
  if (a.ret != b.ret || a.err != b.err) return "A: " + describe(a) + "\n  B: " + describe(b);
  size_t at = 0;
  while (at < a.data.size() && at < b.data.size() && a.data[at] == b.data[at]) ++at;
  char bytes[96];
  auto byte_at = [](const std::string& s, size_t i) {
    return i < s.size() ? static_cast<unsigned>(static_cast<unsigned char>(s[i])) : 256u;
  };
  std::snprintf(bytes, sizeof bytes, "first difference at byte %zu: A=0x%02x B=0x%02x", at,
                byte_at(a.data, at), byte_at(b.data, at));
  return "A: " + describe(a) + "\n  B: " + describe(b) + "\n  " + bytes +
         " (0x100 = past the end)";
}

std::string describe_stat(const struct stat& st) {
  char text[160];
  std::snprintf(text, sizeof text, "mode=0%o nlink=%lu uid=%u gid=%u", st.st_mode,
                static_cast<unsigned long>(st.st_nlink), st.st_uid, st.st_gid);
  std::string out = text;
  if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) out += " size=" + std::to_string(st.st_size);
  return out;
}

static char type_letter(unsigned char d_type, mode_t mode) {
  if (d_type == DT_UNKNOWN) {
    if (S_ISDIR(mode)) return 'd';
    if (S_ISLNK(mode)) return 'l';
    if (S_ISREG(mode)) return 'f';
    return '?';
  }
  switch (d_type) {
    case DT_DIR: return 'd';
    case DT_LNK: return 'l';
    case DT_REG: return 'f';
    default: return '?';
  }
}

Outcome list_directory(const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return capture(-1);
  std::vector<std::string> lines;
  errno = 0;
  while (dirent* entry = readdir(dir)) {
    if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
    struct stat st {};
    if (entry->d_type == DT_UNKNOWN) lstat((path + "/" + entry->d_name).c_str(), &st);
    lines.push_back(std::string(entry->d_name) + " " + type_letter(entry->d_type, st.st_mode));
    errno = 0;
  }
  int err = errno;
  closedir(dir);
  if (err != 0) {
    errno = err;
    return capture(-1);
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return Outcome{0, 0, out};
}

static bool visible_user_name(const char* name) {
  return std::strncmp(name, "user.", 5) == 0 && std::strncmp(name, "user.sealfs.", 12) != 0;
}

static Outcome xattr_names(const std::string& path, bool follow, std::vector<std::string>* names) {
  std::vector<char> buf(64 * 1024);
  ssize_t n = follow ? listxattr(path.c_str(), buf.data(), buf.size())
                     : llistxattr(path.c_str(), buf.data(), buf.size());
  if (n < 0) return capture(-1);
  for (ssize_t i = 0; i < n;) {
    const char* name = buf.data() + i;
    if (visible_user_name(name)) names->push_back(name);
    i += static_cast<ssize_t>(std::strlen(name)) + 1;
  }
  std::sort(names->begin(), names->end());
  return Outcome{};
}

Outcome list_user_xattr_names(const std::string& path) {
  std::vector<std::string> names;
  Outcome out = xattr_names(path, true, &names);
  for (const auto& name : names) out.data += name + "\n";
  return out;
}

Outcome list_user_xattrs(const std::string& path) {
  std::vector<std::string> names;
  Outcome out = xattr_names(path, false, &names);
  if (out.ret < 0) return out;
  std::vector<char> value(64 * 1024);
  for (const auto& name : names) {
    ssize_t n = lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    out.data += name + "=";
    if (n < 0) {
      out.data += "<" + errno_name(errno) + ">\n";
      continue;
    }
    static const char kHex[] = "0123456789abcdef";
    for (ssize_t i = 0; i < n; ++i) {
      auto byte = static_cast<unsigned char>(value[i]);
      out.data += kHex[byte >> 4];
      out.data += kHex[byte & 15];
    }
    out.data += "\n";
  }
  return out;
}

Outcome read_whole(int fd) {
  std::string data;
  std::vector<char> buf(256 * 1024);
  off_t offset = 0;
  for (;;) {
    ssize_t n = pread(fd, buf.data(), buf.size(), offset);
    if (n < 0) return capture(-1);
    if (n == 0) break;
    data.append(buf.data(), static_cast<size_t>(n));
    offset += n;
  }
  return Outcome{static_cast<long long>(data.size()), 0, std::move(data)};
}

static std::string mismatch(const std::string& rel, const char* what, const Outcome& a,
                            const Outcome& b) {
  return "\"" + rel + "\" " + what + " differs:\n  " + describe_difference(a, b);
}

static Outcome node_content(const std::string& path, mode_t mode) {
  if (S_ISREG(mode)) {
    int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return capture(-1);
    Outcome out = read_whole(fd);
    close(fd);
    return out;
  }
  if (S_ISLNK(mode)) {
    char target[4096];
    ssize_t n = readlink(path.c_str(), target, sizeof target);
    return capture(n, n > 0 ? std::string(target, static_cast<size_t>(n)) : std::string());
  }
  if (S_ISDIR(mode)) return list_directory(path);
  return Outcome{};
}

std::string compare_node(const std::string& a, const std::string& b, const std::string& rel,
                         bool xattrs, bool acls, bool inode_flags) {
  struct stat sa {}, sb {};
  Outcome la = capture(lstat(a.c_str(), &sa));
  Outcome lb = capture(lstat(b.c_str(), &sb));
  if (la.ret == 0) la.data = describe_stat(sa);
  if (lb.ret == 0) lb.data = describe_stat(sb);
  if (!(la == lb)) return mismatch(rel, "lstat", la, lb);
  if (la.ret < 0) return "";

  Outcome ca = node_content(a, sa.st_mode);
  Outcome cb = node_content(b, sb.st_mode);
  if (!(ca == cb)) return mismatch(rel, S_ISDIR(sa.st_mode) ? "listing" : "content", ca, cb);

  if (xattrs && (S_ISREG(sa.st_mode) || S_ISDIR(sa.st_mode))) {
    Outcome xa = list_user_xattrs(a);
    Outcome xb = list_user_xattrs(b);
    if (!(xa == xb)) return mismatch(rel, "xattrs", xa, xb);
  }
  if (acls && (S_ISREG(sa.st_mode) || S_ISDIR(sa.st_mode))) {
    Outcome acl_a = read_acl(a, "system.posix_acl_access");
    Outcome acl_b = read_acl(b, "system.posix_acl_access");
    if (!(acl_a == acl_b)) return mismatch(rel, "access ACL", acl_a, acl_b);
    if (S_ISDIR(sa.st_mode)) {
      acl_a = read_acl(a, "system.posix_acl_default");
      acl_b = read_acl(b, "system.posix_acl_default");
      if (!(acl_a == acl_b)) return mismatch(rel, "default ACL", acl_a, acl_b);
    }
  }
  if (inode_flags && (S_ISREG(sa.st_mode) || S_ISDIR(sa.st_mode))) {
    Outcome fa = read_inode_flags(a);
    Outcome fb = read_inode_flags(b);
    if (!(fa == fb)) return mismatch(rel, "inode flags", fa, fb);
  }
  return "";
}

std::string compare_tree(const std::string& a, const std::string& b, const std::string& rel,
                         bool xattrs, bool acls, bool inode_flags) {
  std::string diff = compare_node(a, b, rel, xattrs, acls, inode_flags);
  if (!diff.empty()) return diff;
  struct stat st {};
  if (lstat(a.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return "";
  // The listings already agree, so A's names are B's names.
  Outcome listing = list_directory(a);
  size_t start = 0;
  while (start < listing.data.size()) {
    size_t end = listing.data.find('\n', start);
    std::string line = listing.data.substr(start, end - start);
    start = end + 1;
    std::string name = line.substr(0, line.rfind(' '));
    std::string child_rel = rel.empty() ? name : rel + "/" + name;
    diff = compare_tree(a + "/" + name, b + "/" + name, child_rel, xattrs, acls, inode_flags);
    if (!diff.empty()) return diff;
  }
  return "";
}

std::string compare_open_files(int fd_a, int fd_b, int reader_a, int reader_b) {
  struct stat sa {}, sb {};
  Outcome fa = capture(fstat(fd_a, &sa));
  Outcome fb = capture(fstat(fd_b, &sb));
  if (fa.ret == 0) fa.data = describe_stat(sa);
  if (fb.ret == 0) fb.data = describe_stat(sb);
  if (!(fa == fb)) return mismatch("<open file>", "fstat", fa, fb);
  if (reader_a < 0 || reader_b < 0) return "";
  Outcome ca = read_whole(reader_a);
  Outcome cb = read_whole(reader_b);
  if (!(ca == cb)) return mismatch("<open file>", "content", ca, cb);
  return "";
}

}  // namespace difftest
