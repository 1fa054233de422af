// ExtentMap's change log: undo_to() restores exactly the map at the mark,
// whatever edits (insert, punch, set_unwritten, with their splits and
// merges) came after it; ExtentChain's log the same for its links.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "meta/extent_chain.h"
#include "meta/extent_map.h"

namespace sealfs {
namespace {

void random_edit(ExtentMap& map, std::mt19937_64& rng, uint64_t& next_region) {
  uint64_t fb = rng() % 512;
  uint64_t n = 1 + rng() % 24;
  switch (rng() % 3) {
    case 0: {
      // Map whatever of [fb, fb + n) is a hole.
      for (uint64_t b = fb; b < fb + n;) {
        if (const Extent* e = map.find(b)) {
          b = e->file_end();
          continue;
        }
        auto next = map.first_ending_after(b);
        uint64_t stop = next == map.end() ? fb + n : std::min(fb + n, next->second.file_block);
        // Sometimes contiguous with the extent in front: merges happen.
        uint64_t rb = rng() % 2 ? map.goal_for(b) + 100000 : next_region;
        next_region += stop - b + 7;
        map.insert(Extent{b, rb, stop - b, rng() % 2 == 0});
        b = stop;
      }
      break;
    }
    case 1:
      map.punch(fb, n);
      break;
    default:
      map.set_unwritten(fb, n, rng() % 2 == 0);
      break;
  }
}

TEST(ExtentMapUndo, UndoRestoresTheMapAtTheMark) {
  std::mt19937_64 rng(11);
  uint64_t next_region = 1000;
  ExtentMap map;
  for (int round = 0; round < 400; ++round) {
    for (int i = 0; i < 5; ++i) random_edit(map, rng, next_region);
    map.forget_changes();
    const auto before = map.to_vector();
    const uint64_t mapped = map.mapped_blocks();
    size_t mark = map.change_mark();
    int edits = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < edits; ++i) random_edit(map, rng, next_region);
    if (rng() % 3 == 0) {
      map.forget_changes();  // committed: nothing to undo
      continue;
    }
    map.undo_to(mark);
    ASSERT_EQ(map.to_vector(), before) << "round " << round;
    ASSERT_EQ(map.mapped_blocks(), mapped) << "round " << round;
  }
}

TEST(ExtentMapUndo, ChangesNameEveryKeyTouched) {
  ExtentMap map;
  map.insert(Extent{0, 100, 64, true});
  map.forget_changes();
  map.set_unwritten(10, 2, false);  // splits into three
  std::vector<uint64_t> keys;
  for (const auto& c : map.changes()) keys.push_back(c.key);
  auto has = [&](uint64_t k) { return std::find(keys.begin(), keys.end(), k) != keys.end(); };
  EXPECT_TRUE(has(0));
  EXPECT_TRUE(has(10));
  EXPECT_TRUE(has(12));
  EXPECT_EQ(map.count(), 3u);
  // Written again around it: merges back into one extent, keys logged.
  map.forget_changes();
  map.set_unwritten(0, 64, false);
  EXPECT_EQ(map.count(), 1u);
  keys.clear();
  for (const auto& c : map.changes()) keys.push_back(c.key);
  EXPECT_TRUE(has(10));
  EXPECT_TRUE(has(12));
}

TEST(ExtentChainUndo, UndoRestoresLinksAndStart) {
  ExtentChain chain;
  chain.load({{500, 0}, {501, 40}, {502, 90}}, 7);
  size_t mark = chain.change_mark();
  chain.insert(1, {600, 20});
  chain.erase(3);
  chain.set_synced_start(9);
  chain.erase(0);
  EXPECT_EQ(chain.size(), 2u);
  chain.undo_to(mark);
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[0], (ExtentChain::Link{500, 0}));
  EXPECT_EQ(chain[1], (ExtentChain::Link{501, 40}));
  EXPECT_EQ(chain[2], (ExtentChain::Link{502, 90}));
  EXPECT_EQ(chain.synced_start(), 7u);
  EXPECT_EQ(chain.index_of(0), 0u);
  EXPECT_EQ(chain.index_of(39), 0u);
  EXPECT_EQ(chain.index_of(40), 1u);
  EXPECT_EQ(chain.index_of(1000), 2u);
}

}  // namespace
}  // namespace sealfs
