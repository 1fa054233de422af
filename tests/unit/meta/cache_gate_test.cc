// CacheGate (src/meta/cache_gate.h): the quiescent point of the inode
// cache's trimmer.
#include "meta/cache_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace sealfs {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// A public operation that calls another opens a second pass on the same
// thread while the trimmer may be closing the gate: the gate cannot close
// while the first pass is open, so the second must not wait for it (it
// would wait out the trimmer's patience, behind itself).
TEST(CacheGateTest, ANestedPassDoesNotWaitForAClosingGate) {
  CacheGate gate;
  std::atomic<bool> closing{false};
  std::atomic<bool> closed{false};
  std::thread trimmer;
  milliseconds nested_took{0};
  {
    CacheGate::Pass outer(gate);
    trimmer = std::thread([&] {
      closing = true;
      closed = gate.close_within(std::chrono::seconds(3));
      if (closed) gate.open();
    });
    while (!closing) std::this_thread::yield();
    std::this_thread::sleep_for(milliseconds(100));  // the trimmer is waiting now
    const auto start = steady_clock::now();
    {
      CacheGate::Pass nested(gate);
    }
    nested_took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  }
  trimmer.join();
  EXPECT_LT(nested_took.count(), 1000);
  // The outer pass ended within the trimmer's patience: it closed.
  EXPECT_TRUE(closed);
}

// A pass opened after the gate closed waits until it opens again.
TEST(CacheGateTest, APassWaitsWhileTheGateIsClosed) {
  CacheGate gate;
  ASSERT_TRUE(gate.close_within(milliseconds(10)));
  std::atomic<bool> entered{false};
  std::thread op([&] {
    CacheGate::Pass pass(gate);
    entered = true;
  });
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_FALSE(entered);
  gate.open();
  op.join();
  EXPECT_TRUE(entered);
  // And with that pass ended, the gate closes again.
  EXPECT_TRUE(gate.close_within(milliseconds(10)));
  gate.open();
}

}  // namespace
}  // namespace sealfs
