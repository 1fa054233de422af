// The control socket against a hostile or careless local user: a path given
// with control_socket= that is not ours is never deleted, directories left
// by killed daemons are removed, and a flood of connections from an
// untrusted user leaves trusted holders' map requests working.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "lease_fixture.h"

namespace sealfs::itest {
namespace {

class ControlSocketTest : public LeaseFixture {
 protected:
  std::string control_socket_of(const std::string& file) {
    char value[256] = {};
    ssize_t n = getxattr(file.c_str(), "user.sealfs.control", value, sizeof(value) - 1);
    EXPECT_GT(n, 0) << std::strerror(errno);
    return n > 0 ? std::string(value, static_cast<size_t>(n)) : std::string();
  }

  // Polls the control-socket xattr, empty until the engine runs.
  bool wait_for_engine(const std::string& file, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char value[256];
    while (getxattr(file.c_str(), "user.sealfs.control", value, sizeof(value)) <= 0) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      usleep(10'000);  // nothing to wait on: the xattr has no notification
    }
    return true;
  }
};

TEST_F(ControlSocketTest, FileAtControlSocketPathIsRefusedAndKept) {
  ASSERT_NO_FATAL_FAILURE(format(MountConfig{}));
  const std::string file = dir() + "/not-a-socket";
  write_file(file, "precious\n");
  std::vector<std::string> argv = {sealfs_bin(), region_path(), mountpoint(), "-o",
                                   "control_socket=" + file};
  if (emulated()) argv.back() += ",emulate_pmem";
  std::string out;
  EXPECT_EQ(run_command(argv, &out), 1);
  EXPECT_NE(out.find("control socket " + file +
                     ": the path exists and is a regular file, not a socket"),
            std::string::npos)
      << out;
  EXPECT_EQ(read_file(file), "precious\n");
  if (is_mounted(mountpoint())) {
    ADD_FAILURE() << "the daemon mounted";
    run_command({"fusermount3", "-u", mountpoint()});
  }
}

// Another daemon's socket, in use, is not taken over: the second daemon (on
// a region of its own) refuses, and the first keeps serving maps.
TEST_F(ControlSocketTest, SocketInUseIsRefusedAndKeepsWorking) {
  const std::string socket_path = dir() + "/control";
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "control_socket=" + socket_path));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kMiB, 3));

  const std::string other_region = dir() + "/other.img";
  const std::string other_mnt = dir() + "/other-mnt";
  ASSERT_EQ(mkdir(other_mnt.c_str(), 0755), 0);
  std::string out;
  ASSERT_EQ(run_command({mkfs_bin(), "-q", "--size", "64M", other_region}, &out), 0) << out;
  out.clear();
  EXPECT_EQ(run_command({sealfs_bin(), other_region, other_mnt, "-o",
                         "control_socket=" + socket_path},
                        &out),
            1);
  EXPECT_NE(out.find("another process listens on it"), std::string::npos) << out;
  if (is_mounted(other_mnt)) {
    ADD_FAILURE() << "the second daemon mounted";
    run_command({"fusermount3", "-u", other_mnt});
  }

  HolderProcess& h = holder();
  MapReply r = h.map(path("f"), 0, kMiB, "r", 0, "ro");
  EXPECT_EQ(r.rc, 0) << r.text;
}

TEST_F(ControlSocketTest, DirectoryOfAKilledDaemonIsRemovedAtTheNextStart) {
  // The daemon puts its default socket under $XDG_RUNTIME_DIR when it owns
  // it; the fixture's daemon inherits this process's environment.
  const char* old = std::getenv("XDG_RUNTIME_DIR");
  const std::string saved = old != nullptr ? old : "";
  ASSERT_EQ(setenv("XDG_RUNTIME_DIR", dir().c_str(), 1), 0);
  struct Restore {
    bool had;
    std::string value;
    ~Restore() {
      if (had) {
        setenv("XDG_RUNTIME_DIR", value.c_str(), 1);
      } else {
        unsetenv("XDG_RUNTIME_DIR");
      }
    }
  } restore{old != nullptr, saved};

  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", 4096, 1));
  const std::string first = control_socket_of(path("f"));
  ASSERT_EQ(first.rfind(dir() + "/sealfs.", 0), 0u) << first;
  const std::string first_dir = std::filesystem::path(first).parent_path();

  ASSERT_NO_FATAL_FAILURE(kill_daemon());
  ASSERT_TRUE(std::filesystem::exists(first)) << "SIGKILL leaves the socket behind";

  ASSERT_NO_FATAL_FAILURE(mount());
  // The engine (which cleans up, then binds) starts just after the kernel
  // mount appears: wait for its socket.
  ASSERT_TRUE(wait_for_engine(path("f"), std::chrono::seconds(10)));
  EXPECT_FALSE(std::filesystem::exists(first_dir)) << first_dir;
  const std::string second = control_socket_of(path("f"));
  EXPECT_NE(second, first);
  EXPECT_TRUE(std::filesystem::exists(second)) << second;
  EXPECT_EQ(log_count("removed " + first_dir), 1u);
}

// ---- connection flood ----

// The flooding child writes and reads small decimal lines on pipes, using
// only async-signal-safe calls (the test process may have threads).
void put_line(int fd, const char* word, long value) {
  char buf[64];
  size_t n = 0;
  for (const char* p = word; *p != '\0'; ++p) buf[n++] = *p;
  buf[n++] = ' ';
  char digits[24];
  size_t d = 0;
  do {
    digits[d++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0);
  while (d > 0) buf[n++] = digits[--d];
  buf[n++] = '\n';
  ssize_t ignored = write(fd, buf, n);
  (void)ignored;
}

constexpr int kFloodConnections = 3000;

// In the child: as `uid`, opens kFloodConnections connections to `socket`
// and keeps them, then answers each byte on `in` with how many of them the
// daemon has closed.
[[noreturn]] void flood(const char* socket_path, uid_t uid, gid_t gid, int in, int out) {
  static int fds[kFloodConnections];
  struct rlimit nofile {8192, 8192};
  if (setrlimit(RLIMIT_NOFILE, &nofile) != 0 || setgroups(0, nullptr) != 0 ||
      setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
    _exit(126);
  }
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path, sizeof(addr.sun_path) - 1);
  int opened = 0;
  struct timespec start {};
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (opened < kFloodConnections) {
    struct timespec now {};
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec > 60) break;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      fds[opened++] = fd;
      continue;
    }
    close(fd);
    if (errno != EAGAIN) break;
    struct timespec pause {0, 200'000};  // the backlog is full: let the daemon accept
    nanosleep(&pause, nullptr);
  }
  put_line(out, "opened", opened);
  char c;
  while (read(in, &c, 1) == 1) {
    int closed = 0;
    for (int i = 0; i < opened; ++i) {
      char byte;
      // A connection the daemon closed reads as end of file.
      if (recv(fds[i], &byte, 1, MSG_DONTWAIT | MSG_PEEK) == 0) ++closed;
    }
    put_line(out, "closed", closed);
  }
  _exit(0);
}

class Flooder {
 public:
  Flooder(const std::string& socket_path, const TestUser& user) {
    int to[2], from[2];
    EXPECT_EQ(pipe2(to, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(from, O_CLOEXEC), 0);
    pid_ = fork();
    if (pid_ == 0) flood(socket_path.c_str(), user.uid, user.gid, to[0], from[1]);
    close(to[0]);
    close(from[1]);
    to_ = to[1];
    from_ = from[0];
  }
  ~Flooder() {
    close(to_);
    close(from_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // The number after `word` on the child's next line; -1 on timeout.
  long expect(const std::string& word, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        if (line.rfind(word + " ", 0) != 0) return -1;
        return std::strtol(line.c_str() + word.size() + 1, nullptr, 10);
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return -1;
      struct pollfd p {from_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) != 1) return -1;
      char chunk[256];
      ssize_t n = read(from_, chunk, sizeof(chunk));
      if (n <= 0) return -1;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  long closed_now() {
    EXPECT_EQ(write(to_, "?", 1), 1);
    return expect("closed", std::chrono::seconds(30));
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buffer_;
};

// The daemon starts with the common soft limit of 1024 descriptors (the
// hard limit above it): more connections than that would exhaust it.
TEST_F(ControlSocketTest, FloodFromAnUntrustedUserLeavesTrustedMapsWorking) {
  auto user = test_user();
  ASSERT_TRUE(user.has_value());
  struct rlimit saved {};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_GT(saved.rlim_max, rlim_t{kFloodConnections} * 2) << "the test needs a higher hard limit";
  struct rlimit low = saved;
  low.rlim_cur = 1024;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  mount_with(2);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_FALSE(HasFatalFailure());
  // The daemon raised its soft limit to the hard one.
  std::istringstream limits(read_file("/proc/" + std::to_string(daemon_pid()) + "/limits"));
  std::string line;
  while (std::getline(limits, line) && line.rfind("Max open files", 0) != 0) {
  }
  std::istringstream fields(line.substr(std::strlen("Max open files")));
  unsigned long long soft = 0, hard = 0;
  fields >> soft >> hard;
  EXPECT_EQ(soft, static_cast<unsigned long long>(saved.rlim_max)) << line;
  EXPECT_EQ(hard, soft) << line;
  ASSERT_NO_FATAL_FAILURE(make_file("f", kMiB, 5));
  ASSERT_TRUE(wait_for_engine(path("f"), std::chrono::seconds(10)));
  const std::string socket_path = control_socket_of(path("f"));
  ASSERT_FALSE(socket_path.empty());

  Flooder flooder(socket_path, *user);
  const long opened = flooder.expect("opened", std::chrono::seconds(90));
  ASSERT_EQ(opened, kFloodConnections) << "the flood could not connect";

  // A trusted holder maps while the attacker holds all it may.
  HolderProcess& h = holder();
  MapReply r = h.map(path("f"), 0, kMiB, "rw");
  ASSERT_EQ(r.rc, 0) << r.text;
  h.send("check 0 0 " + std::to_string(kMiB) + " 5");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  EXPECT_FALSE(wait_child(daemon_pid(), std::chrono::milliseconds(0)).has_value())
      << "the daemon died";

  // At most 64 of the attacker's connections were kept...
  long closed = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    closed = flooder.closed_now();
  } while (opened - closed > 64 && std::chrono::steady_clock::now() < deadline);
  EXPECT_LE(opened - closed, 64) << closed << " of " << opened << " closed";
  std::printf("flood: %ld connections opened, %ld kept by the daemon\n", opened, opened - closed);
  // ...and those are dropped once idle (10 s).
  const auto idle_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (closed < opened && std::chrono::steady_clock::now() < idle_deadline) {
    usleep(500'000);  // polling the child's count; nothing to wait on
    closed = flooder.closed_now();
  }
  EXPECT_EQ(closed, opened) << "idle untrusted connections were kept";

  // A few warnings for that uid, not thousands.
  const size_t warnings = log_count("uid " + std::to_string(user->uid));
  EXPECT_GE(warnings, 1u);
  EXPECT_LE(warnings, 3u) << read_file(log_path()).substr(0, 4096);
  std::printf("flood: %zu warning lines for uid %u in the daemon log\n", warnings,
              static_cast<unsigned>(user->uid));

  // The trusted holder still works after the flood.
  MapReply again = h.map(path("f"), 0, kMiB, "r", 0, "ro");
  EXPECT_EQ(again.rc, 0) << again.text;
}

}  // namespace
}  // namespace sealfs::itest
