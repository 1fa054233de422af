// Lease lifecycles across processes: several holders, holders that die,
// fork and partial munmap, concurrent breakers, a grant racing a truncate
// (daemon sync points), and a daemon killed with leases out.
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <tuple>

#include "lease_fixture.h"
#include "sealfs/sealfs.h"

namespace sealfs::itest {
namespace {

constexpr uint64_t kFile = 1 * kMiB;
constexpr uint64_t kFileBlocks = kFile / 4096;

class LifecycleTest : public LeaseFixture {
 protected:
  void TearDown() override {
    unsetenv("SEALFS_TEST_SYNC_DIR");
    unsetenv("SEALFS_TEST_SYNC_POINTS");
    LeaseFixture::TearDown();
  }

  // Mounts a daemon that stops at `point` once (see the brief's sync-point
  // contract): DIR/<point>.reached appears, DIR/<point>.go releases it.
  void mount_with_sync_point(unsigned break_time, const std::string& point) {
    sync_dir_ = dir() + "/sync";
    ASSERT_EQ(mkdir(sync_dir_.c_str(), 0755), 0) << std::strerror(errno);
    setenv("SEALFS_TEST_SYNC_DIR", sync_dir_.c_str(), 1);
    setenv("SEALFS_TEST_SYNC_POINTS", point.c_str(), 1);
    mount_with(break_time);
    unsetenv("SEALFS_TEST_SYNC_DIR");
    unsetenv("SEALFS_TEST_SYNC_POINTS");
  }
  std::string reached(const std::string& point) const { return sync_dir_ + "/" + point + ".reached"; }
  std::string go(const std::string& point) const { return sync_dir_ + "/" + point + ".go"; }

  std::string sync_dir_;
};

TEST_F(LifecycleTest, SeveralHoldersEachGetOneBreakAndAllMustRelease) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  std::vector<HolderProcess*> hs;
  for (int i = 0; i < 3; ++i) {
    HolderProcess& h = holder();
    ASSERT_EQ(h.map(path("f"), 0, kFile, i == 2 ? "r" : "rw", 0, i == 2 ? "ro" : "rw").rc, 0);
    hs.push_back(&h);
  }
  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  for (HolderProcess* h : hs) {
    auto line = h->expect("break ", 5s);
    ASSERT_TRUE(line) << h->transcript();
    EXPECT_EQ(break_reason(*line), SEALFS_BREAK_TRUNCATE);
  }
  for (size_t i = 0; i < hs.size(); ++i) {
    // Proving a negative: one holder still holds, so the truncate waits.
    EXPECT_FALSE(op.wait(i == 0 ? 300ms : 100ms)) << "returned with " << hs.size() - i
                                                  << " holders left";
    hs[i]->send("unmap 0");
    ASSERT_TRUE(hs[i]->expect("unmapped 0 0"));
  }
  auto r = op.wait(2s);
  ASSERT_TRUE(r) << "truncate did not finish after the last release";
  EXPECT_EQ(r->rc, 0);
  EXPECT_LT(r->seconds, 1.9);
  for (HolderProcess* h : hs) {
    ASSERT_TRUE(h->sync());
    EXPECT_EQ(h->count("break "), 1) << h->transcript();
  }
}

enum class Death { kExit, kAbort, kSigkill };

class HolderDeathTest : public LeaseFixture, public ::testing::WithParamInterface<Death> {};

// A holder that goes away mid-lease releases it: a later truncate does not
// wait for any deadline.
TEST_P(HolderDeathTest, LaterTruncateCompletesAtOnce) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  const uint64_t free_before = free_blocks();
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  h.send("store 0 0 4096 4");
  ASSERT_TRUE(h.expect("stored 0"));
  switch (GetParam()) {
    case Death::kExit: h.send("exit"); break;
    case Death::kAbort: h.send("abort"); break;
    case Death::kSigkill: h.signal(SIGKILL); break;
  }
  auto status = h.wait_exit(5s);
  ASSERT_TRUE(status);
  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  auto r = op.wait(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0) << std::strerror(r->err);
  EXPECT_LT(r->seconds, 1.0) << "truncate waited for a dead holder";
  // Nothing is quarantined for a holder that is gone.
  EXPECT_TRUE(wait_free_blocks(free_before + kFileBlocks, 5s))
      << free_blocks() << " < " << free_before + kFileBlocks;
}

INSTANTIATE_TEST_SUITE_P(Deaths, HolderDeathTest,
                         ::testing::Values(Death::kExit, Death::kAbort, Death::kSigkill),
                         [](const auto& info) {
                           switch (info.param) {
                             case Death::kExit: return std::string("Exit");
                             case Death::kAbort: return std::string("Abort");
                             case Death::kSigkill: return std::string("Sigkill");
                           }
                           return std::string("Unknown");
                         });

// A forked child does not inherit the mapping (MADV_DONTFORK); the parent's
// keeps working and is the one that gets the break.
TEST_F(LifecycleTest, ForkedChildHasNoMappingParentKeepsIt) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  h.send("fork 0");
  auto child = h.expect("child ");
  ASSERT_TRUE(child) << h.transcript();
  EXPECT_EQ(*child, "child mincore -1 errno " + std::to_string(ENOMEM) + " unmap 0");
  EXPECT_EQ(h.expect("forked "), "forked 0");
  h.send("store 0 12288 4096 5");
  ASSERT_TRUE(h.expect("stored 0"));
  EXPECT_TRUE(file_has_pattern("f", 4096, 5, 12288));
  TimedOp op([&] { return truncate(path("f").c_str(), 4096); });
  ASSERT_TRUE(h.expect("break ", 5s)) << h.transcript();
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0 0"));
  auto r = op.wait(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0);
  EXPECT_LT(r->seconds, 1.9);
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
}

// Unmapping part of the range by hand keeps the lease (it lives until
// sealfs_unmap); the rest of the mapping works; the break still comes and
// the final unmap is clean.
TEST_F(LifecycleTest, PartialMunmapKeepsTheLease) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  h.send("munmap 0 0 65536");
  EXPECT_EQ(h.expect("munmapped 0"), "munmapped 0 0");
  h.send("store 0 65536 4096 6");
  ASSERT_TRUE(h.expect("stored 0"));
  EXPECT_TRUE(file_has_pattern("f", 4096, 6, 65536));
  EXPECT_TRUE(file_has_pattern("f", 65536, 1, 0));
  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  ASSERT_TRUE(h.expect("break ", 5s)) << h.transcript();
  EXPECT_FALSE(op.wait(300ms)) << "a partial munmap released the lease";
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0 0"));
  auto r = op.wait(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0);
  EXPECT_LT(r->seconds, 1.9);
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
}

// Two breakers at once on one leased file: one break, both finish after the
// release, and the file is what one of the two orders gives.
TEST_F(LifecycleTest, TwoConcurrentBreakers) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  TimedOp shrink([&] { return truncate(path("f").c_str(), 12288); });
  TimedOp grow([&] {
    int fd = open(path("f").c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fallocate(fd, 0, static_cast<off_t>(2 * kMiB), static_cast<off_t>(kMiB));
    int err = errno;
    close(fd);
    errno = err;
    return rc;
  });
  ASSERT_TRUE(h.expect("break ", 5s)) << h.transcript();
  // Proving a negative: neither may finish while the lease is held.
  EXPECT_FALSE(shrink.wait(300ms));
  EXPECT_FALSE(grow.done());
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0 0"));
  auto a = shrink.wait(5s);
  auto b = grow.wait(5s);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->rc, 0) << std::strerror(a->err);
  EXPECT_EQ(b->rc, 0) << std::strerror(b->err);
  EXPECT_LT(a->seconds, 1.9);
  EXPECT_LT(b->seconds, 1.9);
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
  const uint64_t size = file_size("f");
  EXPECT_TRUE(size == 12288 || size == 3 * kMiB) << size;
  EXPECT_TRUE(file_has_pattern("f", 12288, 1));
  if (size == 3 * kMiB) {
    EXPECT_TRUE(file_is_zero("f", 12288, 3 * kMiB - 12288));
  }
}

// A MAP's descriptor is closed before its lease exists (mount_fd_closer.h):
// the close writes the file's dirty pages back through the daemon, and a
// write that changed the layout would have to break a lease whose holder
// cannot let go before it has its answer, which waits for the close. So
// while the closer is held right after the close, a layout change goes
// through at once, and the lease granted afterwards is never broken by it.
// (When the lease was granted first, this truncate waited for a break the
// holder never heard of: the BREAK went out before the answer.)
TEST_F(LifecycleTest, NoLeaseExistsWhileTheRequestsDescriptorIsClosed) {
  const std::string point = "lease.closer.closed";
  ASSERT_NO_FATAL_FAILURE(mount_with_sync_point(2, point));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(true);
  h.send_map(path("f"), 0, kFile);
  ASSERT_TRUE(wait_for_path(reached(point), 10s)) << "the closer never reached " << point;
  TimedOp op([&] { return truncate(path("f").c_str(), 2 * kFile); });
  auto done = op.wait(1500ms);
  touch_path(go(point));
  ASSERT_TRUE(done) << "the truncate waited for a lease that was still being answered";
  EXPECT_EQ(done->rc, 0);
  MapReply r = h.map_reply(10s);
  ASSERT_EQ(r.rc, 0) << r.text;
  h.send("check 0 0 1048576 1");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 0) << h.transcript();
}

// The engine closes a MAP's descriptor itself only when no lease seals the
// file (map latency). Here one does: a page dirtied through a mapping of
// the mount fills a hole, so the close's write-back is a layout change that
// waits for the first holder's break, and the break ends only when the
// engine hears that holder release. Closed on the engine's own thread, the
// daemon would wait for itself and the second map would never be answered.
TEST_F(LifecycleTest, AMapWhoseCloseWritesBackIntoAHoleOfALeasedFile) {
  ASSERT_NO_FATAL_FAILURE(mount_with(5));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  ASSERT_EQ(truncate(path("f").c_str(), 4 * kFile), 0);  // [1 MiB, 4 MiB) is a hole
  HolderProcess& first = holder(true);
  ASSERT_EQ(first.map(path("f"), 0, kFile).rc, 0);
  int through_mount = open(path("f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(through_mount, 0) << std::strerror(errno);
  auto* pages = static_cast<char*>(
      mmap(nullptr, 4 * kFile, PROT_READ | PROT_WRITE, MAP_SHARED, through_mount, 0));
  ASSERT_NE(pages, MAP_FAILED) << std::strerror(errno);
  // Opened before the page is dirtied: an open drops the file's cached
  // pages, writing dirty ones back, and the close is what must do it.
  int to_map = open(path("f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(to_map, 0) << std::strerror(errno);
  pages[2 * kFile] = 7;
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    struct sealfs_map* m = nullptr;
    _exit(sealfs_map(to_map, 0, kFile, PROT_READ, 0, &m) == 0 ? 0 : 1);
  }
  int status = -1;
  const auto give_up = std::chrono::steady_clock::now() + 15s;
  while (waitpid(child, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(20ms);
  }
  if (status == -1) {
    // The daemon waits for itself: everything on the mount would hang
    // (this process's own close writes the page back), so it goes first.
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    signal_daemon(SIGKILL);
    munmap(pages, 4 * kFile);
    close(to_map);
    close(through_mount);
    FAIL() << "the second map was never answered";
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_TRUE(first.expect("break ", 5s)) << first.transcript();
  munmap(pages, 4 * kFile);
  close(to_map);
  close(through_mount);
  char byte = 0;
  int fd = open(path("f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(pread(fd, &byte, 1, 2 * kFile), 1);
  close(fd);
  EXPECT_EQ(byte, 7);
}

// The grant has checked the extents under the layout lock and is about to
// install the lease when a truncate arrives: the truncate must not slip in
// between. It waits, then breaks the new lease.
TEST_F(LifecycleTest, GrantRacingTruncate) {
  const std::string point = "lease.grant.after_check";
  ASSERT_NO_FATAL_FAILURE(mount_with_sync_point(2, point));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  h.send_map(path("f"), 0, kFile);
  ASSERT_TRUE(wait_for_path(reached(point), 10s)) << "the grant never reached " << point;
  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  // Proving a negative: the truncate cannot complete inside the grant.
  EXPECT_FALSE(op.wait(300ms)) << "truncate completed between the grant's check and install";
  touch_path(go(point));
  MapReply r = h.map_reply(10s);
  ASSERT_EQ(r.rc, 0) << r.text;
  EXPECT_EQ(r.length, kFile);
  auto line = h.expect("break ", 5s);
  ASSERT_TRUE(line) << "the truncate did not break the lease granted before it; " << h.transcript();
  EXPECT_EQ(break_reason(*line), SEALFS_BREAK_TRUNCATE);
  // The granted map is the file as it was: still intact while leased.
  h.send("check 0 0 1048576 1");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  EXPECT_FALSE(op.done()) << "truncate finished while the new lease is held";
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0 0"));
  auto done = op.wait(5s);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->rc, 0);
  EXPECT_EQ(file_size("f"), 0u);
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
}

// The same race with ALLOCATE: the grant allocated and zeroed the holes
// under the layout lock; the truncate that arrives meanwhile breaks the new
// lease and then frees every block the grant allocated.
// Once a map is answered the daemon holds no descriptor of its own mount
// (the client's, received as the capability): otherwise an unmount right
// after the answer fails with EBUSY. The engine thread is held just after
// the answer went out.
TEST_F(LifecycleTest, DaemonHoldsNoClientDescriptorOnceItAnswers) {
  const std::string point = "lease.map.replied";
  ASSERT_NO_FATAL_FAILURE(mount_with_sync_point(2, point));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(true);
  MapReply r = h.map(path("f"), 0, kFile);
  ASSERT_EQ(r.rc, 0) << r.text;
  ASSERT_TRUE(wait_for_path(reached(point), 10s));
  std::string out;
  int rc = run_command({"fusermount3", "-u", mountpoint()}, &out);
  touch_path(go(point));
  EXPECT_EQ(rc, 0) << "unmount right after a map answer: " << out;
  // Unmounted behind the fixture's back: collect the daemon here.
  if (rc == 0) {
    EXPECT_TRUE(signal_daemon(SIGTERM).has_value());
  }
}

TEST_F(LifecycleTest, AllocatingGrantRacingTruncate) {
  const std::string point = "lease.grant.after_check";
  ASSERT_NO_FATAL_FAILURE(mount_with_sync_point(2, point));
  ASSERT_NO_FATAL_FAILURE(make_file("f", 0, 0));
  ASSERT_EQ(truncate(path("f").c_str(), kFile), 0);
  const uint64_t free_before = free_blocks();
  HolderProcess& h = holder(true);
  h.send_map(path("f"), 0, kFile, "rw", SEALFS_MAP_ALLOCATE);
  ASSERT_TRUE(wait_for_path(reached(point), 10s)) << "the grant never reached " << point;
  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  EXPECT_FALSE(op.wait(300ms)) << "truncate completed between the grant's check and install";
  touch_path(go(point));
  MapReply r = h.map_reply(10s);
  ASSERT_EQ(r.rc, 0) << r.text;
  auto done = op.wait(5s);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->rc, 0);
  EXPECT_LT(done->seconds, 1.9);
  ASSERT_TRUE(h.expect("released ", 5s)) << h.transcript();
  EXPECT_EQ(file_size("f"), 0u);
  EXPECT_TRUE(wait_free_blocks(free_before, 5s)) << free_blocks() << " < " << free_before;
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
}

// A truncate has found the layout sealed and is about to start the break
// when a second holder asks for a mapping: it must either be refused
// (ENXIO) or be granted a lease that this break covers too.
TEST_F(LifecycleTest, GrantRacingDeferredBreak) {
  const std::string point = "fuse.layout.deferred";
  ASSERT_NO_FATAL_FAILURE(mount_with_sync_point(2, point));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& first = holder();
  ASSERT_EQ(first.map(path("f"), 0, kFile).rc, 0);
  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  ASSERT_TRUE(wait_for_path(reached(point), 10s)) << "the truncate never reached " << point;
  HolderProcess& second = holder(true);
  second.send_map(path("f"), 0, kFile);
  // Proving a negative, in the spirit of the race: nothing finished yet.
  EXPECT_FALSE(op.wait(200ms));
  touch_path(go(point));
  ASSERT_TRUE(first.expect("break ", 5s)) << first.transcript();
  MapReply r = second.map_reply(10s);
  ASSERT_TRUE(r.rc == 0 || r.rc == -ENXIO) << r.text;
  first.send("unmap 0");
  ASSERT_TRUE(first.expect("unmapped 0 0"));
  if (r.rc == 0) {
    EXPECT_TRUE(second.expect("released ", 5s))
        << "a lease granted during the break was not broken; " << second.transcript();
  }
  auto done = op.wait(5s);
  ASSERT_TRUE(done) << "truncate never finished";
  EXPECT_EQ(done->rc, 0);
  EXPECT_LT(done->seconds, 1.9);
  EXPECT_EQ(file_size("f"), 0u);
}

// During a break a new grant is refused (ENXIO), or with WAIT_BREAK it
// waits until the breaking operation has committed: it then sees the new
// size and a newer layout generation.
TEST_F(LifecycleTest, RegrantDuringBreakWaitsForTheCommit) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& first = holder();
  MapReply granted = first.map(path("f"), 0, kFile);
  ASSERT_EQ(granted.rc, 0) << granted.text;
  TimedOp op([&] { return truncate(path("f").c_str(), 512 * kKiB); });
  ASSERT_TRUE(first.expect("break ", 5s)) << first.transcript();
  HolderProcess& second = holder();
  MapReply refused = second.map(path("f"), 0, 512 * kKiB);
  EXPECT_EQ(refused.rc, -ENXIO) << refused.text;
  // Asks for the old size: granted before the commit it would succeed.
  second.send_map(path("f"), 0, kFile, "rw", SEALFS_MAP_WAIT_BREAK);
  second.send_map(path("f"), 0, 512 * kKiB, "rw", SEALFS_MAP_WAIT_BREAK);
  // Proving a negative: the waiting grants get no answer during the break.
  EXPECT_FALSE(second.expect_any({"mapped", "maperr"}, 300ms)) << second.transcript();
  first.send("unmap 0");
  ASSERT_TRUE(first.expect("unmapped 0 0"));
  auto r = op.wait(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0);
  MapReply old_size = second.map_reply(10s);
  EXPECT_EQ(old_size.rc, -ERANGE) << "granted before the truncate committed: " << old_size.text;
  MapReply new_size = second.map_reply(10s);
  ASSERT_EQ(new_size.rc, 0) << new_size.text;
  EXPECT_GT(new_size.generation, granted.generation);
  second.send("check " + std::to_string(new_size.index) + " 0 524288 1");
  EXPECT_EQ(second.expect("check"), "check " + std::to_string(new_size.index) + " ok");
}

// Two mappings of one file in one process are two leases: one break each.
TEST_F(LifecycleTest, TwoLeasesInOneProcessEachGetABreak) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  MapReply a = h.map(path("f"), 0, kFile);
  MapReply b = h.map(path("f"), 64 * kKiB, 64 * kKiB);
  ASSERT_EQ(a.rc, 0) << a.text;
  ASSERT_EQ(b.rc, 0) << b.text;
  ASSERT_NE(a.lease_id, b.lease_id);
  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  ASSERT_TRUE(h.expect("break " + std::to_string(a.lease_id) + " ", 5s)) << h.transcript();
  ASSERT_TRUE(h.expect("break " + std::to_string(b.lease_id) + " ", 5s)) << h.transcript();
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0 0"));
  // Proving a negative: the second lease still holds the truncate.
  EXPECT_FALSE(op.wait(300ms)) << "returned with one of two leases held";
  h.send("unmap 1");
  ASSERT_TRUE(h.expect("unmapped 1 0"));
  auto r = op.wait(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0);
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 2) << h.transcript();
}

// A single-threaded holder truncating its own leased file cannot release
// while it waits: the deadline ends the wait (fence), never a deadlock.
TEST_F(LifecycleTest, HolderBreakingItsOwnLeaseDoesNotDeadlock) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  h.send("truncate " + path("f") + " 4096");
  auto done = h.expect("truncated ", 10s);
  ASSERT_TRUE(done) << "the holder's own truncate never returned; " << h.transcript();
  EXPECT_EQ(done->substr(0, 12), "truncated 0 ") << *done;
  EXPECT_EQ(file_size("f"), 4096u);
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
}

// Unmount with a lease out (docs/daemon.md): every holder gets a break
// with reason UNMOUNT and min(lease_break_time, 5 s) to let go; one that
// does not is revoked into quarantine, and the library fences its mapping
// when the socket closes.
TEST_F(LifecycleTest, UnmountBreaksLeasesThenFencesAStubbornHolder) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  auto started = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(unmount());
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_GE(seconds, 1.9) << "unmount did not give the holder its break time";
  EXPECT_LT(seconds, 4.5) << "unmount waited longer than the break time";
  auto line = h.expect("break ", 5s);
  ASSERT_TRUE(line) << "the holder never learnt of the unmount; " << h.transcript();
  EXPECT_EQ(break_reason(*line), SEALFS_BREAK_UNMOUNT) << *line;
  h.send("touch 0");
  EXPECT_TRUE(h.expect("sigbus", 5s)) << "the mapping outlived the mount; " << h.transcript();
}

// A cooperative holder releases at the unmount break: the unmount does not
// wait, and nothing stays quarantined for the (still running) holder.
TEST_F(LifecycleTest, UnmountWithACooperativeHolderLeavesNoQuarantine) {
  ASSERT_NO_FATAL_FAILURE(mount_with(4));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(/*coop=*/true);
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  auto started = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(unmount());
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_LT(seconds, 1.5) << "unmount waited although the holder let go";
  auto line = h.expect("released ", 5s);
  ASSERT_TRUE(line) << h.transcript();
  ASSERT_NO_FATAL_FAILURE(mount());
  // The holder is alive; its blocks must be reusable as soon as the file
  // frees them.
  const uint64_t before = free_blocks();
  ASSERT_EQ(truncate(path("f").c_str(), 0), 0);
  EXPECT_TRUE(wait_free_blocks(before + kFile / 4096, 2s))
      << "blocks of a released lease stayed quarantined: free " << free_blocks() << " vs "
      << before;
}

// A lease already revoked into quarantine (stopped holder, quarantine
// policy) when the daemon is SIGKILLed: the restarted daemon must keep
// those blocks out of free space while the holder lives.
TEST_F(LifecycleTest, QuarantineSurvivesDaemonDeath) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1, "revoke=quarantine"));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  ASSERT_TRUE(h.stop());
  const uint64_t free_before = free_blocks();
  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  auto r = op.wait(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0);
  EXPECT_GE(r->seconds, 0.95);
  const uint64_t free_quarantined = free_blocks();
  EXPECT_LT(free_quarantined, free_before + kFileBlocks);

  ASSERT_NO_FATAL_FAILURE(kill_daemon());
  ASSERT_NO_FATAL_FAILURE(mount());
  EXPECT_LT(free_blocks(), free_before + kFileBlocks)
      << "quarantined blocks were freed by the restart while their holder lives";
  const uint64_t filled = fill_filesystem("g", 2);
  ASSERT_GT(filled, 0u);
  const uint64_t free_full = free_blocks();
  EXPECT_LT(free_full, 16u);

  h.signal(SIGCONT);
  h.send("fill 0 3");
  ASSERT_TRUE(h.expect_any({"filled 0", "sigbus"}, 10s)) << h.transcript();
  EXPECT_TRUE(file_has_pattern("g", filled, 2)) << "a quarantined holder's stores reached another file";
  h.signal(SIGKILL);
  ASSERT_TRUE(h.wait_exit(5s));
  EXPECT_TRUE(wait_free_blocks(free_full + kFileBlocks, 10s))
      << "the dead holder's quarantined blocks were never freed: " << free_blocks();
}

enum class HolderState { kAlive, kStopped };
enum class DaemonEnd { kSigkill, kUnmount };

class DaemonDeathTest
    : public LeaseFixture,
      public ::testing::WithParamInterface<std::tuple<HolderState, DaemonEnd>> {};

// The daemon is SIGKILLed (or unmounted cleanly) while a holder has a
// lease. The library fences
// the mapping when it notices; the restarted daemon must still treat the
// holder's blocks as reachable while the holder lives: freed from the file,
// they go to quarantine, never to another file. Once the holder is gone,
// the daemon frees them.
TEST_P(DaemonDeathTest, RestartedDaemonQuarantinesLiveHoldersBlocks) {
  const bool stopped = std::get<0>(GetParam()) == HolderState::kStopped;
  const bool killed = std::get<1>(GetParam()) == DaemonEnd::kSigkill;
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  if (stopped) {
    ASSERT_TRUE(h.stop());
  }
  if (killed) {
    ASSERT_NO_FATAL_FAILURE(kill_daemon());
  } else {
    ASSERT_NO_FATAL_FAILURE(unmount());
  }
  if (!stopped) {
    auto line = h.expect("break ", 5s);
    ASSERT_TRUE(line) << "the library did not notice the daemon's death; " << h.transcript();
    // (UnmountBreaksLeases checks the reason a clean unmount gives.)
    if (killed) {
      EXPECT_EQ(break_reason(*line), SEALFS_BREAK_DAEMON_GONE);
    }
  }
  ASSERT_NO_FATAL_FAILURE(mount());

  const uint64_t free_before = free_blocks();
  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  auto r = op.wait(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0) << std::strerror(r->err);
  // A running holder at a clean unmount got the UNMOUNT break, missed its
  // deadline and was fenced, and acknowledged: it can reach nothing, so its
  // blocks are free again. Every other case leaves a holder that may still
  // reach them.
  const bool fenced_at_unmount = !stopped && !killed;
  if (fenced_at_unmount) {
    EXPECT_EQ(free_blocks(), free_before + kFileBlocks)
        << "blocks of a holder fenced at unmount stayed quarantined";
  } else {
    EXPECT_LT(free_blocks(), free_before + kFileBlocks)
        << "blocks a live holder may reach went back to free space after the restart";
  }

  const uint64_t filled = fill_filesystem("g", 2);
  ASSERT_GT(filled, 0u);
  const uint64_t free_full = free_blocks();
  EXPECT_LT(free_full, 16u);

  if (stopped) h.signal(SIGCONT);
  // Scribble through the old mapping: fenced (SIGBUS) or, if the library
  // has not noticed yet, stores into blocks nobody else may have.
  h.send("fill 0 3");
  auto outcome = h.expect_any({"filled 0", "sigbus"}, 10s);
  ASSERT_TRUE(outcome) << h.transcript();
  if (!stopped) {
    EXPECT_EQ(*outcome, "sigbus") << "an alive holder's mapping was not fenced";
  }
  EXPECT_TRUE(file_has_pattern("g", filled, 2)) << "an old mapping's stores reached another file";

  h.signal(SIGKILL);
  ASSERT_TRUE(h.wait_exit(5s));
  if (!fenced_at_unmount) {
    EXPECT_TRUE(wait_free_blocks(free_full + kFileBlocks, 10s))
        << "the dead holder's quarantined blocks were never freed: " << free_blocks();
  }
  EXPECT_TRUE(file_has_pattern("g", filled, 2));
}

INSTANTIATE_TEST_SUITE_P(
    Holders, DaemonDeathTest,
    ::testing::Combine(::testing::Values(HolderState::kAlive, HolderState::kStopped),
                       ::testing::Values(DaemonEnd::kSigkill, DaemonEnd::kUnmount)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param) == HolderState::kAlive ? "Alive" : "Stopped") +
             (std::get<1>(info.param) == DaemonEnd::kSigkill ? "DaemonKilled" : "Unmounted");
    });


// A breaker child: truncates `path` to 0 with a SIGUSR1 handler installed
// without SA_RESTART, and writes "errno elapsed_ms" to `out`.
pid_t spawn_interruptible_truncate(const std::string& path, int out) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  sigaction(SIGUSR1, &sa, nullptr);
  auto t0 = std::chrono::steady_clock::now();
  int rc = truncate(path.c_str(), 0);
  int err = rc == 0 ? 0 : errno;
  long ms = static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - t0)
                                  .count());
  dprintf(out, "%d %ld\n", err, ms);
  _exit(0);
}

// A breaker waiting for a holder that will not let go is interruptible: a
// signal answers EINTR at once and nothing changed; SIGKILL ends it at once
// (without the daemon's EINTR the kernel would wait for the reply).
TEST_F(LifecycleTest, WaitingBreakerIsInterruptibleAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(mount_with(20));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);

  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = spawn_interruptible_truncate(path("f"), fds[1]);
  close(fds[1]);
  ASSERT_TRUE(h.expect("break ", 5s)) << h.transcript();  // the breaker is waiting now
  kill(child, SIGUSR1);
  char buf[64] = {};
  ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
  close(fds[0]);
  ASSERT_GT(n, 0);
  int err = -1;
  long ms = -1;
  ASSERT_EQ(sscanf(buf, "%d %ld", &err, &ms), 2) << buf;
  EXPECT_EQ(err, EINTR) << "truncate returned " << std::strerror(err);
  EXPECT_LT(ms, 5000) << "the interrupted breaker waited for the deadline";
  ASSERT_TRUE(wait_child(child, 5s));
  EXPECT_EQ(file_size("f"), kFile);
  h.send("check 0 0 4096 1");
  EXPECT_TRUE(h.expect("check 0 ok", 5s)) << h.transcript();

  // The same break is still running; a SIGKILLed breaker goes at once.
  pid_t killed = fork();
  if (killed == 0) {
    int rc = truncate(path("f").c_str(), 0);
    _exit(rc == 0 ? 0 : 1);
  }
  usleep(200 * 1000);  // give it time to block in the kernel (proves nothing by itself)
  auto t0 = std::chrono::steady_clock::now();
  kill(killed, SIGKILL);
  auto status = wait_child(killed, 5s);
  ASSERT_TRUE(status) << "a SIGKILLed breaker stayed in the kernel";
  EXPECT_TRUE(WIFSIGNALED(*status));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(file_size("f"), kFile);
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
}


// libsealfs remembers each mount's control socket; after a remount (a new
// daemon, a new socket, maybe the same mount id) the same process maps
// again without being told.
TEST_F(LifecycleTest, SameProcessMapsAgainAfterARemount) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(true);
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0", 5s)) << h.transcript();
  ASSERT_NO_FATAL_FAILURE(remount());
  MapReply again = h.map(path("f"), 0, kFile);
  EXPECT_EQ(again.rc, 0) << again.text;
  h.send("check 1 0 4096 1");
  EXPECT_TRUE(h.expect("check 1 ok", 5s)) << h.transcript();
}


// SIGSTOP and SIGCONT of a breaker waiting for a holder are not an
// interruption (the kernel sends FUSE_INTERRUPT for them too): its call
// completes once the holder lets go, as on a kernel filesystem.
TEST_F(LifecycleTest, StoppedAndContinuedBreakerIsNotInterrupted) {
  ASSERT_NO_FATAL_FAILURE(mount_with(20));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  if (child == 0) {
    int rc = truncate(path("f").c_str(), 0);
    dprintf(fds[1], "%d %d\n", rc, rc == 0 ? 0 : errno);
    _exit(0);
  }
  close(fds[1]);
  ASSERT_TRUE(h.expect("break ", 5s)) << h.transcript();
  kill(child, SIGSTOP);
  usleep(300 * 1000);  // the kernel's INTERRUPT reaches the daemon meanwhile
  kill(child, SIGCONT);
  usleep(100 * 1000);
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0", 5s)) << h.transcript();
  char buf[64] = {};
  ASSERT_GT(read(fds[0], buf, sizeof(buf) - 1), 0);
  close(fds[0]);
  int rc = -2, err = 0;
  ASSERT_EQ(sscanf(buf, "%d %d", &rc, &err), 2) << buf;
  EXPECT_EQ(rc, 0) << "a stop and continue made truncate fail: " << std::strerror(err);
  EXPECT_EQ(file_size("f"), 0u);
  ASSERT_TRUE(wait_child(child, 5s));
}

}  // namespace
}  // namespace sealfs::itest
