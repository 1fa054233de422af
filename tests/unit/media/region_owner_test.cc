// The region claim (src/media/region_owner.h). OFD locks conflict between
// open file descriptions even inside one process, so two claims made here
// behave as two processes' claims would.
#include "media/region_owner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "media/region_pmem2.h"

namespace sealfs {
namespace {

using namespace std::chrono_literals;

class RegionClaimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/sealfs-claim-XXXXXX";
    int fd = mkstemp(templ);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 1 << 20), 0);
    close(fd);
    path_ = templ;
  }
  void TearDown() override { unlink(path_.c_str()); }

  int open_region(int flags = O_RDWR) {
    int fd = ::open(path_.c_str(), flags | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    fds_.push_back(fd);
    return fd;
  }
  Result<std::unique_ptr<RegionClaim>> claim(OwnerRole role, ClaimRequest request = {}) {
    request.role = role;
    return RegionClaim::acquire(open_region(), path_, request);
  }
  ~RegionClaimTest() override {
    for (int fd : fds_) close(fd);
  }

  std::string path_;
  std::vector<int> fds_;
};

std::string me() { return "pid " + std::to_string(getpid()) + " ("; }

TEST_F(RegionClaimTest, AWriterExcludesEveryoneAndIsNamed) {
  auto daemon = claim(OwnerRole::kDaemon);
  ASSERT_TRUE(daemon.is_ok()) << daemon.status().to_string();
  for (OwnerRole other : {OwnerRole::kDaemon, OwnerRole::kDaemonReadOnly, OwnerRole::kMkfs,
                          OwnerRole::kFsckRepair, OwnerRole::kFsckCheck}) {
    auto second = claim(other);
    ASSERT_FALSE(second.is_ok());
    EXPECT_EQ(second.status().code(), Code::kBusy);
    EXPECT_EQ(second.status().message().rfind(path_ + " is in use by ", 0), 0u)
        << second.status().message();
    EXPECT_NE(second.status().message().find(me() + "sealfs daemon, mounted read-write"),
              std::string::npos)
        << second.status().message();
    EXPECT_NE(second.status().message().find("region_owner_test"), std::string::npos)
        << "the holder's command line: " << second.status().message();
  }
  std::optional<RegionHolder> holder = RegionClaim::find_holder(open_region(O_RDONLY));
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->pid, getpid());
  EXPECT_EQ(holder->role, OwnerRole::kDaemon);
  daemon->reset();
  EXPECT_FALSE(RegionClaim::find_holder(open_region(O_RDONLY)).has_value());
  EXPECT_TRUE(claim(OwnerRole::kMkfs).is_ok());
}

TEST_F(RegionClaimTest, ReadersShareAndExcludeWriters) {
  auto ro_daemon = claim(OwnerRole::kDaemonReadOnly);
  ASSERT_TRUE(ro_daemon.is_ok());
  auto check = claim(OwnerRole::kFsckCheck);
  ASSERT_TRUE(check.is_ok()) << check.status().to_string();
  auto repair = claim(OwnerRole::kFsckRepair);
  ASSERT_FALSE(repair.is_ok());
  EXPECT_EQ(repair.status().code(), Code::kBusy);
}

// The daemon hands dups of its region descriptor to clients; a client that
// keeps one must not keep the region claimed.
TEST_F(RegionClaimTest, ADupOfTheRegionDescriptorDoesNotCarryTheClaim) {
  int region_fd = open_region();
  ClaimRequest request;
  request.role = OwnerRole::kDaemon;
  auto daemon = RegionClaim::acquire(region_fd, path_, request);
  ASSERT_TRUE(daemon.is_ok());
  int client_copy = fcntl(region_fd, F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(client_copy, 0);
  fds_.push_back(client_copy);
  daemon->reset();
  EXPECT_TRUE(claim(OwnerRole::kDaemon).is_ok());
}

TEST_F(RegionClaimTest, AClosingDaemonIsWaitedForAServingOneOnlyForItsGrace) {
  auto old_daemon = claim(OwnerRole::kDaemon);
  ASSERT_TRUE(old_daemon.is_ok());

  ClaimRequest request;
  request.wait_for_closing = 10s;
  request.wait_for_serving = 200ms;
  int waits = 0;
  request.on_wait = [&](const RegionHolder& holder) {
    ++waits;
    EXPECT_EQ(holder.pid, getpid());
  };
  // Serving for longer than the grace: refused after it.
  auto start = std::chrono::steady_clock::now();
  auto refused = claim(OwnerRole::kDaemon, request);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
  EXPECT_NE(refused.status().message().find("still after 0.2 s"), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(waits, 1);

  // Closing: waited for until it lets go.
  ASSERT_TRUE((*old_daemon)->change_role(OwnerRole::kDaemonClosing).is_ok());
  EXPECT_EQ(RegionClaim::find_holder(open_region(O_RDONLY))->role, OwnerRole::kDaemonClosing);
  std::thread closer([&] {
    std::this_thread::sleep_for(300ms);
    old_daemon->reset();
  });
  waits = 0;
  auto successor = claim(OwnerRole::kDaemon, request);
  closer.join();
  ASSERT_TRUE(successor.is_ok()) << successor.status().to_string();
  EXPECT_EQ(waits, 1);
}

TEST_F(RegionClaimTest, MkfsAndFsckHoldersAreNeverWaitedFor) {
  auto fsck = claim(OwnerRole::kFsckRepair);
  ASSERT_TRUE(fsck.is_ok());
  ClaimRequest request;
  request.wait_for_closing = 10s;
  request.wait_for_serving = 10s;
  auto start = std::chrono::steady_clock::now();
  auto daemon = claim(OwnerRole::kDaemon, request);
  ASSERT_FALSE(daemon.is_ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_NE(daemon.status().message().find("fsck.sealfs repairing"), std::string::npos);
}

TEST_F(RegionClaimTest, RegionOpenClaimsBeforeMapping) {
  RegionOptions options;
  options.claim = ClaimRequest{};
  options.claim->role = OwnerRole::kDaemon;
  auto first = RegionPmem2::open(path_, options);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  ASSERT_NE((*first)->claim(), nullptr);
  auto second = RegionPmem2::open(path_, options);
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), Code::kBusy);
  first->reset();
  EXPECT_TRUE(RegionPmem2::open(path_, options).is_ok());
}

// Locks that are not a sealfs tool's: a plain POSIX lock on the ownership
// byte shows no identity (refused after a short patience, never waited for
// forever), a whole-file one covers the identity bytes (refused at once,
// named by the pid a POSIX lock reports).
TEST_F(RegionClaimTest, AForeignLockIsRefusedNotWaitedForForever) {
  int other = open_region();
  struct flock byte0 {};
  byte0.l_type = F_WRLCK;
  byte0.l_whence = SEEK_SET;
  byte0.l_start = 0;
  byte0.l_len = 1;
  // POSIX and OFD locks conflict even within one process.
  ASSERT_EQ(fcntl(other, F_SETLK, &byte0), 0);
  ClaimRequest request;
  request.wait_for_closing = 60s;
  request.wait_for_serving = 60s;
  auto start = std::chrono::steady_clock::now();
  auto refused = claim(OwnerRole::kDaemon, request);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), Code::kBusy);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_NE(refused.status().message().find("not a sealfs tool"), std::string::npos)
      << refused.status().message();

  struct flock whole = byte0;
  whole.l_len = 0;  // to the end of every offset, identity bytes included
  ASSERT_EQ(fcntl(other, F_SETLK, &whole), 0);
  start = std::chrono::steady_clock::now();
  refused = claim(OwnerRole::kDaemon, request);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_NE(refused.status().message().find(me() + "another program's lock"), std::string::npos)
      << refused.status().message();
}

TEST_F(RegionClaimTest, CoversTellsWhetherAPathStillNamesTheClaimedFile) {
  auto mkfs = claim(OwnerRole::kMkfs);
  ASSERT_TRUE(mkfs.is_ok());
  EXPECT_TRUE((*mkfs)->covers(open_region(O_RDONLY)));
  std::string moved = path_ + ".moved";
  ASSERT_EQ(rename(path_.c_str(), moved.c_str()), 0);
  int replacement = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(replacement, 0);
  fds_.push_back(replacement);
  EXPECT_FALSE((*mkfs)->covers(replacement));
  unlink(path_.c_str());
  ASSERT_EQ(rename(moved.c_str(), path_.c_str()), 0);
}

}  // namespace
}  // namespace sealfs
