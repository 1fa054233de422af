// The control socket's connection budget and the per-uid warning throttle,
// without sockets.
#include "lease/conn_limits.h"

#include <gtest/gtest.h>

#include "lease/warning_throttle.h"

namespace sealfs::lease {
namespace {

using Verdict = ConnectionBudget::Verdict;

ConnectionLimits limits(uint32_t untrusted, uint32_t trusted, uint32_t total) {
  ConnectionLimits l;
  l.per_untrusted_uid = untrusted;
  l.per_trusted_uid = trusted;
  l.total = total;
  return l;
}

TEST(ConnectionBudget, AnUntrustedUidGetsItsShareAndNoMore) {
  ConnectionBudget budget(limits(4, 100, 100));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(budget.admit(1000, false), Verdict::kAdmit);
  EXPECT_EQ(budget.admit(1000, false), Verdict::kUidFull);
  EXPECT_EQ(budget.of_uid(1000), 4u);
  // Another uid is counted apart; a closed connection frees a place.
  EXPECT_EQ(budget.admit(1001, false), Verdict::kAdmit);
  budget.release(1000, false);
  EXPECT_EQ(budget.admit(1000, false), Verdict::kAdmit);
  EXPECT_EQ(budget.total(), 5u);
  EXPECT_EQ(budget.untrusted(), 5u);
}

// However many untrusted uids connect, half the total stays for trusted
// peers.
TEST(ConnectionBudget, UntrustedPeersTogetherGetAtMostHalf) {
  ConnectionBudget budget(limits(2, 100, 10));
  uint32_t uid = 2000;
  int admitted = 0;
  for (int i = 0; i < 20; ++i, ++uid) {
    if (budget.admit(uid, false) == Verdict::kAdmit) ++admitted;
  }
  EXPECT_EQ(admitted, 5);
  EXPECT_EQ(budget.admit(uid, false), Verdict::kUntrustedFull);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(budget.admit(0, true), Verdict::kAdmit) << i;
  EXPECT_EQ(budget.admit(0, true), Verdict::kTotalFull);
  EXPECT_EQ(budget.admit(uid, false), Verdict::kTotalFull);
}

TEST(ConnectionBudget, TrustedUidHasItsOwnCap) {
  ConnectionBudget budget(limits(1, 3, 100));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(budget.admit(0, true), Verdict::kAdmit);
  EXPECT_EQ(budget.admit(0, true), Verdict::kUidFull);
  budget.release(0, true);
  budget.release(0, true);
  budget.release(0, true);
  EXPECT_EQ(budget.of_uid(0), 0u);
  EXPECT_EQ(budget.total(), 0u);
}

TEST(ConnectionBudget, CapFollowsTheDescriptorLimit) {
  EXPECT_EQ(connection_cap_for_fd_limit(1024), 256u);    // (1024 - 256) / 3
  EXPECT_EQ(connection_cap_for_fd_limit(20000), 1024u);  // at most 1024
  EXPECT_EQ(connection_cap_for_fd_limit(100), 16u);      // at least 16
  // Three descriptors per connection plus the reserve fit under the limit.
  for (uint64_t limit : {512u, 1024u, 2048u, 3328u}) {
    EXPECT_LE(connection_cap_for_fd_limit(limit) * 3 + 256, limit) << limit;
  }
}

TEST(WarningThrottle, OnePerKeyPerIntervalWithTheCountHeldBack) {
  WarningThrottle throttle(1000);
  uint64_t held = 99;
  EXPECT_TRUE(throttle.allow(7, 0, &held));
  EXPECT_EQ(held, 0u);
  for (uint64_t t = 1; t < 1000; t += 100) EXPECT_FALSE(throttle.allow(7, t, &held));
  EXPECT_TRUE(throttle.allow(8, 500, &held)) << "another key is not held back";
  EXPECT_EQ(held, 0u);
  EXPECT_TRUE(throttle.allow(7, 1000, &held));
  EXPECT_EQ(held, 10u);
  EXPECT_FALSE(throttle.allow(7, 1999, &held));
  EXPECT_TRUE(throttle.allow(7, 5000, &held));
  EXPECT_EQ(held, 1u);
}

}  // namespace
}  // namespace sealfs::lease
