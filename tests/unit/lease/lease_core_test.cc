// The lease state machine, driven directly with a fake clock.
#include "lease/lease_core.h"

#include <gtest/gtest.h>

#include <thread>

#include "lease_fakes.h"
#include "sealfs/sealfs.h"
#include "util/sync_point.h"

namespace sealfs::lease {
namespace {

using testing::FakeClock;
using testing::RecordingNotifier;
using testing::RecordingSink;
using testing::Sent;

constexpr uint64_t kSecond = 1'000'000'000ull;
constexpr uint64_t kIno = 42;

class LeaseCoreTest : public ::testing::Test {
 protected:
  LeaseCoreTest() { options_.break_time_ns = 10 * kSecond; options_.revoke_grace_ns = kSecond / 10; }

  LeaseCore& core() {
    if (!core_) core_ = std::make_unique<LeaseCore>(clock_, notifier_, &sink_, options_);
    return *core_;
  }

  Grant grant(uint64_t conn, uint32_t pid, uint32_t policy = wire::kPolicyDefault,
              uint64_t ino = kIno, bool layout_only = false) {
    GrantRequest r;
    r.conn = conn;
    r.holder = HolderId{pid, 1000 + pid};
    r.ino = ino;
    r.length = 2 << 20;
    r.prot = wire::kProtRead | wire::kProtWrite;
    r.policy = policy;
    r.layout_only = layout_only;
    r.extents = {MapExtent{0, 8 << 20, 2 << 20}};
    auto g = core().grant(r);
    EXPECT_TRUE(g.is_ok()) << g.status().to_string();
    return g.is_ok() ? *g : Grant{};
  }

  // Starts a change and returns a flag set when its continuation ran.
  std::shared_ptr<int> change(uint64_t ino = kIno, uint32_t reason = SEALFS_BREAK_TRUNCATE) {
    auto ran = std::make_shared<int>(0);
    // -1: answered with an error (engine shutdown at the end of a test)
    core().may_change_layout(ino, 0, UINT64_MAX, reason,
                             [ran](Status s) { *ran = s.is_ok() ? *ran + 1 : -1; });
    return ran;
  }

  FakeClock clock_;
  RecordingNotifier notifier_;
  RecordingSink sink_;
  LeaseOptions options_;
  std::unique_ptr<LeaseCore> core_;
};

TEST_F(LeaseCoreTest, ChangeWithoutLeasesRunsAtOnce) {
  auto ran = change();
  EXPECT_EQ(*ran, 1);
  EXPECT_TRUE(notifier_.sent.empty());
}

TEST_F(LeaseCoreTest, GrantPinsAndSeals) {
  Grant g = grant(1, 100);
  EXPECT_NE(g.lease_id, 0u);
  EXPECT_EQ(g.break_time_ns, 10 * kSecond);
  EXPECT_TRUE(core().sealed(kIno));
  EXPECT_FALSE(core().sealed(kIno + 1));
  EXPECT_EQ(sink_.pinned, std::vector<uint64_t>{g.lease_id});
  ASSERT_TRUE(core().release(1, g.lease_id).is_ok());
  EXPECT_FALSE(core().sealed(kIno));
  EXPECT_EQ(sink_.unpinned, std::vector<uint64_t>{g.lease_id});
}

TEST_F(LeaseCoreTest, ReleaseFromAnotherConnectionIsRefused) {
  Grant g = grant(1, 100);
  EXPECT_EQ(core().release(2, g.lease_id).code(), Code::kNotFound);
  EXPECT_EQ(core().release(1, g.lease_id + 7).code(), Code::kNotFound);
}

TEST_F(LeaseCoreTest, BreakWaitsForReleaseThenRunsAndBumpsGeneration) {
  Grant g = grant(1, 100);
  auto ran = change();
  EXPECT_EQ(*ran, 0);
  ASSERT_EQ(notifier_.sent.size(), 1u);
  EXPECT_EQ(notifier_.sent[0].kind, Sent::kBreak);
  EXPECT_EQ(notifier_.sent[0].lease_id, g.lease_id);
  EXPECT_EQ(notifier_.sent[0].reason, uint32_t(SEALFS_BREAK_TRUNCATE));
  EXPECT_EQ(notifier_.sent[0].deadline_ns, clock_.now_ns() + 10 * kSecond);
  EXPECT_TRUE(core().breaking(kIno));
  ASSERT_TRUE(core().release(1, g.lease_id).is_ok());
  EXPECT_EQ(*ran, 1);
  EXPECT_FALSE(core().breaking(kIno));
  EXPECT_EQ(notifier_.finished, std::vector<uint64_t>{kIno});
  Grant again = grant(1, 100);
  EXPECT_GT(again.generation, g.generation);
}

TEST_F(LeaseCoreTest, EveryHolderMustRelease) {
  Grant a = grant(1, 100), b = grant(2, 200), c = grant(3, 300);
  auto ran = change();
  EXPECT_EQ(notifier_.count(Sent::kBreak), 3u);
  ASSERT_TRUE(core().release(1, a.lease_id).is_ok());
  ASSERT_TRUE(core().release(3, c.lease_id).is_ok());
  EXPECT_EQ(*ran, 0);
  ASSERT_TRUE(core().release(2, b.lease_id).is_ok());
  EXPECT_EQ(*ran, 1);
}

TEST_F(LeaseCoreTest, TwoBreakersSendOneBreakAndBothRun) {
  Grant a = grant(1, 100), b = grant(2, 200);
  auto first = change(kIno, SEALFS_BREAK_TRUNCATE);
  auto second = change(kIno, SEALFS_BREAK_FALLOCATE);
  EXPECT_EQ(notifier_.count(Sent::kBreak), 2u);  // one per holder, not per breaker
  ASSERT_TRUE(core().release(1, a.lease_id).is_ok());
  ASSERT_TRUE(core().release(2, b.lease_id).is_ok());
  EXPECT_EQ(*first, 1);
  EXPECT_EQ(*second, 1);
}

TEST_F(LeaseCoreTest, GrantDuringBreakIsNxio) {
  Grant a = grant(1, 100);
  auto ran = change();
  GrantRequest r;
  r.conn = 2;
  r.holder = {200, 1};
  r.ino = kIno;
  r.length = 4096;
  r.prot = wire::kProtRead;
  EXPECT_EQ(core().grant(r).status().code(), Code::kNxio);
  EXPECT_EQ(core().check_register(1, a.lease_id).code(), Code::kNxio);
  ASSERT_TRUE(core().release(1, a.lease_id).is_ok());
  EXPECT_TRUE(core().grant(r).is_ok());
}

TEST_F(LeaseCoreTest, RegisterOnlyOnOwnLiveMapping) {
  Grant a = grant(1, 100);
  EXPECT_TRUE(core().check_register(1, a.lease_id).is_ok());
  EXPECT_EQ(core().check_register(2, a.lease_id).code(), Code::kInvalid);
  Grant l = grant(1, 100, wire::kPolicyDefault, kIno + 1, /*layout_only=*/true);
  EXPECT_EQ(core().check_register(1, l.lease_id).code(), Code::kInvalid);
}

TEST_F(LeaseCoreTest, FenceRevokesAtDeadlineAndQuarantinesAfterGrace) {
  Grant a = grant(1, 100);
  auto ran = change();
  clock_.advance(10 * kSecond - 1);
  core().tick();
  EXPECT_EQ(notifier_.count(Sent::kRevoke), 0u);
  clock_.advance(1);
  core().tick();
  EXPECT_EQ(notifier_.count(Sent::kRevoke), 1u);
  EXPECT_EQ(*ran, 0);  // within the ack grace
  EXPECT_EQ(core().next_deadline_ns(), clock_.now_ns() + kSecond / 10);
  clock_.advance(kSecond / 10);
  core().tick();
  EXPECT_EQ(*ran, 1);
  ASSERT_EQ(sink_.quarantined.size(), 1u);
  EXPECT_EQ(sink_.quarantined[0].ino, kIno);
  EXPECT_EQ(sink_.quarantined[0].holder, (HolderId{100, 1100}));
  EXPECT_EQ(sink_.quarantined[0].extents, (std::vector<MapExtent>{{0, 8 << 20, 2 << 20}}));
  EXPECT_TRUE(sink_.released.empty());
  // A late ack drops the record, but the quarantine waits for the holder's exit.
  ASSERT_TRUE(core().release(1, a.lease_id).is_ok());
  EXPECT_TRUE(sink_.released.empty());
  EXPECT_TRUE(core().holder_needed({100, 1100}));
  core().holder_exited({100, 1100});
  EXPECT_EQ(sink_.released, (std::vector<HolderId>{{100, 1100}}));
  EXPECT_FALSE(core().holder_needed({100, 1100}));
}

TEST_F(LeaseCoreTest, FenceAckWithinGraceCountsAsRelease) {
  Grant a = grant(1, 100);
  auto ran = change();
  clock_.advance(10 * kSecond);
  core().tick();
  ASSERT_EQ(notifier_.count(Sent::kRevoke), 1u);
  ASSERT_TRUE(core().release(1, a.lease_id).is_ok());
  EXPECT_EQ(*ran, 1);
  EXPECT_TRUE(sink_.quarantined.empty());
  EXPECT_FALSE(core().holder_needed({100, 1100}));
}

TEST_F(LeaseCoreTest, KillPolicySignalsAndQuarantinesAtDeadline) {
  grant(1, 100, wire::kPolicyKill);
  auto ran = change();
  clock_.advance(10 * kSecond);
  core().tick();
  EXPECT_EQ(notifier_.count(Sent::kKill), 1u);
  EXPECT_EQ(notifier_.count(Sent::kRevoke), 0u);
  EXPECT_EQ(*ran, 1);
  EXPECT_EQ(sink_.quarantined.size(), 1u);
  core().holder_exited({100, 1100});
  EXPECT_EQ(sink_.released.size(), 1u);
}

TEST_F(LeaseCoreTest, QuarantinePolicyLeavesHolderAlone) {
  grant(1, 100, wire::kPolicyQuarantine);
  auto ran = change();
  clock_.advance(10 * kSecond);
  core().tick();
  EXPECT_EQ(notifier_.count(Sent::kKill) + notifier_.count(Sent::kRevoke), 0u);
  EXPECT_EQ(*ran, 1);
  EXPECT_EQ(sink_.quarantined.size(), 1u);
}

TEST_F(LeaseCoreTest, PerGrantBreakTimeIsCapped) {
  options_.max_break_time_ns = 20 * kSecond;
  GrantRequest r;
  r.conn = 1;
  r.holder = {100, 1};
  r.ino = kIno;
  r.length = 4096;
  r.prot = wire::kProtRead;
  r.break_time_ns = 3600 * kSecond;
  auto g = core().grant(r);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(g->break_time_ns, 20 * kSecond);
  r.break_time_ns = kSecond;
  auto short_one = core().grant(r);
  ASSERT_TRUE(short_one.is_ok());
  auto ran = change();
  // The shorter lease is revoked first; the sampled deadlines differ.
  EXPECT_EQ(core().next_deadline_ns(), clock_.now_ns() + kSecond);
}

TEST_F(LeaseCoreTest, ClosedConnectionOfDeadHolderReleases) {
  grant(1, 100);
  auto ran = change();
  core().connection_closed(1, /*holder_alive=*/false);
  EXPECT_EQ(*ran, 1);
  EXPECT_TRUE(sink_.quarantined.empty());
}

TEST_F(LeaseCoreTest, ClosedConnectionOfLiveHolderQuarantinesOnBreak) {
  grant(1, 100);
  core().connection_closed(1, /*holder_alive=*/true);
  EXPECT_TRUE(core().sealed(kIno));  // orphaned: changes must still pass the gate
  auto ran = change();
  EXPECT_EQ(*ran, 1);               // nobody to wait for
  EXPECT_EQ(notifier_.count(Sent::kBreak), 0u);
  EXPECT_EQ(sink_.quarantined.size(), 1u);
  core().holder_exited({100, 1100});
  EXPECT_EQ(sink_.released.size(), 1u);
  EXPECT_FALSE(core().sealed(kIno));
}

TEST_F(LeaseCoreTest, ClosedConnectionDuringBreakUnblocksBreaker) {
  grant(1, 100);
  auto ran = change();
  core().connection_closed(1, /*holder_alive=*/true);
  EXPECT_EQ(*ran, 1);
  EXPECT_EQ(sink_.quarantined.size(), 1u);
}

TEST_F(LeaseCoreTest, HolderExitReleasesEverything) {
  grant(1, 100);
  grant(1, 100, wire::kPolicyDefault, kIno + 1);
  auto ran = change();
  core().holder_exited({100, 1100});
  EXPECT_EQ(*ran, 1);
  EXPECT_FALSE(core().sealed(kIno + 1));
  EXPECT_TRUE(sink_.released.empty());  // nothing was quarantined
}

TEST_F(LeaseCoreTest, LayoutLeasesAreNeitherPinnedNorQuarantined) {
  grant(1, 100, wire::kPolicyQuarantine, kIno, /*layout_only=*/true);
  EXPECT_TRUE(sink_.pinned.empty());
  auto ran = change();
  EXPECT_EQ(notifier_.count(Sent::kBreak), 1u);
  clock_.advance(10 * kSecond);
  core().tick();
  EXPECT_EQ(*ran, 1);
  EXPECT_TRUE(sink_.quarantined.empty());
}

TEST_F(LeaseCoreTest, PinFailureRefusesGrant) {
  sink_.fail_pin = true;
  GrantRequest r;
  r.conn = 1;
  r.holder = {100, 1};
  r.ino = kIno;
  r.length = 4096;
  r.prot = wire::kProtRead;
  EXPECT_EQ(core().grant(r).status().code(), Code::kNoSpace);
  EXPECT_FALSE(core().sealed(kIno));
}

TEST_F(LeaseCoreTest, QuarantineFailureKillsAndWaitsForExit) {
  sink_.fail_quarantine = true;
  grant(1, 100, wire::kPolicyQuarantine);
  auto ran = change();
  clock_.advance(10 * kSecond);
  core().tick();
  EXPECT_EQ(notifier_.count(Sent::kKill), 1u);
  EXPECT_EQ(*ran, 0);  // blocks could not be fenced off: wait for the exit
  clock_.advance(1000 * kSecond);
  core().tick();
  EXPECT_EQ(*ran, 0);
  core().holder_exited({100, 1100});
  EXPECT_EQ(*ran, 1);
}

TEST_F(LeaseCoreTest, ShutdownAnswersPendingBreakers) {
  grant(1, 100);
  Status got;
  core().may_change_layout(kIno, 0, 1, SEALFS_BREAK_UNMOUNT, [&](Status s) { got = s; });
  core_.reset();
  EXPECT_EQ(got.code(), Code::kIoError);
}

TEST_F(LeaseCoreTest, GenerationsNeverRepeatForAnInode) {
  Grant a = grant(1, 100);
  ASSERT_TRUE(core().release(1, a.lease_id).is_ok());
  auto ran = change();  // no leases: runs now, inode record was forgotten
  Grant b = grant(1, 100);
  EXPECT_GT(b.generation, a.generation);
}

#ifdef SEALFS_SYNC_POINTS
// A breaker arriving from another thread while a grant is being installed
// either sees the lease (and breaks it) or runs before it (and the grant
// then gets the new generation): never neither.
TEST_F(LeaseCoreTest, BreakerRacingGrantSeesTheLease) {
  std::mutex mu;
  std::condition_variable cv;
  bool in_grant = false;
  std::shared_ptr<int> ran;
  std::thread breaker;
  sync_point::arm("lease.grant.before_install", [&] {
    {
      std::lock_guard lock(mu);
      in_grant = true;
    }
    cv.notify_all();
  });
  breaker = std::thread([&] {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return in_grant; });
    lock.unlock();
    ran = change();
  });
  Grant g = grant(1, 100);
  breaker.join();
  sync_point::disarm_all();
  EXPECT_EQ(*ran, 0);
  EXPECT_EQ(notifier_.count(Sent::kBreak), 1u);
  ASSERT_TRUE(core().release(1, g.lease_id).is_ok());
  EXPECT_EQ(*ran, 1);
}
#endif

}  // namespace
}  // namespace sealfs::lease
