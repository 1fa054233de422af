// ExtentIndex against std::map: the same answers through random inserts,
// erases and lookups, in both of its states; and what a one-extent file's
// map costs on the heap once its transaction has committed (one block).
#include "meta/extent_index.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <iterator>
#include <map>
#include <new>
#include <random>
#include <vector>

#include "meta/extent_map.h"

namespace {
// Live heap blocks of this test binary, to see what a map keeps.
std::atomic<int64_t> live_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  live_allocations.fetch_add(1, std::memory_order_relaxed);
  return p;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  live_allocations.fetch_sub(1, std::memory_order_relaxed);
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }

namespace sealfs {
namespace {

Extent extent_at(uint64_t key) { return Extent{key, 1000 + key, 1, key % 3 == 0}; }

void expect_same(const ExtentIndex& index, const std::map<uint64_t, Extent>& model) {
  ASSERT_EQ(index.size(), model.size());
  ASSERT_EQ(index.empty(), model.empty());
  auto m = model.begin();
  for (auto it = index.begin(); it != index.end(); ++it, ++m) {
    ASSERT_EQ(it->first, m->first);
    ASSERT_EQ(it->second, m->second);
  }
  // Backwards from end(), as ExtentMap's lookups step back from a bound.
  auto back = model.rbegin();
  for (auto it = index.end(); it != index.begin(); ++back) {
    --it;
    ASSERT_EQ(it->first, back->first);
  }
  for (uint64_t key = 0; key < 40; ++key) {
    auto lo = index.lower_bound(key);
    auto mlo = model.lower_bound(key);
    ASSERT_EQ(lo == index.end(), mlo == model.end()) << key;
    if (mlo != model.end()) {
      ASSERT_EQ(lo->first, mlo->first) << key;
    }
    auto up = index.upper_bound(key);
    auto mup = model.upper_bound(key);
    ASSERT_EQ(up == index.end(), mup == model.end()) << key;
    if (mup != model.end()) {
      ASSERT_EQ(up->first, mup->first) << key;
    }
    ASSERT_EQ(up == index.begin(), mup == model.begin()) << key;
  }
}

TEST(ExtentIndexTest, AnswersAsStdMapThroughRandomEdits) {
  std::mt19937_64 rng(12);
  for (int round = 0; round < 200; ++round) {
    ExtentIndex index;
    std::map<uint64_t, Extent> model;
    for (int step = 0; step < 30; ++step) {
      uint64_t key = rng() % 40;
      if (rng() % 3 != 0) {
        auto [it, added] = index.emplace(key, extent_at(key));
        auto [mit, madded] = model.emplace(key, extent_at(key));
        ASSERT_EQ(added, madded);
        ASSERT_EQ(it->first, key);
      } else {
        auto it = index.lower_bound(key);
        auto mit = model.lower_bound(key);
        if (mit == model.end()) continue;
        auto next = index.erase(it);
        auto mnext = model.erase(mit);
        ASSERT_EQ(next == index.end(), mnext == model.end());
        if (mnext != model.end()) {
          ASSERT_EQ(next->first, mnext->first);
        }
      }
      ASSERT_NO_FATAL_FAILURE(expect_same(index, model));
      // An edit through an iterator lands in the entry.
      if (!model.empty()) {
        auto it = index.find(model.begin()->first);
        ASSERT_NE(it, index.end());
        it->second.length += 1;
        model.begin()->second.length += 1;
        ASSERT_NO_FATAL_FAILURE(expect_same(index, model));
      }
    }
    index.clear();
    EXPECT_TRUE(index.empty());
    EXPECT_EQ(index.begin(), index.end());
  }
}

TEST(ExtentIndexTest, ErasingKeepsOtherIteratorsValid) {
  ExtentIndex index;
  for (uint64_t key : {5, 1, 9}) index.emplace(key, extent_at(key));
  auto first = index.find(1);
  auto last = index.find(9);
  auto after = index.erase(index.find(5));
  EXPECT_EQ(after, last);
  EXPECT_EQ(first->first, 1u);
  EXPECT_EQ(std::next(first), last);
  index.erase(first);
  index.erase(last);
  EXPECT_TRUE(index.empty());
  index.emplace(3, extent_at(3));
  EXPECT_EQ(index.begin()->first, 3u);
}

// What a map keeps on the heap once its transaction has committed: nothing
// while it is empty (most cached inodes: inline files, symlinks, devices),
// one block for a file with one extent (no tree node, no change-log buffer).
TEST(ExtentIndexTest, ACommittedMapHoldsAtMostOneHeapBlockPerFile) {
  auto map = std::make_unique<ExtentMap>();
  const int64_t before = live_allocations.load();
  map->insert(Extent{0, 4096, 1, false});
  map->forget_changes();
  EXPECT_EQ(live_allocations.load() - before, 1);
  map->clear();
  EXPECT_EQ(live_allocations.load() - before, 0);
  map->insert_as_stored(Extent{0, 4096, 1, false});
  map->forget_changes();
  EXPECT_EQ(live_allocations.load() - before, 1);
  // A second extent makes a tree; it is freed with the map's contents.
  map->insert(Extent{8, 9000, 1, false});
  map->forget_changes();
  EXPECT_GT(live_allocations.load() - before, 1);
  // Emptied and committed: nothing left.
  EXPECT_EQ(map->punch(0, 16).size(), 2u);
  map->forget_changes();
  EXPECT_EQ(live_allocations.load() - before, 0);
  EXPECT_TRUE(map->empty());
  EXPECT_EQ(map->begin(), map->end());
  EXPECT_EQ(map->find(0), nullptr);
  EXPECT_EQ(map->mapped_blocks(), 0u);
}

}  // namespace
}  // namespace sealfs
