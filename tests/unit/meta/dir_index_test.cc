// DirIndex against std::map: the same answers through random adds, moves,
// erases and shrinks (tombstones, rebuilds, erasing everything), names of
// every length up to kNameMax, and what a built index costs per name.
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "meta/directory.h"
#include "sealfs/format.h"

namespace {
// Heap bytes live in this test binary (as malloc rounds them), to see what
// an index keeps.
std::atomic<int64_t> live_bytes{0};
}  // namespace

void* operator new(std::size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  live_bytes.fetch_add(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  return p;
}
// Not inlined: GCC would see the standard containers' `new` paired with
// this free() and warn (-Wmismatched-new-delete), though both are ours.
[[gnu::noinline]] void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  live_bytes.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }

namespace sealfs {
namespace {

DirLocation loc_for(uint64_t n) {
  return DirLocation{n + 1, static_cast<uint32_t>(n / 7), static_cast<uint16_t>(n % 4096),
                     static_cast<uint8_t>(n % 16)};
}

void expect_same(const DirIndex& index, const std::map<std::string, DirLocation>& model,
                 const std::vector<std::string>& probes) {
  ASSERT_EQ(index.size(), model.size());
  ASSERT_EQ(index.empty(), model.empty());
  for (const std::string& name : probes) {
    const std::optional<DirLocation> got = index.find(name);
    auto want = model.find(name);
    if (want == model.end()) {
      ASSERT_FALSE(got.has_value()) << name;
      continue;
    }
    ASSERT_TRUE(got.has_value()) << name;
    EXPECT_EQ(got->ino, want->second.ino) << name;
    EXPECT_EQ(got->block_index, want->second.block_index) << name;
    EXPECT_EQ(got->offset, want->second.offset) << name;
    EXPECT_EQ(got->type, want->second.type) << name;
  }
}

TEST(DirIndexTest, MatchesAMapThroughRandomChanges) {
  std::mt19937_64 rng(12);
  // A pool of names small enough that adds, moves and erases meet often,
  // of lengths 1..kNameMax.
  std::vector<std::string> pool;
  for (int i = 0; i < 600; ++i) {
    const size_t len = 1 + rng() % format::kNameMax;
    std::string name(len, 'a');
    for (char& c : name) c = static_cast<char>('a' + rng() % 26);
    name += std::to_string(i);
    if (name.size() > format::kNameMax) name.erase(0, name.size() - format::kNameMax);
    pool.push_back(name);
  }
  DirIndex index;
  std::map<std::string, DirLocation> model;
  for (int step = 0; step < 20000; ++step) {
    const std::string& name = pool[rng() % pool.size()];
    const DirLocation loc = loc_for(rng() % 100000);
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2:
        EXPECT_EQ(index.add(name, loc), model.emplace(name, loc).second);
        break;
      case 3:
        index.set(name, loc);
        model[name] = loc;
        break;
      case 4:
      case 5:
        EXPECT_EQ(index.erase(name), model.erase(name) == 1);
        break;
      case 6:
        if (std::optional<DirLocation> at = index.find(name)) {
          at->ino = loc.ino;  // a retarget, as dir_retarget does it
          index.set(name, *at);
          model[name].ino = loc.ino;
        }
        break;
      case 7:
        if (rng() % 64 == 0) index.shrink_to_fit();
        if (rng() % 512 == 0) {  // erase everything
          for (const auto& [n, l] : model) EXPECT_TRUE(index.erase(n));
          model.clear();
        }
        break;
    }
    if (step % 97 == 0) {
      ASSERT_NO_FATAL_FAILURE(expect_same(index, model, pool));
    }
  }
  ASSERT_NO_FATAL_FAILURE(expect_same(index, model, pool));
}

TEST(DirIndexTest, NamesThatShareAPrefixOrDifferInLengthAreDistinct) {
  DirIndex index;
  EXPECT_TRUE(index.add("a", loc_for(1)));
  EXPECT_TRUE(index.add("ab", loc_for(2)));
  EXPECT_TRUE(index.add(std::string(format::kNameMax, 'a'), loc_for(3)));
  EXPECT_FALSE(index.add("a", loc_for(4)));
  EXPECT_EQ(index.find("a")->ino, loc_for(1).ino);
  EXPECT_EQ(index.find("ab")->ino, loc_for(2).ino);
  EXPECT_EQ(index.find(std::string(format::kNameMax, 'a'))->ino, loc_for(3).ino);
  EXPECT_FALSE(index.find("abc").has_value());
  EXPECT_FALSE(index.find("").has_value());
}

// The packed entry keeps every value a directory entry may hold: the
// highest inode number, the last byte of a block, every DT_* type, the last
// block of a directory and the longest name.
TEST(DirIndexTest, ExtremeLocationsAreKeptWhole) {
  DirIndex index;
  const DirLocation far{format::kMaxInodeCount, UINT32_MAX, format::kBlockSize - 1, 15};
  const std::string longest(format::kNameMax, 'z');
  ASSERT_TRUE(index.add(longest, far));
  ASSERT_TRUE(index.add("x", DirLocation{1, 0, 0, 0}));
  const std::optional<DirLocation> got = index.find(longest);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->ino, far.ino);
  EXPECT_EQ(got->block_index, far.block_index);
  EXPECT_EQ(got->offset, far.offset);
  EXPECT_EQ(got->type, far.type);
  const std::optional<DirLocation> low = index.find("x");
  ASSERT_TRUE(low.has_value());
  EXPECT_EQ(low->ino, 1u);
  EXPECT_EQ(low->offset, 0u);
  EXPECT_EQ(low->type, 0u);
  EXPECT_EQ(low->block_index, 0u);
}

// A directory of 100 names of 9 bytes (bench/scale's files), built as
// ensure_dir_index builds it: at most 16 + 10 + 8 * 4/3 bytes per name, plus
// rounding, where an unordered_map node and its bucket took 96 or more.
TEST(DirIndexTest, ABuiltIndexCostsUnder40BytesPerName) {
  const int64_t before = live_bytes.load();
  auto index = std::make_unique<DirIndex>();
  for (int i = 0; i < 100; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "f%08d", i);
    ASSERT_TRUE(index->add(name, loc_for(static_cast<uint64_t>(i))));
  }
  index->shrink_to_fit();
  const int64_t per_name = (live_bytes.load() - before - static_cast<int64_t>(sizeof(DirIndex))) / 100;
  EXPECT_LE(per_name, 40);
  EXPECT_EQ(index->find("f00000042")->ino, loc_for(42).ino);
  index.reset();
  EXPECT_EQ(live_bytes.load(), before);
}

// ensure_dir_index counts a directory's names before it builds the index:
// with room reserved, the adds allocate nothing (no arrays grown by doubling
// and freed, which left the daemon's heap fragmented) and the cost per name
// is what shrink_to_fit would have left.
TEST(DirIndexTest, AReservedBuildAllocatesNothingMore) {
  const int64_t before = live_bytes.load();
  auto index = std::make_unique<DirIndex>();
  index->reserve(100, 900);
  const int64_t reserved = live_bytes.load();
  for (int i = 0; i < 100; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "f%08d", i);
    ASSERT_TRUE(index->add(name, loc_for(static_cast<uint64_t>(i))));
  }
  EXPECT_EQ(live_bytes.load(), reserved) << "an add allocated although room was reserved";
  const int64_t per_name = (reserved - before - static_cast<int64_t>(sizeof(DirIndex))) / 100;
  EXPECT_LE(per_name, 40);
  EXPECT_EQ(index->find("f00000042")->ino, loc_for(42).ino);
  EXPECT_EQ(index->size(), 100u);
}

// A name that comes and goes beside another (a journal, a lock file) must
// not grow the index: erased entries are dropped by rebuilds.
TEST(DirIndexTest, ANameThatComesAndGoesDoesNotGrowTheIndex) {
  auto index = std::make_unique<DirIndex>();
  ASSERT_TRUE(index->add("keep", loc_for(1)));
  const int64_t before = live_bytes.load();
  for (int i = 0; i < 200000; ++i) {
    ASSERT_TRUE(index->add("db-journal", loc_for(2)));
    ASSERT_TRUE(index->erase("db-journal"));
  }
  EXPECT_LE(live_bytes.load() - before, 4096) << "the index grew with each add and erase";
  EXPECT_EQ(index->size(), 1u);
  ASSERT_TRUE(index->find("keep").has_value());
  EXPECT_EQ(index->find("keep")->ino, loc_for(1).ino);
  EXPECT_FALSE(index->find("db-journal").has_value());
}

}  // namespace
}  // namespace sealfs
