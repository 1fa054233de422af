// Allocator: placement, deferred free, commit ordering, quarantine, open.
#include "alloc/allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "alloc_fixture.h"
#include "util/crc32c.h"

namespace sealfs {
namespace {

using testing_alloc::AllocEnv;
using testing_alloc::kBlock;
using testing_alloc::Layout;

class AllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override { env.format(); }
  uint64_t data_start() const { return env.area().data_start; }
  AllocEnv env;
};

TEST_F(AllocatorTest, FreshAreaIsOneFreeExtent) {
  EXPECT_EQ(env.alloc().free_blocks(), 1024u);
  EXPECT_EQ(env.alloc().free_extents(), (std::vector<BlockExtent>{{data_start(), 1024}}));
  EXPECT_EQ(env.alloc().quarantined_blocks(), 0u);
}

TEST_F(AllocatorTest, AllocateFreeAndCoalesce) {
  BlockExtent a = env.take(3);
  BlockExtent b = env.take(3);
  BlockExtent c = env.take(3);
  EXPECT_EQ(env.alloc().free_blocks(), 1024u - 9);
  for (BlockExtent e : {a, b, c}) {
    for (uint64_t blk = e.start; blk < e.end(); ++blk) EXPECT_TRUE(env.alloc().is_allocated(blk));
  }
  env.give_back(a);
  env.give_back(c);
  env.give_back(b);
  EXPECT_EQ(env.alloc().free_blocks(), 1024u);
  EXPECT_EQ(env.alloc().free_extents(), (std::vector<BlockExtent>{{data_start(), 1024}}));
  env.expect_media_matches_dram();
}

TEST_F(AllocatorTest, LargeRequestsStartAligned) {
  env.take(1);  // so the free space no longer starts aligned
  for (uint64_t count : {16u, 20u, 32u, 17u}) {
    BlockExtent e = env.take(count);
    EXPECT_EQ(e.count, count);
    EXPECT_EQ(e.start % 16, 0u) << "count " << count;
  }
}

TEST_F(AllocatorTest, SmallRequestsDoNotBreakAlignedChunks) {
  // Leave free: chunk-aligned 64 blocks, plus an unaligned 5-block piece.
  BlockExtent all = env.take(1024);
  env.give_back({all.start + 100, 5});
  env.give_back({all.start + 512, 64});
  for (int i = 0; i < 5; ++i) {
    BlockExtent e = env.take(1);
    EXPECT_GE(e.start, all.start + 100);
    EXPECT_LT(e.start, all.start + 105);
  }
  // The fragment is used up; the aligned chunks are all still whole.
  EXPECT_EQ(env.alloc().free_extents(), (std::vector<BlockExtent>{{all.start + 512, 64}}));
  BlockExtent big = env.take(64);
  EXPECT_EQ(big.start, all.start + 512);
}

TEST_F(AllocatorTest, GoalGrowsAFileContiguously) {
  BlockExtent first = env.take(4, data_start() + 100);
  EXPECT_EQ(first.start, data_start() + 100);
  env.take(2);  // someone else
  BlockExtent grow = env.take(4, first.end());
  EXPECT_EQ(grow.start, first.end());
  BlockExtent next = env.take(3, grow.end());
  EXPECT_EQ(next.start, grow.end());
}

TEST_F(AllocatorTest, NoSpaceLeavesStateUnchanged) {
  BlockExtent big = env.take(1000);
  auto before = env.alloc().free_extents();
  Transaction txn = env.journal().begin();
  auto r = env.alloc().allocate(txn, 25, 0, 25);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kNoSpace);
  EXPECT_TRUE(txn.empty());
  ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
  EXPECT_EQ(env.alloc().free_extents(), before);
  EXPECT_EQ(env.alloc().free_blocks(), 24u);
  // min_count lets a smaller piece through.
  Transaction txn2 = env.journal().begin();
  auto partial = env.alloc().allocate(txn2, 25, 0, 10);
  ASSERT_TRUE(partial.is_ok());
  EXPECT_EQ(partial->count, 24u);
  ASSERT_TRUE(env.journal().commit(std::move(txn2)).is_ok());
  EXPECT_EQ(env.alloc().free_blocks(), 0u);
  (void)big;
}

TEST_F(AllocatorTest, AbortReturnsSpace) {
  {
    Transaction txn = env.journal().begin();
    auto e = env.alloc().allocate(txn, 100);
    ASSERT_TRUE(e.is_ok());
    EXPECT_EQ(env.alloc().free_blocks(), 924u);
    EXPECT_TRUE(env.alloc().is_allocated(e->start));
  }  // dropped: aborts
  EXPECT_EQ(env.alloc().free_blocks(), 1024u);
  EXPECT_EQ(env.alloc().free_extents(), (std::vector<BlockExtent>{{data_start(), 1024}}));
  env.expect_media_matches_dram();
}

TEST_F(AllocatorTest, FreedBlocksAreReusableOnlyAfterCommit) {
  BlockExtent all = env.take(1024);
  Transaction freeing = env.journal().begin();
  env.alloc().free(freeing, {all.start + 7, 1});
  EXPECT_EQ(env.alloc().free_blocks(), 0u);
  EXPECT_TRUE(env.alloc().is_allocated(all.start + 7));
  Transaction other = env.journal().begin();
  auto r = env.alloc().allocate(other, 1);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kNoSpace);
  ASSERT_TRUE(env.journal().commit(std::move(freeing)).is_ok());
  EXPECT_FALSE(env.alloc().is_allocated(all.start + 7));
  auto again = env.alloc().allocate(other, 1);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->start, all.start + 7);
  ASSERT_TRUE(env.journal().commit(std::move(other)).is_ok());
}

TEST_F(AllocatorTest, AbortedFreeKeepsBlocksAllocated) {
  BlockExtent e = env.take(10);
  {
    Transaction txn = env.journal().begin();
    env.alloc().free(txn, e);
  }
  EXPECT_TRUE(env.alloc().is_allocated(e.start));
  EXPECT_EQ(env.alloc().free_blocks(), 1014u);
  env.give_back(e);  // and it can still be freed for real
  EXPECT_EQ(env.alloc().free_blocks(), 1024u);
}

TEST_F(AllocatorTest, MediaBitmapMatchesDramAfterCommitAndReopen) {
  std::vector<BlockExtent> held;
  for (uint64_t n : {1u, 5u, 16u, 33u, 2u, 64u, 7u}) held.push_back(env.take(n));
  env.give_back(held[1]);
  env.give_back(held[4]);
  env.expect_media_matches_dram();
  auto before = env.alloc().free_extents();
  ASSERT_TRUE(env.reopen().is_ok());
  EXPECT_EQ(env.alloc().free_extents(), before);
  env.expect_media_matches_dram();
  ASSERT_TRUE(env.reopen_after_crash().is_ok());
  EXPECT_EQ(env.alloc().free_extents(), before);
}

TEST_F(AllocatorTest, StagesOnlyTheChangedWords) {
  env.take(1000);
  Transaction txn = env.journal().begin();
  env.alloc().free(txn, {data_start() + 130, 3});
  txn.on_prepare([](Transaction& t) {
    // One record of one word: 24 bytes + header/commit; well under a block.
    EXPECT_LT(t.log_bytes(), 256u);
  });
  ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
}

// The case the prepare hook exists for: A and B change bits of one bitmap
// word; B commits first. B must not persist A's uncommitted bit.
TEST_F(AllocatorTest, ConcurrentTransactionsInOneWordCommitInEitherOrder) {
  Transaction a = env.journal().begin();
  Transaction b = env.journal().begin();
  auto ea = env.alloc().allocate(a, 1);
  auto eb = env.alloc().allocate(b, 1);
  ASSERT_TRUE(ea.is_ok() && eb.is_ok());
  ASSERT_EQ((ea->start - data_start()) / 64, (eb->start - data_start()) / 64);
  ASSERT_TRUE(env.journal().commit(std::move(b)).is_ok());
  EXPECT_TRUE(env.media_bit(eb->start));
  EXPECT_FALSE(env.media_bit(ea->start));
  ASSERT_TRUE(env.journal().commit(std::move(a)).is_ok());
  EXPECT_TRUE(env.media_bit(ea->start));
  ASSERT_TRUE(env.reopen().is_ok());
  EXPECT_TRUE(env.alloc().is_allocated(ea->start));
  EXPECT_TRUE(env.alloc().is_allocated(eb->start));
  EXPECT_EQ(env.alloc().free_blocks(), 1022u);
}

TEST_F(AllocatorTest, CrashWithOnlyTheSecondTransactionCommittedKeepsOnlyItsBit) {
  Transaction a = env.journal().begin();
  Transaction b = env.journal().begin();
  auto ea = env.alloc().allocate(a, 1);
  auto eb = env.alloc().allocate(b, 1);
  ASSERT_TRUE(ea.is_ok() && eb.is_ok());
  ASSERT_TRUE(env.journal().commit(std::move(b)).is_ok());
  std::vector<std::byte> image = env.region().crash(RegionDram::CrashMode::kDrop);
  ASSERT_TRUE(env.journal().commit(std::move(a)).is_ok());
  ASSERT_TRUE(env.reopen_from(std::move(image)).is_ok());
  EXPECT_FALSE(env.alloc().is_allocated(ea->start));
  EXPECT_TRUE(env.alloc().is_allocated(eb->start));
  EXPECT_EQ(env.alloc().free_blocks(), 1023u);
}

TEST_F(AllocatorTest, UncommittedFreeIsNotPersistedByAnotherTransaction) {
  BlockExtent x = env.take(1);
  Transaction freeing = env.journal().begin();
  env.alloc().free(freeing, x);
  BlockExtent y = env.take(1);  // same word, committed while the free is open
  ASSERT_EQ((x.start - data_start()) / 64, (y.start - data_start()) / 64);
  EXPECT_TRUE(env.media_bit(x.start));
  auto image = env.region().crash(RegionDram::CrashMode::kDrop);
  { Transaction dropped = std::move(freeing); }  // the crash: never committed
  ASSERT_TRUE(env.reopen_from(std::move(image)).is_ok());
  EXPECT_TRUE(env.alloc().is_allocated(x.start));
  EXPECT_TRUE(env.alloc().is_allocated(y.start));
}

TEST_F(AllocatorTest, OversizedTransactionUndoesItsBitmapChanges) {
  BlockExtent x = env.take(1);
  Transaction big = env.journal().begin();
  env.alloc().free(big, x);
  std::vector<std::byte> junk(env.journal().max_transaction_bytes(), std::byte{0x5a});
  big.write(env.area().data_start * kBlock + 512 * kBlock, junk.data(), junk.size());
  Status s = env.journal().commit(std::move(big));
  ASSERT_EQ(s.code(), Code::kNoSpace);
  EXPECT_TRUE(env.alloc().is_allocated(x.start));
  BlockExtent y = env.take(1);  // restages x's word from the committed copy
  ASSERT_EQ((x.start - data_start()) / 64, (y.start - data_start()) / 64);
  EXPECT_TRUE(env.media_bit(x.start));
  ASSERT_TRUE(env.reopen().is_ok());
  EXPECT_TRUE(env.alloc().is_allocated(x.start));
}

TEST_F(AllocatorTest, QuarantineSurvivesReopenWhileHolderIsAlive) {
  BlockExtent e = env.take(8);
  Holder h{4242, 99};
  Transaction txn = env.journal().begin();
  ASSERT_TRUE(env.alloc().quarantine(txn, e, h, 17).is_ok());
  ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
  EXPECT_EQ(env.alloc().quarantined_blocks(), 8u);
  ASSERT_TRUE(env.reopen_after_crash().is_ok());
  auto entries = env.alloc().quarantine_entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].holder, h);
  EXPECT_EQ(entries[0].ino, 17u);
  EXPECT_EQ(entries[0].extent, e);
  EXPECT_TRUE(env.alloc().is_allocated(e.start));
  EXPECT_EQ(env.alloc().free_blocks(), 1016u);
  // The holder has exited by the next start: released at open, durably.
  env.liveness.dead_pids.insert(4242);
  ASSERT_TRUE(env.reopen().is_ok());
  EXPECT_TRUE(env.alloc().quarantine_entries().empty());
  EXPECT_EQ(env.alloc().free_blocks(), 1024u);
  env.liveness.dead_pids.clear();
  ASSERT_TRUE(env.reopen_after_crash().is_ok());
  EXPECT_TRUE(env.alloc().quarantine_entries().empty());
  EXPECT_EQ(env.alloc().free_blocks(), 1024u);
}

TEST_F(AllocatorTest, ReusedPidWithOtherStartTimeIsADifferentHolder) {
  BlockExtent e = env.take(2);
  Transaction txn = env.journal().begin();
  ASSERT_TRUE(env.alloc().quarantine(txn, e, Holder{7, 1000}, 3).is_ok());
  ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
  Transaction rel = env.journal().begin();
  ASSERT_TRUE(env.alloc().release_holder(rel, Holder{7, 2000}).is_ok());
  ASSERT_TRUE(env.journal().commit(std::move(rel)).is_ok());
  EXPECT_EQ(env.alloc().quarantined_blocks(), 2u);
}

TEST_F(AllocatorTest, ReleaseHolderFreesAfterCommit) {
  BlockExtent a = env.take(1024);
  Holder h{100, 5};
  Transaction q = env.journal().begin();
  ASSERT_TRUE(env.alloc().quarantine(q, {a.start, 4}, h, 1).is_ok());
  ASSERT_TRUE(env.alloc().quarantine(q, {a.start + 10, 2}, h, 2).is_ok());
  ASSERT_TRUE(env.alloc().quarantine(q, {a.start + 20, 1}, Holder{101, 5}, 3).is_ok());
  ASSERT_TRUE(env.journal().commit(std::move(q)).is_ok());
  Transaction rel = env.journal().begin();
  ASSERT_TRUE(env.alloc().release_holder(rel, h).is_ok());
  Transaction other = env.journal().begin();
  EXPECT_EQ(env.alloc().allocate(other, 1).status().code(), Code::kNoSpace);
  ASSERT_TRUE(env.journal().commit(std::move(rel)).is_ok());
  EXPECT_EQ(env.alloc().free_blocks(), 6u);
  EXPECT_EQ(env.alloc().quarantined_blocks(), 1u);
  ASSERT_EQ(env.alloc().quarantine_entries().size(), 1u);
  EXPECT_EQ(env.alloc().quarantine_entries()[0].holder, (Holder{101, 5}));
  env.expect_media_matches_dram();
  ASSERT_TRUE(env.reopen().is_ok());
  EXPECT_EQ(env.alloc().free_blocks(), 6u);
  EXPECT_EQ(env.alloc().quarantine_entries().size(), 1u);
}

TEST_F(AllocatorTest, AbortedQuarantineAndReleaseLeaveNoTrace) {
  BlockExtent e = env.take(4);
  Holder h{9, 9};
  {
    Transaction txn = env.journal().begin();
    ASSERT_TRUE(env.alloc().quarantine(txn, e, h, 1).is_ok());
    EXPECT_EQ(env.alloc().quarantined_blocks(), 4u);
  }
  EXPECT_EQ(env.alloc().quarantined_blocks(), 0u);
  env.give_back(e);  // still owned by its file, so freeable
  BlockExtent f = env.take(4);
  Transaction q = env.journal().begin();
  ASSERT_TRUE(env.alloc().quarantine(q, f, h, 1).is_ok());
  ASSERT_TRUE(env.journal().commit(std::move(q)).is_ok());
  {
    Transaction rel = env.journal().begin();
    ASSERT_TRUE(env.alloc().release_holder(rel, h).is_ok());
  }
  EXPECT_EQ(env.alloc().quarantined_blocks(), 4u);
  EXPECT_TRUE(env.alloc().is_allocated(f.start));
  ASSERT_TRUE(env.reopen().is_ok());
  EXPECT_EQ(env.alloc().quarantined_blocks(), 4u);
}

TEST(AllocatorSmallTableTest, FullHolderTableIsNoSpace) {
  Layout layout;
  layout.holder_blocks = 1;
  AllocEnv env(layout);
  env.format();
  Transaction txn = env.journal().begin();
  for (uint32_t i = 0; i < format::kHolderEntriesPerBlock; ++i) {
    auto e = env.alloc().allocate(txn, 1);
    ASSERT_TRUE(e.is_ok());
    ASSERT_TRUE(env.alloc().quarantine(txn, *e, Holder{i + 1, 1}, i).is_ok());
  }
  auto e = env.alloc().allocate(txn, 1);
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(env.alloc().quarantine(txn, *e, Holder{1, 1}, 0).code(), Code::kNoSpace);
  ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
  ASSERT_TRUE(env.reopen().is_ok());
  EXPECT_EQ(env.alloc().quarantine_entries().size(), format::kHolderEntriesPerBlock);
}

// A damaged holder block may quarantine blocks a living holder still maps,
// and nothing tells which: the open is refused, for fsck, and nothing is
// written.
TEST_F(AllocatorTest, CorruptHolderBlockRefusesTheOpen) {
  BlockExtent e = env.take(8);
  Transaction txn = env.journal().begin();
  ASSERT_TRUE(env.alloc().quarantine(txn, e, Holder{1, 1}, 5).is_ok());
  ASSERT_TRUE(env.journal().commit(std::move(txn)).is_ok());
  ASSERT_TRUE(env.journal().checkpoint().is_ok());
  const uint64_t holder_at = env.area().holder_start * kBlock;
  uint64_t entry_off = holder_at + sizeof(format::DiskHolderBlockHeader);
  uint8_t flip = static_cast<uint8_t>(env.region().data()[entry_off + 16]) ^ 0x40;
  env.region().corrupt(entry_off + 16, &flip, 1);  // the ino: crc no longer matches
  auto before = env.region().image();
  Status s = env.reopen_from(before);
  EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
  EXPECT_NE(s.message().find("holder table block " + std::to_string(env.area().holder_start)),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("run fsck.sealfs"), std::string::npos) << s.message();
  EXPECT_EQ(env.region().image(), before);

  // mkfs writes every block formatted: a zeroed one is damage too.
  auto zeroed = before;
  std::fill(zeroed.begin() + holder_at, zeroed.begin() + holder_at + kBlock, std::byte{0});
  EXPECT_EQ(env.reopen_from(zeroed).code(), Code::kCorruption);
}

TEST_F(AllocatorTest, HolderEntryOutsideTheDataAreaIsCorruption) {
  std::vector<std::byte> block(kBlock);
  format::DiskHolderBlockHeader header{};
  header.magic.set(format::kHolderMagic);
  header.count.set(1);
  format::DiskHolderEntry entry{};
  entry.pid.set(1);
  entry.region_block.set(env.area().data_start + 1020);
  entry.block_count.set(8);  // runs past the end of the data area
  std::memcpy(block.data(), &header, sizeof(header));
  std::memcpy(block.data() + sizeof(header), &entry, sizeof(entry));
  header.crc.set(crc32c_with_hole(block.data(), kBlock, offsetof(format::DiskHolderBlockHeader, crc)));
  std::memcpy(block.data(), &header, sizeof(header));
  ASSERT_TRUE(env.journal().checkpoint().is_ok());  // or replay undoes it
  env.region().corrupt(env.area().holder_start * kBlock, block.data(), kBlock);
  EXPECT_EQ(env.reopen().code(), Code::kCorruption);
}

TEST_F(AllocatorTest, HolderEntryOverFreeBlocksIsCorruption) {
  std::vector<std::byte> block(kBlock);
  format::DiskHolderBlockHeader header{};
  header.magic.set(format::kHolderMagic);
  header.count.set(1);
  format::DiskHolderEntry entry{};
  entry.pid.set(1);
  entry.region_block.set(env.area().data_start + 4);
  entry.block_count.set(2);
  std::memcpy(block.data(), &header, sizeof(header));
  std::memcpy(block.data() + sizeof(header), &entry, sizeof(entry));
  header.crc.set(crc32c_with_hole(block.data(), kBlock, offsetof(format::DiskHolderBlockHeader, crc)));
  std::memcpy(block.data(), &header, sizeof(header));
  ASSERT_TRUE(env.journal().checkpoint().is_ok());  // or replay undoes it
  env.region().corrupt(env.area().holder_start * kBlock, block.data(), kBlock);
  EXPECT_EQ(env.reopen().code(), Code::kCorruption);
}

TEST_F(AllocatorTest, BitmapBitsBeyondTheDataAreaAreCorruption) {
  uint8_t byte = 0x01;  // bit 1024: the first block past the end
  ASSERT_TRUE(env.journal().checkpoint().is_ok());
  env.region().corrupt(env.area().bitmap_start * kBlock + 1024 / 8, &byte, 1);
  EXPECT_EQ(env.reopen().code(), Code::kCorruption);
}

TEST_F(AllocatorTest, InconsistentAreaIsInvalid) {
  AllocatorArea bad = env.area();
  bad.bitmap_start = bad.data_start;  // overlaps the data
  EXPECT_EQ(Allocator::open(env.region(), env.journal(), bad, env.liveness.fn()).status().code(),
            Code::kInvalid);
  bad = env.area();
  bad.data_blocks = 1u << 20;  // past the region, and the bitmap is too small
  EXPECT_EQ(Allocator::open(env.region(), env.journal(), bad, env.liveness.fn()).status().code(),
            Code::kInvalid);
  bad = env.area();
  bad.align_blocks = 12;
  EXPECT_EQ(Allocator::open(env.region(), env.journal(), bad, env.liveness.fn()).status().code(),
            Code::kInvalid);
  bad = env.area();
  bad.data_start += 1;  // not aligned
  bad.data_blocks -= 1;
  EXPECT_EQ(Allocator::open(env.region(), env.journal(), bad, env.liveness.fn()).status().code(),
            Code::kInvalid);
}

TEST_F(AllocatorTest, ZeroBlockRequestIsInvalid) {
  Transaction txn = env.journal().begin();
  EXPECT_EQ(env.alloc().allocate(txn, 0).status().code(), Code::kInvalid);
}

using AllocatorDeathTest = AllocatorTest;

TEST_F(AllocatorDeathTest, FreeOfUnallocatedBlocksAborts) {
  Transaction txn = env.journal().begin();
  EXPECT_DEATH(env.alloc().free(txn, {data_start() + 3, 1}), "free of unallocated blocks");
}

TEST_F(AllocatorDeathTest, DoubleFreeAborts) {
  BlockExtent e = env.take(2);
  Transaction a = env.journal().begin();
  env.alloc().free(a, e);
  Transaction b = env.journal().begin();
  EXPECT_DEATH(env.alloc().free(b, e), "double free");
}

TEST_F(AllocatorDeathTest, FreeOfQuarantinedBlocksAborts) {
  BlockExtent e = env.take(2);
  Transaction q = env.journal().begin();
  ASSERT_TRUE(env.alloc().quarantine(q, e, Holder{3, 3}, 1).is_ok());
  ASSERT_TRUE(env.journal().commit(std::move(q)).is_ok());
  Transaction txn = env.journal().begin();
  EXPECT_DEATH(env.alloc().free(txn, e), "quarantined");
}


// Threads allocate, commit, free and abort at once; the prepare hooks run
// under the journal mutex while allocate/free take only the allocator's.
TEST(AllocatorThreadsTest, ConcurrentCommitsKeepMediaAndDramInStep) {
  Layout layout;
  layout.data_blocks = 4096;
  layout.journal_blocks = 256;
  testing_alloc::AllocEnv env(layout);
  ASSERT_NO_FATAL_FAILURE(env.format());
  constexpr int kThreads = 4;
  std::vector<std::vector<BlockExtent>> kept(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&env, &kept, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
      std::vector<BlockExtent>& mine = kept[static_cast<size_t>(t)];
      for (int i = 0; i < 3000; ++i) {
        Transaction txn = env.journal().begin();
        if (mine.empty() || rng() % 2 == 0) {
          auto e = env.alloc().allocate(txn, 1 + rng() % 40);
          if (!e.is_ok()) continue;
          if (rng() % 5 == 0) continue;  // dropped: aborts
          if (env.journal().commit(std::move(txn)).is_ok()) mine.push_back(*e);
        } else {
          size_t k = rng() % mine.size();
          env.alloc().free(txn, mine[k]);
          if (env.journal().commit(std::move(txn)).is_ok()) {
            mine[k] = mine.back();
            mine.pop_back();
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  uint64_t held = 0;
  for (const auto& v : kept) {
    for (BlockExtent e : v) held += e.count;
  }
  EXPECT_EQ(env.alloc().free_blocks(), layout.data_blocks - held);
  ASSERT_NO_FATAL_FAILURE(env.expect_media_matches_dram());
  ASSERT_TRUE(env.reopen_after_crash().is_ok());
  EXPECT_EQ(env.alloc().free_blocks(), layout.data_blocks - held);
  for (const auto& v : kept) {
    for (BlockExtent e : v) {
      for (uint64_t b = e.start; b < e.end(); ++b) ASSERT_TRUE(env.alloc().is_allocated(b));
    }
  }
}


// Two holders reached the same blocks and both were revoked: the blocks
// were quarantined against the first; its exit must not free the parts the
// second still pins.
TEST_F(AllocatorTest, ReleaseHandsQuarantineToAnotherHolderThatPinsIt) {
  BlockExtent all = env.take(1024);
  const BlockExtent file{all.start, 16};
  const Holder first{500, 1}, second{501, 1};
  Transaction pin = env.journal().begin();
  ASSERT_TRUE(env.alloc().pin(pin, file, first, 9).is_ok());
  ASSERT_TRUE(env.alloc().pin(pin, {file.start + 4, 8}, second, 9).is_ok());  // a sub-range
  ASSERT_TRUE(env.journal().commit(std::move(pin)).is_ok());
  Transaction q = env.journal().begin();
  ASSERT_TRUE(env.alloc().quarantine(q, file, first, 9).is_ok());
  ASSERT_TRUE(env.journal().commit(std::move(q)).is_ok());

  Transaction rel = env.journal().begin();
  ASSERT_TRUE(env.alloc().release_holder(rel, first).is_ok());
  ASSERT_TRUE(env.journal().commit(std::move(rel)).is_ok());
  // Blocks 0-3 and 12-15 are free; 4-11 are now quarantined against the second.
  EXPECT_EQ(env.alloc().free_blocks(), 8u);
  auto entries = env.alloc().quarantine_entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].holder, second);
  EXPECT_EQ(entries[0].extent, (BlockExtent{file.start + 4, 8}));
  for (uint64_t b = file.start + 4; b < file.start + 12; ++b) {
    EXPECT_TRUE(env.alloc().is_allocated(b)) << b;
  }
  env.expect_media_matches_dram();
  // Durable, and gone with the second holder.
  ASSERT_TRUE(env.reopen_after_crash().is_ok());
  EXPECT_EQ(env.alloc().free_blocks(), 8u);
  env.liveness.dead_pids.insert(501);
  ASSERT_TRUE(env.reopen().is_ok());
  EXPECT_EQ(env.alloc().free_blocks(), 16u);
  EXPECT_TRUE(env.alloc().quarantine_entries().empty());
}

// The same hand-over at open: the first holder died with the daemon, the
// second outlives both.
TEST_F(AllocatorTest, OpenHandsADeadHoldersQuarantineToALiveOne) {
  BlockExtent all = env.take(1024);
  const BlockExtent file{all.start, 8};
  Transaction t = env.journal().begin();
  ASSERT_TRUE(env.alloc().pin(t, file, Holder{600, 1}, 3).is_ok());
  ASSERT_TRUE(env.alloc().pin(t, file, Holder{601, 1}, 3).is_ok());
  ASSERT_TRUE(env.alloc().quarantine(t, file, Holder{600, 1}, 3).is_ok());
  ASSERT_TRUE(env.journal().commit(std::move(t)).is_ok());
  env.liveness.dead_pids.insert(600);
  ASSERT_TRUE(env.reopen_after_crash().is_ok());
  EXPECT_EQ(env.alloc().free_blocks(), 0u);
  auto entries = env.alloc().quarantine_entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].holder, (Holder{601, 1}));
  EXPECT_EQ(entries[0].extent, file);
}

}  // namespace
}  // namespace sealfs
