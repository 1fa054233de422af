// Exclusive leases (lease_core.h): granted only while every open handle of
// the file is the holder's process's, broken when another process opens it.
// The core is driven directly, with a fake clock and a fake thread owner.
#include <gtest/gtest.h>

#include <map>

#include "lease/lease_core.h"
#include "lease_fakes.h"
#include "sealfs/sealfs.h"

namespace sealfs::lease {
namespace {

using testing::FakeClock;
using testing::RecordingNotifier;
using testing::RecordingSink;
using testing::Sent;

constexpr uint64_t kSecond = 1'000'000'000ull;
constexpr uint64_t kIno = 42;
constexpr uint32_t kHolderPid = 100;
constexpr uint32_t kHolderThread = 101;  // another thread of the holder
constexpr uint32_t kOtherPid = 200;

class ExclusiveLeaseTest : public ::testing::Test {
 protected:
  ExclusiveLeaseTest() {
    options_.break_time_ns = 10 * kSecond;
    options_.revoke_grace_ns = 0;
    // Every thread started at tick 1 unless a test says otherwise.
    threads_[kHolderPid] = {kHolderPid, 1};
    threads_[kHolderThread] = {kHolderPid, 1};
    threads_[kOtherPid] = {kOtherPid, 1};
  }

  LeaseCore& core() {
    if (!core_) {
      core_ = std::make_unique<LeaseCore>(clock_, notifier_, &sink_, options_);
      core_->set_thread_owner([this](const HolderId& holder, uint32_t tid,
                                     std::optional<uint64_t> opened_at) {
        auto it = threads_.find(tid);
        if (it == threads_.end() || it->second.pid != holder.pid) return false;
        return !opened_at || it->second.started <= *opened_at;
      });
    }
    return *core_;
  }

  static HolderId holder(uint32_t pid) { return HolderId{pid, 1000 + pid}; }

  // A read-write exclusive request of kIno by `pid` on connection `conn`.
  static GrantRequest request(uint64_t conn, uint32_t pid) {
    GrantRequest r;
    r.conn = conn;
    r.holder = holder(pid);
    r.ino = kIno;
    r.length = 2 << 20;
    r.prot = wire::kProtRead | wire::kProtWrite;
    r.exclusive = true;
    r.extents = {MapExtent{0, 8 << 20, 2 << 20}};
    return r;
  }

  Result<Grant> grant(uint64_t conn, uint32_t pid, bool exclusive = true) {
    GrantRequest r = request(conn, pid);
    r.exclusive = exclusive;
    return core().grant(r);
  }

  uint64_t open_by(uint32_t tid, uint64_t tick = 5) { return core().file_opened(kIno, {tid, tick}); }

  // Starts an open's wait; the flag counts runs (-1: answered with an error).
  std::shared_ptr<int> wait_open(uint32_t tid) {
    auto ran = std::make_shared<int>(0);
    core().may_open(kIno, {tid, 5}, [ran](Status s) { *ran = s.is_ok() ? *ran + 1 : -1; });
    return ran;
  }

  struct Thread {
    uint32_t pid;
    uint64_t started;
  };
  std::map<uint32_t, Thread> threads_;
  FakeClock clock_;
  RecordingNotifier notifier_;
  RecordingSink sink_;
  LeaseOptions options_;
  std::unique_ptr<LeaseCore> core_;
};

TEST_F(ExclusiveLeaseTest, RefusedWhileAnotherProcessHasTheFileOpen) {
  const uint64_t handle = open_by(kOtherPid);
  auto refused = grant(1, kHolderPid);
  EXPECT_EQ(refused.status().code(), Code::kBusy);
  EXPECT_TRUE(core().open_elsewhere(kIno, holder(kHolderPid)));
  EXPECT_FALSE(core().sealed(kIno));
  EXPECT_TRUE(sink_.pinned.empty());
  // A lease that is not exclusive does not care.
  EXPECT_TRUE(grant(2, kHolderPid, /*exclusive=*/false).is_ok());
  core().file_closed(kIno, handle);
  EXPECT_TRUE(grant(1, kHolderPid).is_ok());
}

TEST_F(ExclusiveLeaseTest, TheHoldersOwnOpensOfAnyThreadAreNoObstacle) {
  open_by(kHolderPid);
  open_by(kHolderThread);
  EXPECT_TRUE(grant(1, kHolderPid).is_ok());
  // Nor do they break it.
  EXPECT_FALSE(core().open_blocked(kIno, {kHolderThread, 9}));
  auto ran = wait_open(kHolderThread);
  EXPECT_EQ(*ran, 1);
  EXPECT_EQ(notifier_.count(Sent::kBreak), 0u);
}

TEST_F(ExclusiveLeaseTest, AThreadNumberReusedAfterTheOpenIsNotTheOpener) {
  // The handle was opened at tick 5 by a thread numbered 101; the holder's
  // thread 101 started at tick 7: another thread got the number since.
  threads_[kHolderThread].started = 7;
  open_by(kHolderThread, /*tick=*/5);
  EXPECT_EQ(grant(1, kHolderPid).status().code(), Code::kBusy);
}

TEST_F(ExclusiveLeaseTest, AnOpenerOutsideTheDaemonsPidNamespaceIsAnotherProcess) {
  open_by(0);
  EXPECT_EQ(grant(1, kHolderPid).status().code(), Code::kBusy);
}

TEST_F(ExclusiveLeaseTest, AnotherProcessesOpenBreaksAndWaitsForTheRelease) {
  auto exclusive = grant(1, kHolderPid);
  auto shared = grant(2, 300, /*exclusive=*/false);
  ASSERT_TRUE(exclusive.is_ok() && shared.is_ok());
  open_by(kOtherPid);
  EXPECT_TRUE(core().open_blocked(kIno, {kOtherPid, 5}));
  auto ran = wait_open(kOtherPid);
  EXPECT_EQ(*ran, 0);
  ASSERT_EQ(notifier_.count(Sent::kBreak), 1u);  // the exclusive one only
  EXPECT_EQ(notifier_.sent[0].lease_id, exclusive->lease_id);
  EXPECT_EQ(notifier_.sent[0].reason, uint32_t(SEALFS_BREAK_SHARED));
  // While it waits, its handle refuses the holder a new exclusive lease.
  EXPECT_EQ(grant(3, kHolderPid).status().code(), Code::kBusy);
  ASSERT_TRUE(core().release(1, exclusive->lease_id).is_ok());
  EXPECT_EQ(*ran, 1);
  EXPECT_FALSE(core().open_blocked(kIno, {kOtherPid, 5}));
  EXPECT_TRUE(core().sealed(kIno));  // the other lease stays
}

// Revoking would kill a stopped holder (fence) or leave its mapping live
// beside the opener's page cache (quarantine): the open is refused instead.
TEST_F(ExclusiveLeaseTest, AHolderThatDoesNotLetGoKeepsItAndTheOpenIsRefused) {
  auto exclusive = grant(1, kHolderPid);
  ASSERT_TRUE(exclusive.is_ok());
  open_by(kOtherPid);
  auto ran = wait_open(kOtherPid);
  clock_.advance(10 * kSecond);
  core().tick();
  EXPECT_EQ(*ran, -1);
  EXPECT_TRUE(sink_.quarantined.empty());
  EXPECT_EQ(notifier_.count(Sent::kRevoke), 0u);
  auto held = core().lease_of(1, exclusive->lease_id);
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->state, LeaseState::kActive);
  // The next open breaks it again.
  auto again = wait_open(kOtherPid);
  EXPECT_EQ(notifier_.count(Sent::kBreak), 2u);
  ASSERT_TRUE(core().release(1, exclusive->lease_id).is_ok());
  EXPECT_EQ(*again, 1);
}

// A layout change that joined the break needs the blocks: its revoke rules,
// and the open goes on with it.
TEST_F(ExclusiveLeaseTest, ALayoutChangeThatJoinedRevokesAtTheDeadline) {
  ASSERT_TRUE(grant(1, kHolderPid).is_ok());
  auto opened = wait_open(kOtherPid);
  auto changed = std::make_shared<int>(0);
  core().may_change_layout(kIno, 0, UINT64_MAX, SEALFS_BREAK_TRUNCATE,
                           [changed](Status s) { *changed = s.is_ok() ? 1 : -1; });
  clock_.advance(10 * kSecond);
  core().tick();
  EXPECT_EQ(*changed, 1);
  EXPECT_EQ(*opened, 1);
  EXPECT_EQ(sink_.quarantined.size(), 1u);
}

// An open waits at most the mount's break time, whatever the holder asked.
TEST_F(ExclusiveLeaseTest, AnOpenWaitsNoLongerThanTheMountsBreakTime) {
  GrantRequest r = request(1, kHolderPid);
  r.break_time_ns = 600 * kSecond;
  ASSERT_TRUE(core().grant(r).is_ok());
  wait_open(kOtherPid);
  ASSERT_EQ(notifier_.count(Sent::kBreak), 1u);
  EXPECT_EQ(notifier_.sent[0].deadline_ns, clock_.now_ns() + 10 * kSecond);
}

TEST_F(ExclusiveLeaseTest, AnOrphanedExclusiveLeaseIsQuarantinedAtOnce) {
  ASSERT_TRUE(grant(1, kHolderPid).is_ok());
  core().connection_closed(1, /*holder_alive=*/true);
  auto ran = wait_open(kOtherPid);
  EXPECT_EQ(*ran, 1);
  EXPECT_EQ(notifier_.count(Sent::kBreak), 0u);
  EXPECT_EQ(sink_.quarantined.size(), 1u);
}

TEST_F(ExclusiveLeaseTest, ALayoutChangeJoinsTheOpensBreak) {
  auto exclusive = grant(1, kHolderPid);
  ASSERT_TRUE(exclusive.is_ok());
  auto opened = wait_open(kOtherPid);
  auto changed = std::make_shared<int>(0);
  core().may_change_layout(kIno, 0, UINT64_MAX, SEALFS_BREAK_TRUNCATE,
                           [changed](Status s) { *changed = s.is_ok() ? 1 : -1; });
  EXPECT_EQ(notifier_.count(Sent::kBreak), 1u);  // one break for both
  ASSERT_TRUE(core().release(1, exclusive->lease_id).is_ok());
  EXPECT_EQ(*opened, 1);
  EXPECT_EQ(*changed, 1);
}

TEST_F(ExclusiveLeaseTest, ShutdownAnswersWaitingOpens) {
  ASSERT_TRUE(grant(1, kHolderPid).is_ok());
  auto ran = wait_open(kOtherPid);
  core_.reset();
  EXPECT_EQ(*ran, -1);
}

TEST_F(ExclusiveLeaseTest, LayoutLeasesAreNeverExclusive) {
  open_by(kOtherPid);
  GrantRequest r = request(1, kHolderPid);
  r.layout_only = true;
  ASSERT_TRUE(core().grant(r).is_ok());
  EXPECT_FALSE(core().open_blocked(kIno, {kOtherPid, 5}));
}

}  // namespace
}  // namespace sealfs::lease
