// What a write costs in block-map work, counted (not timed): a write into a
// preallocated file rewrites a bounded number of overflow extent blocks
// however many extents the file has, and a file written end to end in random
// order converges back to few extents.
#include <fcntl.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;
constexpr uint64_t kBlock = format::kBlockSize;

class WriteCostTest : public MetaTest {
 protected:
  void SetUp() override { format(1ull << 30, 256); }
  uint64_t encoded() const { return fs_->work_counters().extent_blocks_encoded; }
  uint64_t extents(Ino ino) {
    auto n = fs_->extent_count(ino);
    EXPECT_TRUE(n.is_ok()) << n.status().to_string();
    return n.is_ok() ? *n : 0;
  }
  static std::string block_text(uint64_t fb) {
    std::string s(kBlock, '\0');
    for (uint64_t i = 0; i < kBlock; i += 16) {
      std::string word = std::to_string(fb * 1000003 + i);
      s.replace(i, std::min<size_t>(word.size(), 16), word.substr(0, 16));
    }
    return s;
  }
};

TEST_F(WriteCostTest, RandomWritesIntoPreallocatedSpaceRewriteBoundedExtentBlocks) {
  // A write into preallocated space converts the 64-block chunk around it
  // (file_io.cc, kZeroOutBlocks). One write into every other chunk, in
  // random order, leaves written and unwritten chunks alternating: the map
  // grows to thousands of extents.
  constexpr uint64_t kChunk = 64;
  constexpr uint64_t kChunks = 3072;  // 768 MiB
  Attr f = make_file(kRootIno, "prealloc");
  ASSERT_TRUE(fs_->fallocate(f.ino, 0, 0, kChunks * kChunk * kBlock).is_ok());
  std::mt19937_64 rng(7);
  std::vector<uint64_t> even;
  for (uint64_t c = 0; c < kChunks; c += 2) even.push_back(c);
  std::shuffle(even.begin(), even.end(), rng);
  std::vector<uint64_t> written_block(kChunks);
  uint64_t worst = 0;
  uint64_t total = 0;
  for (uint64_t c : even) {
    uint64_t fb = c * kChunk + rng() % kChunk;
    written_block[c] = fb;
    uint64_t before = encoded();
    write_str(f.ino, fb * kBlock, block_text(fb));
    uint64_t cost = encoded() - before;
    total += cost;
    worst = std::max(worst, cost);
  }
  uint64_t many = extents(f.ino);
  EXPECT_GT(many, 2 * even.size() - 10);
  // Rewriting every overflow block per write would cost up to many / 85 ≈
  // 36 blocks a write; the chain rewrites the block holding the edit, plus
  // its new neighbour when it splits and the block in front when extents
  // move between the inode and the chain.
  EXPECT_LE(worst, 4u) << "extents: " << many;
  EXPECT_LE(total, even.size() * 2) << "extents: " << many;

  // The odd chunks, whole: written neighbours merge, and the file returns
  // to the extents its preallocation had.
  const std::string chunk_bytes(kChunk * kBlock, 'o');
  for (uint64_t c = 1; c < kChunks; c += 2) write_str(f.ino, c * kChunk * kBlock, chunk_bytes);
  EXPECT_LE(extents(f.ino), 4u);

  // The bytes: each even chunk has its one block and zeros around it.
  auto check = [&](const char* when) {
    for (uint64_t c = 0; c < kChunks; c += 37) {
      std::string got = read_all(f.ino, c * kChunk * kBlock, kChunk * kBlock);
      ASSERT_EQ(got.size(), kChunk * kBlock);
      if (c % 2 == 1) {
        ASSERT_EQ(got, chunk_bytes) << when << " chunk " << c;
        continue;
      }
      std::string want(kChunk * kBlock, '\0');
      uint64_t at = (written_block[c] - c * kChunk) * kBlock;
      want.replace(at, kBlock, block_text(written_block[c]));
      ASSERT_EQ(got, want) << when << " chunk " << c;
    }
  };
  check("live");
  clean_remount();
  check("after remount");
  EXPECT_LE(extents(f.ino), 4u);
}

TEST_F(WriteCostTest, FragmentedMapSurvivesRemountAndCrashAtEveryStage) {
  // Interleaved appends to two files: both fragment, each write adds an
  // extent at the end (the chain's last block fills, then a new one).
  Attr f = make_file(kRootIno, "f");
  Attr g = make_file(kRootIno, "g");
  for (uint64_t i = 0; i < 1200; ++i) {
    write_str(f.ino, i * kBlock, block_text(i));
    write_str(g.ino, i * kBlock, block_text(i + 500000));
  }
  ASSERT_GT(extents(f.ino), 1000u);
  // Punch every third block, then fill some holes back: extents come and go
  // in front of, inside and behind the chain's blocks.
  for (uint64_t i = 0; i < 1200; i += 3) {
    ASSERT_TRUE(fs_->fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, i * kBlock,
                               kBlock).is_ok());
  }
  for (uint64_t i = 0; i < 1200; i += 6) write_str(f.ino, i * kBlock, block_text(i));
  auto expect_f = [&](const char* when) {
    for (uint64_t i = 0; i < 1200; ++i) {
      std::string want = (i % 3 == 0 && i % 6 != 0) ? std::string(kBlock, '\0') : block_text(i);
      ASSERT_EQ(read_all(f.ino, i * kBlock, kBlock), want) << when << " block " << i;
    }
    ASSERT_EQ(read_all(g.ino, 1199 * kBlock, kBlock), block_text(1199 + 500000)) << when;
  };
  expect_f("live");
  uint64_t live_extents = extents(f.ino);
  crash_and_remount(RegionDram::CrashMode::kTear, 3);
  expect_f("after a crash");
  EXPECT_EQ(extents(f.ino), live_extents);
  // Truncate in steps back below the inline extents: the chain unlinks.
  for (uint64_t size : {900u, 400u, 20u, 3u}) {
    SetAttr sa;
    sa.valid = SetAttr::kSize;
    sa.size = size * kBlock;
    ASSERT_TRUE(fs_->setattr(f.ino, sa).is_ok());
  }
  clean_remount();
  EXPECT_LE(extents(f.ino), format::kInlineExtents);
  EXPECT_EQ(read_all(f.ino, 0, 3 * kBlock), block_text(0) + block_text(1) + block_text(2));
}

}  // namespace
}  // namespace sealfs::testing_meta
