// Randomised model test: the allocator against a per-block owner map.
//
// Seed: SEALFS_SEED if set, else random; printed with every failure.
#include <gtest/gtest.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "alloc/allocator.h"
#include "alloc_fixture.h"

namespace sealfs {
namespace {

using testing_alloc::AllocEnv;
using testing_alloc::Layout;

uint64_t pick_seed() {
  if (const char* s = std::getenv("SEALFS_SEED")) return std::strtoull(s, nullptr, 0);
  return std::random_device{}();
}

class Model {
 public:
  // 0 = free; positive = owned extent id; negative = quarantined (-holder).
  explicit Model(uint64_t blocks) : owner_(blocks, 0) {}
  std::vector<int64_t>& owner() { return owner_; }
  uint64_t free_count() const {
    uint64_t n = 0;
    for (int64_t o : owner_) n += o == 0 ? 1 : 0;
    return n;
  }
  uint64_t quarantined_count() const {
    uint64_t n = 0;
    for (int64_t o : owner_) n += o < 0 ? 1 : 0;
    return n;
  }
  uint64_t longest_free_run() const {
    uint64_t best = 0, run = 0;
    for (int64_t o : owner_) {
      run = o == 0 ? run + 1 : 0;
      best = std::max(best, run);
    }
    return best;
  }
  std::vector<BlockExtent> free_runs(uint64_t base) const {
    std::vector<BlockExtent> out;
    for (uint64_t i = 0; i < owner_.size(); ++i) {
      if (owner_[i] != 0) continue;
      if (!out.empty() && out.back().end() == base + i) {
        ++out.back().count;
      } else {
        out.push_back({base + i, 1});
      }
    }
    return out;
  }

 private:
  std::vector<int64_t> owner_;
};

struct Owned {
  BlockExtent extent;
  int64_t id;
};

TEST(AllocatorModelTest, RandomOperationsMatchTheModel) {
  const uint64_t seed = pick_seed();
  std::printf("allocator model test seed %" PRIu64 " (set SEALFS_SEED to replay)\n", seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);

  Layout layout;
  layout.data_blocks = 8192;
  layout.align_blocks = 32;
  layout.holder_blocks = 2;
  layout.journal_blocks = 256;
  AllocEnv env(layout);
  ASSERT_NO_FATAL_FAILURE(env.format());
  const uint64_t base = env.area().data_start;
  Model model(layout.data_blocks);
  std::vector<Owned> owned;
  int64_t next_id = 1;
  constexpr int kHolders = 5;

  auto random_size = [&]() -> uint64_t {
    if (rng() % 8 == 0) return 32 * (1 + rng() % 4);  // exact multiples of align
    double x = std::uniform_real_distribution<double>(0.0, std::log(200.0))(rng);
    return std::max<uint64_t>(1, static_cast<uint64_t>(std::exp(x)));
  };
  auto check_inside_and_free = [&](BlockExtent e) {
    ASSERT_GE(e.start, base);
    ASSERT_LE(e.end(), base + layout.data_blocks);
    for (uint64_t b = e.start; b < e.end(); ++b) {
      ASSERT_EQ(model.owner()[b - base], 0) << "block " << b << " handed out twice";
    }
  };
  auto mark = [&](BlockExtent e, int64_t value) {
    for (uint64_t b = e.start; b < e.end(); ++b) model.owner()[b - base] = value;
  };
  auto full_check = [&]() {
    ASSERT_EQ(env.alloc().free_blocks(), model.free_count());
    ASSERT_EQ(env.alloc().quarantined_blocks(), model.quarantined_count());
    ASSERT_EQ(env.alloc().free_extents(), model.free_runs(base));
  };

  const int kSteps = 100000;
  for (int step = 0; step < kSteps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const bool commit = rng() % 10 != 0;
    const int op = static_cast<int>(rng() % 100);
    if (op < 45 || owned.empty()) {
      // Allocate, sometimes with a goal, sometimes accepting less.
      uint64_t count = random_size();
      uint64_t min_count = rng() % 4 == 0 ? 1 + rng() % count : count;
      uint64_t goal = 0;
      if (!owned.empty() && rng() % 3 == 0) goal = owned[rng() % owned.size()].extent.end();
      Transaction txn = env.journal().begin();
      auto r = env.alloc().allocate(txn, count, goal, min_count);
      if (!r.is_ok()) {
        ASSERT_EQ(r.status().code(), Code::kNoSpace);
        ASSERT_LT(model.longest_free_run(), min_count);
        continue;
      }
      ASSERT_GE(r->count, min_count);
      ASSERT_LE(r->count, count);
      ASSERT_NO_FATAL_FAILURE(check_inside_and_free(*r));
      if (commit) {
        ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
        mark(*r, next_id);
        owned.push_back({*r, next_id++});
      }
    } else if (op < 80) {
      // Free; meanwhile another transaction allocates and must not get it.
      size_t i = rng() % owned.size();
      Owned victim = owned[i];
      Transaction txn = env.journal().begin();
      env.alloc().free(txn, victim.extent);
      Transaction other = env.journal().begin();
      auto r = env.alloc().allocate(other, random_size(), victim.extent.start, 1);
      if (r.is_ok()) {
        ASSERT_NO_FATAL_FAILURE(check_inside_and_free(*r));
      }
      if (commit) {
        ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
        mark(victim.extent, 0);
        owned[i] = owned.back();
        owned.pop_back();
      } else {
        Transaction dropped = std::move(txn);
      }
      if (r.is_ok()) {
        ASSERT_TRUE(env.journal().commit(std::move(other)).is_ok());
        mark(*r, next_id);
        owned.push_back({*r, next_id++});
      }
    } else if (op < 90) {
      // Quarantine an owned extent against a holder.
      size_t i = rng() % owned.size();
      Owned victim = owned[i];
      auto holder = static_cast<uint32_t>(1 + rng() % kHolders);
      Transaction txn = env.journal().begin();
      Status s = env.alloc().quarantine(txn, victim.extent, Holder{holder, 7}, victim.id);
      if (!s.is_ok()) {
        ASSERT_EQ(s.code(), Code::kNoSpace);
        continue;
      }
      if (commit) {
        ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
        mark(victim.extent, -static_cast<int64_t>(holder));
        owned[i] = owned.back();
        owned.pop_back();
      }
    } else {
      // Release a holder.
      auto holder = static_cast<int64_t>(1 + rng() % kHolders);
      Transaction txn = env.journal().begin();
      ASSERT_TRUE(env.alloc().release_holder(txn, Holder{static_cast<uint32_t>(holder), 7}).is_ok());
      if (commit) {
        ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
        for (auto& o : model.owner()) {
          if (o == -holder) o = 0;
        }
      }
    }
    if (step % 97 == 0) {
      ASSERT_NO_FATAL_FAILURE(full_check());
    }
    if (step % 10000 == 9999) {
      // The media image alone must reproduce the same state, after a clean
      // restart and after a power loss (every transaction here committed).
      auto before = env.alloc().free_extents();
      auto entries = env.alloc().quarantine_entries();
      Status s = rng() % 2 == 0 ? env.reopen() : env.reopen_after_crash(rng());
      ASSERT_TRUE(s.is_ok()) << s.to_string();
      ASSERT_EQ(env.alloc().free_extents(), before);
      ASSERT_EQ(env.alloc().quarantine_entries().size(), entries.size());
      ASSERT_NO_FATAL_FAILURE(full_check());
      ASSERT_NO_FATAL_FAILURE(env.expect_media_matches_dram());
    }
  }
  ASSERT_NO_FATAL_FAILURE(full_check());
  // Give everything back: the area must be one free extent again.
  for (const Owned& o : owned) env.give_back(o.extent);
  for (uint32_t h = 1; h <= kHolders; ++h) {
    Transaction txn = env.journal().begin();
    ASSERT_TRUE(env.alloc().release_holder(txn, Holder{h, 7}).is_ok());
    ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
  }
  EXPECT_EQ(env.alloc().free_extents(), (std::vector<BlockExtent>{{base, layout.data_blocks}}));
}

}  // namespace
}  // namespace sealfs
