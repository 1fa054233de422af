#include "mount_fixture.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/mountinfo.h"

namespace sealfs::itest {
namespace {

using namespace std::chrono_literals;

std::string env_or_fail(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    ADD_FAILURE() << name << " is not set (meson sets it for the integration suite)";
    return "";
  }
  return v;
}

std::vector<char*> c_argv(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& a : args) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

// In a forked child: become uid/gid for good. Async-signal-safe calls only.
void drop_to(uid_t uid, gid_t gid) {
  if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
      setresuid(uid, uid, uid) != 0) {
    _exit(126);
  }
}

bool child_exited(pid_t pid) {
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return true;  // not our child any more
  }
  return info.si_pid == pid;
}

std::string tail_of(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  return "[... " + std::to_string(text.size() - max) + " bytes cut ...]\n" +
         text.substr(text.size() - max);
}

}  // namespace

int run_command(const std::vector<std::string>& argv_in, std::string* output,
                std::optional<uid_t> uid, gid_t gid, const std::vector<std::string>& extra_env) {
  std::vector<std::string> args = argv_in;
  std::vector<char*> argv = c_argv(args);
  std::vector<std::string> env_strings = extra_env;
  int fds[2] = {-1, -1};
  if (output != nullptr && pipe2(fds, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (output != nullptr) {
      dup2(fds[1], STDOUT_FILENO);
      dup2(fds[1], STDERR_FILENO);
    }
    for (auto& e : env_strings) putenv(e.data());
    if (uid) drop_to(*uid, gid);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  if (output != nullptr) {
    close(fds[1]);
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0) output->append(buf, static_cast<size_t>(n));
    }
    close(fds[0]);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

bool is_mounted(const std::string& mountpoint) {
  auto mounts = read_mountinfo();
  if (!mounts.is_ok()) return false;
  for (const MountInfoEntry& m : *mounts) {
    if (m.mount_point == mountpoint && m.fstype == "fuse.sealfs") return true;
  }
  return false;
}

bool wait_for_mount_state(const std::string& mountpoint, bool mounted,
                          std::chrono::milliseconds timeout, pid_t watched) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // mountinfo signals POLLPRI when the mount table changes; a read resets it.
  int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  char buf[8192];
  while (true) {
    if (fd >= 0) {
      lseek(fd, 0, SEEK_SET);
      while (read(fd, buf, sizeof buf) > 0) {
      }
    }
    if (is_mounted(mountpoint) == mounted) {
      if (fd >= 0) close(fd);
      return true;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline || (watched > 0 && child_exited(watched))) break;
    // Short enough to notice the watched child dying, which mountinfo
    // does not signal.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    int wait_ms = static_cast<int>(std::min<int64_t>(left.count(), 50));
    if (fd >= 0) {
      pollfd p{fd, POLLPRI, 0};
      poll(&p, 1, wait_ms);
    } else {
      usleep(static_cast<useconds_t>(wait_ms) * 1000);
    }
  }
  if (fd >= 0) close(fd);
  return is_mounted(mountpoint) == mounted;
}

std::optional<int> wait_child(pid_t pid, std::chrono::milliseconds timeout) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    int rc;
    do {
      rc = poll(&p, 1, static_cast<int>(timeout.count()));
    } while (rc < 0 && errno == EINTR);
    close(pidfd);
    if (rc == 0) return std::nullopt;
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return std::nullopt;
  return status;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

const std::string& MountFixture::sealfs_bin() {
  static const std::string bin = env_or_fail("SEALFS_BIN");
  return bin;
}

const std::string& MountFixture::mkfs_bin() {
  static const std::string bin = env_or_fail("MKFS_BIN");
  return bin;
}

const std::string& MountFixture::fsck_bin() {
  static const std::string bin = env_or_fail("FSCK_BIN");
  return bin;
}

const std::string& MountFixture::test_directory() {
  static const std::string directory = [] {
    const char* v = std::getenv("SEALFS_TEST_DIRECTORY");
    return std::string(v != nullptr ? v : "");
  }();
  return directory;
}

bool MountFixture::needs_own_daemon(const char* what) const {
  if (test_directory().empty()) return false;
  ADD_FAILURE() << what << " needs the fixture's own daemon, which SEALFS_TEST_DIRECTORY="
                << test_directory() << " mode does not start: leave this test out there";
  return true;
}

size_t MountFixture::log_count(const std::string& needle) const {
  if (needs_own_daemon("log_count()")) return 0;
  const std::string log = read_file(log_path_);
  size_t count = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

void MountFixture::SetUp() {
  const bool in_directory = !test_directory().empty();
  if (!in_directory && access("/dev/fuse", F_OK) != 0) GTEST_SKIP() << "/dev/fuse is missing";
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                      "/sealfs-it-XXXXXX";
  ASSERT_NE(mkdtemp(templ.data()), nullptr) << std::strerror(errno);
  dir_ = templ;
  log_path_ = dir_ + "/sealfs.log";
  if (in_directory) {
    // The test's files live in a fresh subdirectory of the given one; dir_
    // stays in TMPDIR, on another filesystem (RenameRules' EXDEV needs one).
    std::string sub = test_directory() + "/sealfs-it-XXXXXX";
    ASSERT_NE(mkdtemp(sub.data()), nullptr) << test_directory() << ": " << std::strerror(errno);
    mountpoint_ = sub;
    return;
  }
  mountpoint_ = dir_ + "/mnt";
  region_path_ = dir_ + "/region.img";
  std::string shm_templ = "/dev/shm/sealfs-it-XXXXXX";
  if (access("/dev/shm", W_OK) == 0 && mkdtemp(shm_templ.data()) != nullptr) {
    shm_dir_ = shm_templ;
  }
  ASSERT_EQ(mkdir(mountpoint_.c_str(), 0755), 0) << std::strerror(errno);
}

void MountFixture::TearDown() {
  if (dir_.empty()) return;
  std::error_code ec;
  if (!test_directory().empty()) {
    if (!mountpoint_.empty()) {
      std::filesystem::remove_all(mountpoint_, ec);
      EXPECT_FALSE(ec) << "removing " << mountpoint_ << ": " << ec.message();
    }
    std::filesystem::remove_all(dir_, ec);
    return;
  }
  force_cleanup();
  if (HasFailure()) {
    std::string log = read_file(log_path_);
    std::fprintf(stderr, "---- sealfs daemon log (%s) ----\n%s---- end of daemon log ----\n",
                 log_path_.c_str(), tail_of(log, 64 * 1024).c_str());
  }
  if (!is_mounted(mountpoint_)) std::filesystem::remove_all(dir_, ec);
  if (!shm_dir_.empty()) std::filesystem::remove_all(shm_dir_, ec);
}

void MountFixture::format(const MountConfig& config) {
  if (needs_own_daemon("format()")) return;
  config_ = config;
  region_path_ = (!config_.region_dir.empty() ? config_.region_dir
                  : emulated()                  ? shm_dir_
                                                : dir_) +
                 "/region.img";
  if (config_.uid && !shm_dir_.empty()) {
    ASSERT_EQ(chown(shm_dir_.c_str(), *config_.uid, config_.gid), 0) << std::strerror(errno);
  }
  if (config_.uid) {
    ASSERT_EQ(chown(dir_.c_str(), *config_.uid, config_.gid), 0) << std::strerror(errno);
    ASSERT_EQ(chown(mountpoint_.c_str(), *config_.uid, config_.gid), 0);
    ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  }
  int fd = open(region_path_.c_str(), O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(config_.region_size)), 0) << std::strerror(errno);
  close(fd);
  if (config_.uid) {
    ASSERT_EQ(chown(region_path_.c_str(), *config_.uid, config_.gid), 0);
  }

  std::vector<std::string> argv = {mkfs_bin()};
  argv.insert(argv.end(), config_.mkfs_args.begin(), config_.mkfs_args.end());
  argv.push_back(region_path_);
  std::string output;
  int rc = run_command(argv, &output, config_.uid, config_.gid);
  ASSERT_EQ(rc, 0) << "mkfs.sealfs failed:\n" << output;
}

void MountFixture::format_and_mount(const MountConfig& config) {
  if (!test_directory().empty()) {
    // The default region and options are what the directory's server
    // stands for; a test that asks for others needs a region of its own.
    const MountConfig plain;
    if (config.region_size != plain.region_size || !config.mkfs_args.empty() ||
        !config.options.empty() || config.uid || config.on_disk || !config.region_dir.empty()) {
      needs_own_daemon("format_and_mount() with a config of its own");
    }
    return;
  }
  ASSERT_NO_FATAL_FAILURE(format(config));
  ASSERT_NO_FATAL_FAILURE(mount());
}

void MountFixture::mount() {
  if (needs_own_daemon("mount()")) return;
  ASSERT_LT(daemon_pid_, 0) << "already mounted";
  std::vector<std::string> args = {sealfs_bin(), "-f", "--log-level=debug", region_path_,
                                   mountpoint_};
  std::string options = config_.options;
  if (emulated()) options = options.empty() ? "emulate_pmem" : "emulate_pmem," + options;
  if (!options.empty()) {
    args.push_back("-o");
    args.push_back(options);
  }
  std::vector<char*> argv = c_argv(args);
  std::string banner = "==== mount " + std::to_string(++mount_count_) + " ====\n";
  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(log_fd, 0) << std::strerror(errno);
  ASSERT_EQ(write(log_fd, banner.data(), banner.size()), static_cast<ssize_t>(banner.size()));
  std::optional<uid_t> uid = config_.uid;
  gid_t gid = config_.gid;
  pid_t pid = fork();
  ASSERT_GE(pid, 0) << std::strerror(errno);
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    if (uid) drop_to(*uid, gid);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  daemon_pid_ = pid;
  if (!wait_for_mount_state(mountpoint_, true, 20s, pid)) {
    auto status = wait_child(pid, 0ms);
    if (status) daemon_pid_ = -1;
    FAIL() << "sealfs did not mount " << mountpoint_
           << (status ? " (the daemon exited, status " + std::to_string(*status) + ")" : "");
  }
}

void MountFixture::unmount() {
  if (needs_own_daemon("unmount()")) return;
  ASSERT_GT(daemon_pid_, 0) << "not mounted";
  std::string output;
  int rc = run_command({"fusermount3", "-u", mountpoint_}, &output, config_.uid, config_.gid);
  ASSERT_EQ(rc, 0) << "fusermount3 -u failed: " << output;
  auto status = wait_child(daemon_pid_, 60s);
  ASSERT_TRUE(status.has_value()) << "daemon did not exit after unmount";
  daemon_pid_ = -1;
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << "daemon exit status " << *status;
  ASSERT_FALSE(is_mounted(mountpoint_));
}

void MountFixture::kill_daemon() {
  if (needs_own_daemon("kill_daemon()")) return;
  ASSERT_GT(daemon_pid_, 0) << "not mounted";
  ASSERT_EQ(kill(daemon_pid_, SIGKILL), 0);
  auto status = wait_child(daemon_pid_, 30s);
  ASSERT_TRUE(status.has_value());
  daemon_pid_ = -1;
  std::string output;
  int rc = run_command({"fusermount3", "-u", "-z", mountpoint_}, &output, config_.uid,
                       config_.gid);
  ASSERT_EQ(rc, 0) << "fusermount3 -u -z failed: " << output;
  ASSERT_TRUE(wait_for_mount_state(mountpoint_, false, 10s));
}

std::optional<int> MountFixture::signal_daemon(int sig) {
  if (needs_own_daemon("signal_daemon()")) return std::nullopt;
  if (daemon_pid_ <= 0) {
    ADD_FAILURE() << "not mounted";
    return std::nullopt;
  }
  if (kill(daemon_pid_, sig) != 0) return std::nullopt;
  auto status = wait_child(daemon_pid_, 30s);
  if (status) daemon_pid_ = -1;
  return status;
}

void MountFixture::force_cleanup() {
  if (daemon_pid_ > 0) {
    std::string output;
    if (run_command({"fusermount3", "-u", mountpoint_}, &output, config_.uid, config_.gid) != 0) {
      // Busy (a test left something open): detach the mount and stop the
      // daemon by signal instead.
      ADD_FAILURE() << "fusermount3 -u failed at teardown: " << output;
      if (umount2(mountpoint_.c_str(), MNT_DETACH) != 0) {
        run_command({"fusermount3", "-u", "-z", mountpoint_}, nullptr, config_.uid,
                    config_.gid);
      }
      kill(daemon_pid_, SIGTERM);
    }
    auto status = wait_child(daemon_pid_, 60s);
    if (!status) {
      ADD_FAILURE() << "daemon did not exit after unmount; killing it";
      kill(daemon_pid_, SIGKILL);
      wait_child(daemon_pid_, 30s);
    }
    daemon_pid_ = -1;
  }
  if (is_mounted(mountpoint_)) {
    if (umount2(mountpoint_.c_str(), MNT_DETACH) != 0) {
      run_command({"fusermount3", "-u", "-z", mountpoint_}, nullptr, config_.uid, config_.gid);
    }
  }
}

std::string MountFixture::path(std::string_view relative) const {
  return mountpoint_ + "/" + std::string(relative);
}

}  // namespace sealfs::itest

#include "fs_helpers.h"

namespace sealfs::itest {
namespace {

bool digest_into(const std::string& root, const std::string& rel,
                 std::map<std::string, std::string>* out, std::string* error) {
  std::string dir = rel.empty() ? root : root + "/" + rel;
  int err = 0;
  auto names = list_dir(dir, &err);
  if (err != 0) {
    *error = "readdir " + dir + ": " + std::strerror(err);
    return false;
  }
  for (const auto& name : names) {
    std::string child_rel = rel.empty() ? name : rel + "/" + name;
    std::string child = root + "/" + child_rel;
    struct stat st {};
    if (lstat(child.c_str(), &st) != 0) {
      *error = "lstat " + child + ": " + std::strerror(errno);
      return false;
    }
    if (S_ISDIR(st.st_mode)) {
      (*out)[child_rel] = "dir";
      if (!digest_into(root, child_rel, out, error)) return false;
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlink(child.c_str(), target, sizeof target);
      if (n < 0) {
        *error = "readlink " + child + ": " + std::strerror(errno);
        return false;
      }
      (*out)[child_rel] = "link:" + std::string(target, static_cast<size_t>(n));
    } else if (S_ISREG(st.st_mode)) {
      int fd = open(child.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        *error = "open " + child + ": " + std::strerror(errno);
        return false;
      }
      std::vector<char> buf(1 << 20);
      uint64_t h = fnv1a(nullptr, 0);
      uint64_t total = 0;
      while (true) {
        ssize_t n = read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          *error = "read " + child + ": " + std::strerror(errno);
          close(fd);
          return false;
        }
        if (n == 0) break;
        h = fnv1a(buf.data(), static_cast<size_t>(n), h);
        total += static_cast<uint64_t>(n);
      }
      close(fd);
      if (total != static_cast<uint64_t>(st.st_size)) {
        *error = child + ": read " + std::to_string(total) + " bytes of " +
                 std::to_string(st.st_size);
        return false;
      }
      (*out)[child_rel] = "file:" + std::to_string(total) + ":" + std::to_string(h);
    } else {
      (*out)[child_rel] = "special:" + std::to_string(st.st_mode & S_IFMT);
    }
  }
  return true;
}

}  // namespace

bool digest_tree(const std::string& root, std::map<std::string, std::string>* out,
                 std::string* error) {
  out->clear();
  return digest_into(root, "", out, error);
}

std::optional<TestUser> test_user() {
  const char* env = std::getenv("SEALFS_TEST_USER");
  std::string name = env != nullptr && *env != '\0' ? env : "sealfs-test";
  if (getpwnam(name.c_str()) == nullptr) {
    std::string out;
    if (run_command({"useradd", "-m", name}, &out) != 0) {
      ADD_FAILURE() << "useradd " << name << ": " << out;
      return std::nullopt;
    }
  }
  struct passwd* pw = getpwnam(name.c_str());
  if (pw == nullptr || pw->pw_uid == 0) return std::nullopt;
  return TestUser{name, pw->pw_uid, pw->pw_gid};
}

}  // namespace sealfs::itest
