// The control socket against a hostile or careless local user: a path given
// with control_socket= that is not ours is never deleted, and directories
// left by killed daemons are removed.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

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

  size_t log_count(const std::string& needle) {
    const std::string log = read_file(log_path());
    size_t count = 0;
    for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) {
      ++count;
    }
    return count;
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

}  // namespace
}  // namespace sealfs::itest
