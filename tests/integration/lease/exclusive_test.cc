// Exclusive leases (SEALFS_MAP_EXCLUSIVE) on a real mount: refused while
// another process has the file open, broken when one opens it (that open
// returns only once the holder let go), and never troubled by the holder's
// own opens. libsealfs-preload asks for nothing else.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "lease_fixture.h"
#include "pattern.h"
#include "sealfs/sealfs.h"

namespace sealfs::itest {
namespace {

class ExclusiveTest : public LeaseFixture {};

constexpr uint64_t kFile = 1 * kMiB;

// open(2) of `path` read-only, as another process's reader would, then
// close: 0, or -1 with errno.
int open_then_close(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

TEST_F(ExclusiveTest, AnotherProcessesOpenBreaksTheMappingAndWaitsForTheRelease) {
  ASSERT_NO_FATAL_FAILURE(mount_with(10));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(/*coop=*/true);
  MapReply m = h.map(path("f"), 0, kFile, "rw", SEALFS_MAP_EXCLUSIVE);
  ASSERT_EQ(m.rc, 0) << m.text;
  const std::string f = path("f");
  TimedOp open_it([&] { return open_then_close(f); });
  auto broke = h.expect("break ");
  ASSERT_TRUE(broke.has_value()) << h.transcript();
  EXPECT_EQ(break_reason(*broke), SEALFS_BREAK_SHARED) << *broke;
  EXPECT_TRUE(h.expect("released ").has_value()) << h.transcript();
  auto opened = open_it.wait();
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->rc, 0) << strerror(opened->err);
  // Well before the 10 s deadline: it waited for the release, not for a revoke.
  EXPECT_LT(opened->seconds, 5.0);
}

TEST_F(ExclusiveTest, RefusedWhileAnotherProcessHasTheFileOpenAndGrantedOnceItCloses) {
  ASSERT_NO_FATAL_FAILURE(mount_with(10));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  int fd = open(path("f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  MapReply refused = h.map(path("f"), 0, kFile, "r", SEALFS_MAP_EXCLUSIVE, "ro");
  EXPECT_EQ(refused.rc, -EBUSY) << refused.text;
  EXPECT_NE(refused.text.find("another process has the file open"), std::string::npos)
      << refused.text;
  // Without the flag the same map is granted: the rule is the flag's.
  MapReply plain = h.map(path("f"), 0, kFile, "r", 0, "ro");
  EXPECT_EQ(plain.rc, 0) << plain.text;
  ASSERT_EQ(close(fd), 0);
  // The kernel sends the release after close(2) returns: ask until granted.
  MapReply granted;
  for (int i = 0; i < 100; ++i) {
    granted = h.map(path("f"), 0, kFile, "r", SEALFS_MAP_EXCLUSIVE, "ro");
    if (granted.rc != -EBUSY) break;
    usleep(20'000);
  }
  EXPECT_EQ(granted.rc, 0) << granted.text;
}

// A holder that does not let go in time (stopped, say) keeps its mapping
// and its life: the open that broke it fails with EBUSY at the deadline
// instead of revoking it (fence would SIGBUS it when it resumes; quarantine
// would leave its stores beside the opener's page cache).
TEST_F(ExclusiveTest, AHolderThatDoesNotLetGoKeepsItsMappingAndTheOpenFails) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(/*coop=*/false);  // reports the break, keeps the mapping
  MapReply m = h.map(path("f"), 0, kFile, "rw", SEALFS_MAP_EXCLUSIVE);
  ASSERT_EQ(m.rc, 0) << m.text;
  const std::string f = path("f");
  TimedOp open_it([&] { return open_then_close(f); });
  ASSERT_TRUE(h.expect("break ").has_value()) << h.transcript();
  auto opened = open_it.wait();
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->rc, -1);
  EXPECT_EQ(opened->err, EBUSY) << strerror(opened->err);
  EXPECT_GE(opened->seconds, 0.9);
  // Still mapped, still the file, no fence.
  h.send("store 0 0 4096 7");
  EXPECT_TRUE(h.expect("stored 0").has_value()) << h.transcript();
  h.send("check 0 0 4096 7");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok") << h.transcript();
  EXPECT_EQ(h.count("sigbus"), 0) << h.transcript();
  // Once it lets go, opens go through and see its stores.
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0").has_value()) << h.transcript();
  int fd = open(f.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << strerror(errno);
  std::vector<uint8_t> got(4096), want(4096);
  fill_lease_pattern(want.data(), want.size(), 7, 0);
  ASSERT_EQ(pread(fd, got.data(), got.size(), 0), 4096);
  close(fd);
  EXPECT_EQ(got, want);
}

void on_signal(int) {}

// An open interrupted while it waits for the holder answers EINTR and
// leaves no handle behind: once the holder let go, its next exclusive map
// is granted (a handle still registered would refuse it for good).
TEST_F(ExclusiveTest, AnInterruptedOpenLeavesNoHandleBehind) {
  ASSERT_NO_FATAL_FAILURE(mount_with(20));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(/*coop=*/false);  // lets go only when told
  MapReply m = h.map(path("f"), 0, kFile, "rw", SEALFS_MAP_EXCLUSIVE);
  ASSERT_EQ(m.rc, 0) << m.text;
  int result[2];
  ASSERT_EQ(pipe(result), 0);
  const std::string f = path("f");
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;  // no SA_RESTART: the open returns EINTR
    sigaction(SIGUSR1, &sa, nullptr);
    const int fd = open(f.c_str(), O_RDONLY | O_CLOEXEC);
    const int err = fd < 0 ? errno : 0;
    _exit(write(result[1], &err, sizeof(err)) == sizeof(err) ? 0 : 1);
  }
  close(result[1]);
  ASSERT_TRUE(h.expect("break ").has_value()) << h.transcript();
  ASSERT_EQ(kill(child, SIGUSR1), 0);
  int err = -1;
  ASSERT_EQ(read(result[0], &err, sizeof(err)), static_cast<ssize_t>(sizeof(err)));
  close(result[0]);
  EXPECT_EQ(err, EINTR);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0").has_value()) << h.transcript();
  MapReply again = h.map(path("f"), 0, kFile, "rw", SEALFS_MAP_EXCLUSIVE);
  EXPECT_EQ(again.rc, 0) << again.text;
}

TEST_F(ExclusiveTest, TheHoldersOwnOpensAndOtherLeasesAreNoObstacle) {
  ASSERT_NO_FATAL_FAILURE(mount_with(10));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(/*coop=*/true);
  MapReply first = h.map(path("f"), 0, kFile, "rw", SEALFS_MAP_EXCLUSIVE);
  ASSERT_EQ(first.rc, 0) << first.text;
  // Each map opens the file again in the holder: the holder's own open.
  MapReply second = h.map(path("f"), 0, kFile, "rw", SEALFS_MAP_EXCLUSIVE);
  ASSERT_EQ(second.rc, 0) << second.text;
  // Another process's lease without the flag: it needs an open of its own,
  // which breaks the exclusive ones, but is not itself broken by opens.
  HolderProcess& other = holder(/*coop=*/true);
  MapReply shared = other.map(path("f"), 0, kFile, "rw");
  ASSERT_EQ(shared.rc, 0) << shared.text;
  EXPECT_TRUE(h.expect("released ").has_value()) << h.transcript();
  EXPECT_TRUE(h.expect("released ").has_value()) << h.transcript();
  int fd = open(path("f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_TRUE(other.sync());
  EXPECT_EQ(other.count("break "), 0) << other.transcript();
}

}  // namespace
}  // namespace sealfs::itest
