#include "lease/socket_path.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "util/log.h"

namespace sealfs::lease {
namespace {

// A directory left empty may belong to a daemon between mkdtemp and bind.
constexpr time_t kEmptyDirGraceSeconds = 60;

const char* file_type_name(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a socket";
}

// "sealfs." and the six letters or digits mkdtemp puts in place of XXXXXX.
bool is_default_dir_name(const char* name) {
  static constexpr char kPrefix[] = "sealfs.";
  constexpr size_t kPrefixLength = sizeof(kPrefix) - 1;
  if (std::strncmp(name, kPrefix, kPrefixLength) != 0) return false;
  const char* rest = name + kPrefixLength;
  if (std::strlen(rest) != 6) return false;
  for (const char* p = rest; *p != '\0'; ++p) {
    const bool alnum = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                       (*p >= '0' && *p <= '9');
    if (!alnum) return false;
  }
  return true;
}

// The names in an open directory, without "." and "..".
std::vector<std::string> entries_of(int dir_fd) {
  std::vector<std::string> names;
  int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return names;
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    close(fd);
    return names;
  }
  while (dirent* e = readdir(dir)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      names.emplace_back(e->d_name);
    }
  }
  closedir(dir);
  return names;
}

// Whether an open directory is one of ours that no daemon uses any more; on
// the way, removes its dead socket.
bool empty_of_live_sockets(int dir_fd, const std::string& path) {
  struct stat st {};
  if (fstat(dir_fd, &st) != 0 || st.st_uid != geteuid()) return false;
  const std::vector<std::string> names = entries_of(dir_fd);
  if (names.empty()) return time(nullptr) - st.st_mtime > kEmptyDirGraceSeconds;
  if (names.size() != 1 || names[0] != "control") return false;  // not what we put there
  struct stat sock {};
  return fstatat(dir_fd, "control", &sock, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(sock.st_mode) &&
         socket_path_free(path + "/control").is_ok() && unlinkat(dir_fd, "control", 0) == 0;
}

// Removes base/name if it is one of our dead socket directories.
bool remove_if_dead(int base_fd, const std::string& base, const char* name) {
  int dir_fd = openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) return false;  // a symlink, gone, or not ours to read
  const std::string path = base + "/" + name;
  const bool dead = empty_of_live_sockets(dir_fd, path);
  close(dir_fd);
  if (!dead || unlinkat(base_fd, name, AT_REMOVEDIR) != 0) return false;
  log().info("removed {}, the control socket directory of a daemon that is gone", path);
  return true;
}

}  // namespace

Status socket_path_free(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::ok();
    return Status::from_errno(errno, "control socket " + path + ": " + std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status(Code::kExists, "control socket " + path + ": the path exists and is " +
                                     file_type_name(st.st_mode) +
                                     ", not a socket; refusing to replace it");
  }
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Status(Code::kNameTooLong, "control socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::from_errno(errno, "socket: " + std::string(std::strerror(errno)));
  const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int err = rc == 0 ? 0 : errno;
  close(fd);
  if (err == ECONNREFUSED) return Status::ok();  // nobody listens: a leftover
  if (err == 0 || err == EAGAIN || err == EINPROGRESS) {
    return Status(Code::kBusy, "control socket " + path +
                                   ": another process listens on it (another sealfs daemon?)");
  }
  return Status::from_errno(err, "control socket " + path + ": cannot tell whether it is in use: " +
                                     std::strerror(err));
}

Status clear_dead_socket(const std::string& path) {
  RETURN_IF_ERROR(socket_path_free(path));
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::from_errno(errno, "control socket " + path + ": cannot remove the dead socket: " +
                                         std::strerror(errno));
  }
  return Status::ok();
}

int remove_dead_socket_dirs(const std::string& base) {
  int base_fd = open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (base_fd < 0) return 0;
  int removed = 0;
  for (const std::string& name : entries_of(base_fd)) {
    if (is_default_dir_name(name.c_str()) && remove_if_dead(base_fd, base, name.c_str())) {
      ++removed;
    }
  }
  close(base_fd);
  return removed;
}

}  // namespace sealfs::lease
