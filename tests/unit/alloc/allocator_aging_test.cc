// Aging: does aligned space survive many fill/free cycles?
//
// A 512 MiB data area with 2 MiB (512-block) alignment is filled to 90% with
// mixed sizes, a random half is freed, ten times over. In the last round at
// least 95% of the allocations of 2 MiB or more must come back 2 MiB-aligned,
// or the small ones are fragmenting the aligned space.
#include <gtest/gtest.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "alloc/allocator.h"
#include "alloc_fixture.h"

namespace sealfs {
namespace {

using testing_alloc::AllocEnv;
using testing_alloc::Layout;

TEST(AllocatorAgingTest, AlignedShareAfterTenRounds) {
  constexpr uint64_t kAlign = 512;
  constexpr int kRounds = 10;
  Layout layout;
  layout.data_blocks = 131072;  // 512 MiB
  layout.align_blocks = kAlign;
  layout.journal_blocks = 256;
  AllocEnv env(layout);
  ASSERT_NO_FATAL_FAILURE(env.format());

  const uint64_t seed = 20261121;
  std::mt19937_64 rng(seed);
  auto random_size = [&]() -> uint64_t {
    uint64_t pick = rng() % 100;
    if (pick < 15) return 512;
    if (pick < 25) return 1024;
    double x = std::uniform_real_distribution<double>(0.0, std::log(4096.0))(rng);
    return std::max<uint64_t>(1, static_cast<uint64_t>(std::exp(x)));
  };

  const uint64_t target_used = layout.data_blocks * 9 / 10;
  std::vector<BlockExtent> held;
  uint64_t used = 0;
  double last_share = 0;
  for (int round = 1; round <= kRounds; ++round) {
    uint64_t large = 0, large_aligned = 0, no_space = 0;
    while (used < target_used) {
      uint64_t count = random_size();
      Transaction txn = env.journal().begin();
      auto r = env.alloc().allocate(txn, count, 0, count);
      if (!r.is_ok()) {
        ASSERT_EQ(r.status().code(), Code::kNoSpace);
        if (++no_space > 1000) break;
        continue;
      }
      ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
      if (count >= kAlign) {
        ++large;
        if (r->start % kAlign == 0) ++large_aligned;
      }
      held.push_back(*r);
      used += r->count;
    }
    std::shuffle(held.begin(), held.end(), rng);
    size_t keep = held.size() / 2;
    for (size_t i = keep; i < held.size(); ++i) {
      env.give_back(held[i]);
      used -= held[i].count;
    }
    held.resize(keep);
    ASSERT_EQ(env.alloc().free_blocks(), layout.data_blocks - used);
    last_share = large == 0 ? 0 : static_cast<double>(large_aligned) / static_cast<double>(large);
    std::printf("round %2d: %" PRIu64 " allocations >= 2 MiB, %" PRIu64
                " aligned (%.1f%%), %zu free extents, %" PRIu64 " ENOSPC\n",
                round, large, large_aligned, 100.0 * last_share, env.alloc().free_extents().size(),
                no_space);
  }
  ::testing::Test::RecordProperty("aligned_share_round10", std::to_string(last_share));
  EXPECT_GE(last_share, 0.95);
}

}  // namespace
}  // namespace sealfs
