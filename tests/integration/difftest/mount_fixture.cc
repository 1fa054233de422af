#include "mount_fixture.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>

namespace difftest {
namespace {

using Clock = std::chrono::steady_clock;

std::string dirname_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool executable(const std::string& path) { return !path.empty() && access(path.c_str(), X_OK) == 0; }

std::string from_env(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      out += static_cast<char>(std::stoi(field.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

int open_pidfd(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// Waits for the child behind `pidfd` up to `timeout_ms`; its exit status, or
// -1 if it is still running.
int wait_exit(pid_t pid, int pidfd, int timeout_ms) {
  pollfd pfd{pidfd, POLLIN, 0};
  if (poll(&pfd, 1, timeout_ms) <= 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  int null_fd = open("/dev/null", O_RDONLY);
  dup2(null_fd, 0);
  if (!log_path.empty()) {
    int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
  }
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
  _exit(127);
}

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  remove(path);
  return 0;
}

}  // namespace

std::string Binaries::missing() const {
  std::string out;
  for (const auto& [name, path] : {std::pair{"sealfs", sealfs}, std::pair{"mkfs.sealfs", mkfs},
                                   std::pair{"difftest", difftest}}) {
    if (!executable(path)) out += std::string(out.empty() ? "" : ", ") + name + " (" + path + ")";
  }
  return out;
}

Binaries locate_binaries() {
  char self[PATH_MAX] = {};
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string here = n > 0 ? dirname_of(std::string(self, static_cast<size_t>(n))) : ".";
  // This binary lives in BUILD/tests/integration/difftest.
  std::string build = dirname_of(dirname_of(dirname_of(here)));
  Binaries bins;
  bins.sealfs = from_env("SEALFS_BIN", build + "/src/fuse/sealfs");
  bins.mkfs = from_env("MKFS_BIN", build + "/src/tools/mkfs.sealfs");
  bins.difftest = from_env("DIFFTEST_BIN", here + "/difftest");
  return bins;
}

int run_process(const std::vector<std::string>& argv, const std::string& log_path,
                int timeout_s) {
  pid_t pid = spawn(argv, log_path);
  if (pid < 0) return -1;
  int pidfd = open_pidfd(pid);
  int status = wait_exit(pid, pidfd, timeout_s * 1000);
  if (status < 0) {
    std::fprintf(stderr, "%s: still running after %d s, killing it\n", argv[0].c_str(),
                 timeout_s);
    kill(pid, SIGKILL);
    wait_exit(pid, pidfd, -1);
  }
  close(pidfd);
  return status;
}

bool is_mounted(const std::string& mountpoint) {
  char resolved[PATH_MAX];
  if (realpath(mountpoint.c_str(), resolved) == nullptr) return false;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint ...
    size_t pos = 0;
    for (int field = 0; field < 4 && pos != std::string::npos; ++field) {
      pos = line.find(' ', pos);
      if (pos != std::string::npos) ++pos;
    }
    if (pos == std::string::npos) continue;
    if (unescape(line.substr(pos, line.find(' ', pos) - pos)) == resolved) return true;
  }
  return false;
}

void remove_tree(const std::string& path) {
  nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

std::string tail_of(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) out += "  | " + l + "\n";
  return out;
}

SealfsMount::~SealfsMount() {
  if (pid_ > 0) {
    std::string error = unmount();
    if (!error.empty()) std::fprintf(stderr, "cleanup: %s\n", error.c_str());
  }
}

std::string SealfsMount::mount(const std::string& sealfs_bin, const std::string& region,
                               const std::string& mountpoint, const std::string& options,
                               const std::string& log_path) {
  mountpoint_ = mountpoint;
  log_path_ = log_path;
  std::vector<std::string> argv = {sealfs_bin, "-f"};
  if (!options.empty()) argv.insert(argv.end(), {"-o", options});
  argv.insert(argv.end(), {region, mountpoint});

  // mountinfo signals POLLPRI whenever the mount table changes, and the
  // pidfd turns readable if the daemon dies first: no polling loop on a timer.
  int mounts = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  pid_ = spawn(argv, log_path);
  if (pid_ < 0) return "fork failed";
  pidfd_ = open_pidfd(pid_);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  std::string error;
  while (!is_mounted(mountpoint)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      error = "no mount at " + mountpoint + " after 30 s";
      break;
    }
    pollfd fds[2] = {{mounts, POLLPRI, 0}, {pidfd_, POLLIN, 0}};
    poll(fds, 2, static_cast<int>(left.count()));
    if (fds[1].revents & POLLIN) {
      int status = wait_exit(pid_, pidfd_, 0);
      close(pidfd_);
      pid_ = -1;
      pidfd_ = -1;
      error = "sealfs exited with status " + std::to_string(status) + " before mounting";
      break;
    }
  }
  close(mounts);
  if (!error.empty()) {
    if (pid_ > 0) unmount();
    return error + "\n" + tail_of(log_path);
  }
  return "";
}

std::string SealfsMount::unmount() {
  if (pid_ < 0) return "";
  std::string error;
  if (is_mounted(mountpoint_)) {
    int rc = geteuid() == 0 ? ::umount2(mountpoint_.c_str(), 0)
                            : run_process({"/usr/bin/fusermount3", "-u", mountpoint_}, "", 30);
    if (rc != 0) {
      error = "unmount of " + mountpoint_ + " failed (" + std::strerror(errno) +
              "); detaching it lazily";
      if (geteuid() == 0) {
        ::umount2(mountpoint_.c_str(), MNT_DETACH);
      } else {
        run_process({"/usr/bin/fusermount3", "-u", "-z", mountpoint_}, "", 30);
      }
    }
  }
  int status = wait_exit(pid_, pidfd_, 30 * 1000);
  if (status < 0) {
    kill(pid_, SIGKILL);
    wait_exit(pid_, pidfd_, -1);
    error += (error.empty() ? "" : "; ") + std::string("sealfs did not exit after unmount");
  } else if (status != 0) {
    error += (error.empty() ? "" : "; ") + std::string("sealfs exited with status ") +
             std::to_string(status);
  }
  close(pidfd_);
  pid_ = -1;
  pidfd_ = -1;
  return error.empty() ? "" : error + "\n" + tail_of(log_path_);
}

}  // namespace difftest
