// Journal: commit, recovery, torn writes at every byte, wrap-around under
// random power loss, concurrency, corruption codes and hook semantics.
#include "media/journal.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "media/journal_log.h"
#include "media/region_dram.h"
#include "sealfs/format.h"

namespace sealfs {
namespace {

using Bytes = std::vector<std::byte>;
using CrashMode = RegionDram::CrashMode;
namespace jl = journal_log;

constexpr uint64_t kBlock = format::kBlockSize;
constexpr uint64_t kRegionBlocks = 64;
constexpr JournalArea kArea{1, 8};  // header block 1, log blocks 2..8
constexpr uint64_t kHeaderAt = kArea.start_block * kBlock;
constexpr uint64_t kLogAt = kHeaderAt + kBlock;
constexpr uint64_t kLogCapacity = (kArea.blocks - 1) * kBlock;
constexpr uint64_t kHome = 16 * kBlock;  // home locations used by the tests
constexpr uint64_t kHomeBytes = (kRegionBlocks - 16) * kBlock;

Bytes pattern(size_t len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes out(len);
  for (auto& b : out) b = static_cast<std::byte>(rng());
  return out;
}

Bytes home_of(const Bytes& image) {
  return Bytes(image.begin() + kHome, image.begin() + kHome + kHomeBytes);
}
Bytes home_of(const Region& region) {
  return Bytes(region.data() + kHome, region.data() + kHome + kHomeBytes);
}

// A region that forwards to a RegionDram and reports every flush and drain,
// so a test can take a power-loss image in the middle of a commit; it can also
// pose as read-only.
class ObservedRegion final : public Region {
 public:
  explicit ObservedRegion(RegionDram& inner, bool read_only = false) : inner_(inner) {
    base_ = const_cast<std::byte*>(inner.data());
    size_ = inner.size();
    alignment_ = inner.alignment();
    granularity_ = inner.granularity();
    read_only_ = read_only;
    description_ = "observed dram";
  }
  void flush(const void* addr, size_t len) override {
    inner_.flush(addr, len);
    event();
  }
  void drain() override {
    inner_.drain();
    event();
  }
  void copy_flush(RegionWriteKey key, void* dst, const void* src, size_t len) override {
    inner_.copy_flush(key, dst, src, len);
    event();
  }
  void zero_flush(RegionWriteKey key, void* dst, size_t len) override {
    inner_.zero_flush(key, dst, len);
    event();
  }
  std::function<void()> on_event;

 private:
  void event() {
    if (on_event) on_event();
  }
  RegionDram& inner_;
};

struct Fixture {
  std::unique_ptr<RegionDram> region = RegionDram::create(kRegionBlocks * kBlock);
  std::unique_ptr<Journal> journal;
  Fixture() {
    EXPECT_TRUE(Journal::format(*region, kArea).is_ok());
    auto opened = Journal::open(*region, kArea);
    EXPECT_TRUE(opened.is_ok()) << opened.status().to_string();
    journal = std::move(opened).value();
  }
  Status commit_bytes(uint64_t offset, const Bytes& bytes) {
    Transaction txn = journal->begin();
    txn.write(offset, bytes.data(), bytes.size());
    return journal->commit(std::move(txn));
  }
};

Result<std::unique_ptr<Journal>> reopen(RegionDram& region, RecoveryStats* stats) {
  return Journal::open(region, kArea, stats);
}

TEST(JournalTest, FormatGivesAnEmptyJournal) {
  auto region = RegionDram::create(kRegionBlocks * kBlock);
  ASSERT_TRUE(Journal::format(*region, kArea).is_ok());
  auto durable = RegionDram::from_image(region->crash(CrashMode::kDrop));
  RecoveryStats stats;
  auto journal = reopen(*durable, &stats);
  ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
  EXPECT_EQ(stats.replayed_transactions, 0u);
  EXPECT_EQ(stats.next_seq, 1u);
  EXPECT_FALSE(stats.torn_tail);
  EXPECT_EQ((*journal)->log_capacity(), kLogCapacity);
  EXPECT_EQ((*journal)->max_transaction_bytes(), kLogCapacity / 4);
  EXPECT_EQ((*journal)->log_used(), 0u);
  // Nothing to replay: opening must not write (a read-only mount relies on it).
  EXPECT_EQ(durable->flush_count(), 0u);
}

TEST(JournalTest, CommitThenReopenReplays) {
  Fixture f;
  Bytes a = pattern(100, 1), b = pattern(13, 2);
  ASSERT_TRUE(f.commit_bytes(kHome, a).is_ok());
  ASSERT_TRUE(f.commit_bytes(kHome + 5000, b).is_ok());
  EXPECT_EQ(f.journal->commits(), 2u);
  EXPECT_EQ(f.journal->next_seq(), 3u);
  EXPECT_EQ(f.journal->log_used(), (56u + 104) + (56u + 16));
  // Home writes are not drained by commit (the last one's are still pending).
  Bytes durable = f.region->crash(CrashMode::kDrop);
  EXPECT_NE(0, std::memcmp(durable.data() + kHome + 5000, b.data(), b.size()));
  auto rebooted = RegionDram::from_image(durable);
  RecoveryStats stats;
  auto journal = reopen(*rebooted, &stats);
  ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
  EXPECT_EQ(stats.replayed_transactions, 2u);
  EXPECT_EQ(stats.replayed_bytes, 113u);
  EXPECT_EQ(stats.next_seq, 3u);
  EXPECT_FALSE(stats.torn_tail);
  EXPECT_EQ(0, std::memcmp(rebooted->data() + kHome, a.data(), a.size()));
  EXPECT_EQ(0, std::memcmp(rebooted->data() + kHome + 5000, b.data(), b.size()));
  EXPECT_EQ(home_of(*rebooted), home_of(*f.region));
  // The journal continues the sequence after recovery.
  EXPECT_EQ((*journal)->next_seq(), 3u);
}

// A fence orders only the flushes of its own thread, and home writes are
// flushed by whichever thread committed: the checkpoint must flush them again
// itself, drain, and only then move the tail.
TEST(JournalTest, CheckpointReflushesHomeWritesBeforeMovingTheTail) {
  Fixture f;
  ASSERT_TRUE(f.commit_bytes(kHome + 64, pattern(100, 1)).is_ok());
  ASSERT_TRUE(f.commit_bytes(kHome + 8192, pattern(8, 2)).is_ok());
  f.region->clear_trace();
  ASSERT_TRUE(f.journal->checkpoint().is_ok());
  using Event = RegionDram::TraceEvent;
  std::vector<Event> trace = f.region->trace();
  ASSERT_EQ(trace.size(), 5u);
  EXPECT_EQ(trace[0].kind, Event::kFlush);
  EXPECT_EQ(trace[0].offset, kHome + 64);
  EXPECT_EQ(trace[0].length, 100u);
  EXPECT_EQ(trace[1].kind, Event::kFlush);
  EXPECT_EQ(trace[1].offset, kHome + 8192);
  EXPECT_EQ(trace[2].kind, Event::kDrain);
  EXPECT_EQ(trace[3].kind, Event::kFlush);
  EXPECT_EQ(trace[3].offset, kHeaderAt + format::kJournalHeaderSlotOffset);  // the other slot
  EXPECT_EQ(trace[4].kind, Event::kDrain);
  EXPECT_EQ(f.journal->log_used(), 0u);
  EXPECT_EQ(f.journal->checkpoints(), 1u);
  // An empty log replays nothing, and the sequence continues.
  auto rebooted = RegionDram::from_image(f.region->crash(CrashMode::kDrop));
  RecoveryStats stats;
  ASSERT_TRUE(reopen(*rebooted, &stats).is_ok());
  EXPECT_EQ(stats.replayed_transactions, 0u);
  EXPECT_EQ(stats.next_seq, 3u);
  EXPECT_EQ(home_of(*rebooted), home_of(*f.region));
}

// A transaction that ends exactly at the end of the log, then a checkpoint
// (a full log, or an unmount): the header must describe a log that opens.
// Earlier versions wrote the log size as the tail, which open refused.
TEST(JournalTest, CheckpointRightAfterATransactionEndingAtTheLogEnd) {
  Fixture f;
  const Bytes payload = pattern(200, 5);  // 56 + 200 = 256 log bytes each
  const uint64_t fill = kLogCapacity / 256;
  for (uint64_t i = 0; i < fill; ++i) {
    ASSERT_TRUE(f.commit_bytes(kHome + (i % 16) * 256, payload).is_ok());
  }
  ASSERT_EQ(f.journal->log_used(), kLogCapacity);
  ASSERT_TRUE(f.journal->checkpoint().is_ok());
  RecoveryStats stats;
  auto rebooted = RegionDram::from_image(f.region->crash(CrashMode::kDrop));
  auto opened = reopen(*rebooted, &stats);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  EXPECT_EQ(stats.replayed_transactions, 0u);
  EXPECT_EQ(stats.next_seq, fill + 1);
  // The next commit goes to offset 0 and a crash after it replays it.
  Bytes after = pattern(8, 6);
  ASSERT_TRUE(f.commit_bytes(kHome + 8192, after).is_ok());
  auto crashed = RegionDram::from_image(f.region->crash(CrashMode::kDrop));
  ASSERT_TRUE(reopen(*crashed, &stats).is_ok());
  EXPECT_EQ(stats.replayed_transactions, 1u);
  EXPECT_EQ(0, std::memcmp(crashed->data() + kHome + 8192, after.data(), after.size()));
  // A header an earlier version wrote that way opens too: the tail is 0.
  Bytes image = f.region->crash(CrashMode::kDrop);
  int slot = 0;
  auto header = jl::read_header_block(image.data() + kHeaderAt, &slot);
  ASSERT_TRUE(header.is_ok());
  jl::encode_header({header->salt, header->epoch + 1, kLogCapacity, header->tail_seq,
                     header->flags},
                    image.data() + kHeaderAt + (1 - slot) * format::kJournalHeaderSlotOffset);
  auto old_header = RegionDram::from_image(image);
  ASSERT_TRUE(reopen(*old_header, &stats).is_ok());
  EXPECT_EQ(stats.replayed_transactions, 1u);
}

// Commits A, then B, and checks recovery of every image in which only the
// first k bytes of B's log span reached the media.
struct TornCase {
  std::vector<uint64_t> filler_payloads;  // committed before A
  uint64_t a_payload;
};

void run_torn_every_offset(const TornCase& c) {
  Fixture f;
  uint64_t head = 0;
  for (size_t i = 0; i < c.filler_payloads.size(); ++i) {
    ASSERT_TRUE(f.commit_bytes(kHome + 40000, pattern(c.filler_payloads[i], 100 + i)).is_ok());
    head += 56 + jl::pad8(c.filler_payloads[i]);
  }
  Bytes a = pattern(c.a_payload, 7);
  ASSERT_TRUE(f.commit_bytes(kHome, a).is_ok());
  head += 56 + jl::pad8(c.a_payload);
  ASSERT_EQ(f.journal->checkpoints(), 0u);
  uint64_t replays_before_b = f.journal->commits();
  Bytes before = f.region->crash(CrashMode::kDrop);
  Bytes state_a = home_of(f.region->image());

  Transaction b = f.journal->begin();
  Bytes b1 = pattern(37, 8), b2 = pattern(64, 9), b3 = pattern(5, 10);
  b.write(kHome + 10, b1.data(), b1.size());  // overlaps A
  b.write(kHome + 9000, b2.data(), b2.size());
  b.write(kHome + 20001, b3.data(), b3.size());
  uint64_t b_size = b.log_bytes();
  ASSERT_EQ(b_size, 24u + (16 + 40) + (16 + 64) + (16 + 8) + 16);
  ASSERT_TRUE(f.journal->commit(std::move(b)).is_ok());
  Bytes after = f.region->image();
  Bytes state_ab = home_of(after);

  // B's log span: in place, or a wrap marker at head and B at log offset 0.
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  bool wraps = kLogCapacity - head < b_size;
  if (wraps) {
    ASSERT_EQ(f.journal->checkpoints(), 1u);
    ASSERT_GE(kLogCapacity - head, jl::kHeaderBytes);
    spans = {{kLogAt + head, jl::kHeaderBytes}, {kLogAt, b_size}};
    // The checkpoint before B drained A and moved the tail past it.
    std::memcpy(before.data() + kHeaderAt, after.data() + kHeaderAt, kBlock);
    std::memcpy(before.data() + kHome, state_a.data(), kHomeBytes);
    replays_before_b = 0;
  } else {
    spans = {{kLogAt + head, b_size}};
  }
  uint64_t full = 0;
  for (auto& s : spans) full += s.second;

  for (uint64_t k = 0; k <= full; ++k) {
    SCOPED_TRACE("k = " + std::to_string(k) + (wraps ? " (wrapping)" : ""));
    Bytes image = before;
    uint64_t left = k;
    for (auto [at, len] : spans) {
      uint64_t n = std::min(left, len);
      std::memcpy(image.data() + at, after.data() + at, n);
      left -= n;
    }
    auto rebooted = RegionDram::from_image(image);
    RecoveryStats stats;
    auto journal = reopen(*rebooted, &stats);
    ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
    // The last bytes of B (its commit seq's high bytes) may already hold the
    // right value: then the image is the complete one before k reaches full.
    bool complete = true;
    for (auto [at, len] : spans) {
      complete = complete && std::memcmp(image.data() + at, after.data() + at, len) == 0;
    }
    if (k == full) {
      EXPECT_TRUE(complete);
    }
    if (k + 8 < full) {
      EXPECT_FALSE(complete);
    }
    EXPECT_EQ(home_of(*rebooted), complete ? state_ab : state_a);
    EXPECT_EQ(stats.replayed_transactions, replays_before_b + (complete ? 1 : 0));
    uint64_t b_seq = c.filler_payloads.size() + 2;
    EXPECT_EQ(stats.next_seq, complete ? b_seq + 1 : b_seq);
    if (complete) {
      EXPECT_FALSE(stats.torn_tail);
    } else if (!wraps) {
      // Torn means: a header with the right magic and seq was found.
      const std::byte* h = image.data() + spans[0].first;
      uint32_t magic;
      uint64_t seq;
      std::memcpy(&magic, h, 4);
      std::memcpy(&seq, h + 8, 8);
      EXPECT_EQ(stats.torn_tail, magic == format::kTxnMagic && seq == b_seq);
      if (k >= 16) {
        EXPECT_TRUE(stats.torn_tail);
      }
      if (k < 4) {
        EXPECT_FALSE(stats.torn_tail);
      }
    } else if (k == 0) {
      EXPECT_FALSE(stats.torn_tail);
    } else if (k >= jl::kHeaderBytes + 16) {
      EXPECT_TRUE(stats.torn_tail);
    }
    // Whatever was found, the journal keeps working from there.
    Bytes c_bytes = pattern(50, 11);
    Transaction c_txn = (*journal)->begin();
    c_txn.write(kHome + 30000, c_bytes.data(), c_bytes.size());
    ASSERT_TRUE((*journal)->commit(std::move(c_txn)).is_ok());
    auto again = RegionDram::from_image(rebooted->crash(CrashMode::kDrop));
    ASSERT_TRUE(reopen(*again, nullptr).is_ok());
    Bytes expect = complete ? state_ab : state_a;
    std::memcpy(expect.data() + 30000, c_bytes.data(), c_bytes.size());
    EXPECT_EQ(home_of(*again), expect);
  }
}

TEST(JournalTest, TornCommitAtEveryByteOffset) { run_torn_every_offset({{}, 100}); }

TEST(JournalTest, TornWrappingCommitAtEveryByteOffset) {
  // Fillers and A leave 104 bytes before the end of the log: B wraps.
  run_torn_every_offset({{6000, 6000, 6000, 6000}, kLogCapacity - 104 - 4 * 6056 - 56});
}

// A commit record goes in only once the body is durable, and over zeros
// written with the body: a power loss between its two 8-byte words can then
// never pair the new sequence number with a magic and crc left at the same
// place by the previous lap (that pair would read as a committed transaction
// whose body is damaged, and the open would refuse).
TEST(JournalTest, ACommitRecordTornOverAnEarlierLapsIsATornTail) {
  auto dram = RegionDram::create(kRegionBlocks * kBlock);
  ObservedRegion region(*dram);
  ASSERT_TRUE(Journal::format(region, kArea).is_ok());
  auto opened = Journal::open(region, kArea);
  ASSERT_TRUE(opened.is_ok());
  auto journal = std::move(opened).value();
  // Same-sized transactions: the second lap puts each one where the first
  // lap had one, commit record over commit record.
  const Bytes payload = pattern(1000, 3);
  const uint64_t size = jl::kMinTxnBytes + jl::record_log_bytes(payload.size());
  while (journal->checkpoints() == 0) {
    Transaction txn = journal->begin();
    txn.write(kHome, payload.data(), payload.size());
    ASSERT_TRUE(journal->commit(std::move(txn)).is_ok());
  }
  // The transaction that wrapped is at log offset 0; the next one follows it,
  // where the first lap's second transaction was.
  const uint64_t seq = journal->next_seq();
  const uint64_t commit_at = kLogAt + 2 * size - jl::kCommitBytes;
  ASSERT_EQ(dram->image()[commit_at], std::byte{0x53}) << "no earlier commit record there";
  Bytes at_body_drain;
  const uint64_t drains = dram->drain_count();
  region.on_event = [&] {
    if (at_body_drain.empty() && dram->drain_count() == drains + 1) {
      at_body_drain = dram->crash(CrashMode::kDrop);
    }
  };
  Transaction txn = journal->begin();
  txn.write(kHome, payload.data(), payload.size());
  ASSERT_TRUE(journal->commit(std::move(txn)).is_ok());
  region.on_event = nullptr;
  ASSERT_FALSE(at_body_drain.empty());
  EXPECT_EQ(Bytes(at_body_drain.begin() + commit_at, at_body_drain.begin() + commit_at + 16),
            Bytes(16))
      << "the commit record's place is not zero when the body is durable";
  // Power fails with only the commit record's sequence word written.
  std::memcpy(at_body_drain.data() + commit_at + 8, &seq, sizeof(seq));
  RecoveryStats stats;
  auto rebooted = RegionDram::from_image(at_body_drain);
  auto recovered = reopen(*rebooted, &stats);
  ASSERT_TRUE(recovered.is_ok()) << recovered.status().to_string();
  EXPECT_TRUE(stats.torn_tail);
  EXPECT_EQ(stats.replayed_transactions, 1u);  // the one at offset 0
  EXPECT_EQ(stats.next_seq, seq);
}

// A torn first step can leave the new header's sequence word over the first
// word of a stale commit record (an earlier lap's transaction ended 16 bytes
// past where this one starts): one witness alone would read that as a
// committed transaction. Found by review; commit_record_in_place needs the
// header and the commit record both.
TEST(JournalTest, AHeaderTornOverAStaleCommitRecordIsATornTail) {
  Fixture f;
  // Lap 1: a 96-byte transaction at 0 (its commit record at 80), then big
  // ones to near the end; lap 2 starts at 0 with an 80-byte one, so the next
  // transaction's header lands at 80, on the stale commit record.
  ASSERT_TRUE(f.commit_bytes(kHome, pattern(40, 1)).is_ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(f.commit_bytes(kHome + 100, pattern(7000, 2 + i)).is_ok());
  ASSERT_TRUE(f.commit_bytes(kHome + 8000, pattern(240, 9)).is_ok());
  ASSERT_EQ(f.journal->checkpoints(), 0u);
  ASSERT_TRUE(f.commit_bytes(kHome + 9000, pattern(24, 10)).is_ok());
  ASSERT_EQ(f.journal->checkpoints(), 1u);
  const uint64_t seq = f.journal->next_seq();
  Bytes image = f.region->crash(CrashMode::kDrop);
  uint32_t magic = 0;
  std::memcpy(&magic, image.data() + kLogAt + 80, sizeof(magic));
  ASSERT_EQ(magic, format::kTxnCommitMagic) << "no stale commit record at 80";
  // Power fails in the first step of the next commit, with only the header's
  // sequence word on the media.
  std::memcpy(image.data() + kLogAt + 88, &seq, sizeof(seq));
  RecoveryStats stats;
  auto region = RegionDram::from_image(image);
  Status s = reopen(*region, &stats).status();
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(stats.next_seq, seq);
}

// Power fails at every flush and drain of thousands of commits of random
// sizes (so that new headers and commit records land on every kind of
// stale bytes), each failure tearing what was not drained at random: every
// image opens, none is refused as damaged.
TEST(JournalTest, NoTornImageIsRefusedAsDamaged) {
  constexpr size_t kTxns = 3000;
  std::mt19937_64 rng(99);
  auto dram = RegionDram::create(kRegionBlocks * kBlock);
  ObservedRegion region(*dram);
  ASSERT_TRUE(Journal::format(region, kArea).is_ok());
  auto opened = Journal::open(region, kArea);
  ASSERT_TRUE(opened.is_ok());
  auto journal = std::move(opened).value();
  uint64_t images = 0;
  region.on_event = [&] {
    ++images;
    auto rebooted = RegionDram::from_image(dram->crash(CrashMode::kTear, rng()));
    auto recovered = reopen(*rebooted, nullptr);
    ASSERT_TRUE(recovered.is_ok()) << "image " << images << ": " << recovered.status().to_string();
  };
  for (size_t i = 0; i < kTxns && !::testing::Test::HasFatalFailure(); ++i) {
    Transaction txn = journal->begin();
    Bytes payload = pattern(1 + rng() % 300, rng());
    txn.write(kHome + (rng() % 64) * 512, payload.data(), payload.size());
    ASSERT_TRUE(journal->commit(std::move(txn)).is_ok());
  }
  region.on_event = nullptr;
  EXPECT_GT(images, 10000u);
  EXPECT_GT(journal->checkpoints(), 20u);
}

uint32_t salt_of(const Bytes& image);

// fsck resets a journal it cannot read with Journal::format. Power lost
// during the reset must not leave the new header over the old log: the old
// transactions, from seq 1, would read as the new journal's (their commit
// records as damaged commits). Found by review: the zeros are now drained
// before the header is written.
TEST(JournalTest, AnInterruptedFormatNeverTrustsTheOldLog) {
  Fixture f;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(f.commit_bytes(kHome + 512 * i, pattern(100, i)).is_ok());
  auto dram = RegionDram::from_image(f.region->crash(CrashMode::kDrop));
  ObservedRegion region(*dram);
  std::vector<Bytes> images;
  region.on_event = [&] {
    for (int t = 0; t < 64; ++t) images.push_back(dram->crash(CrashMode::kTear, images.size()));
  };
  ASSERT_TRUE(Journal::format(region, kArea).is_ok());
  region.on_event = nullptr;
  size_t checked = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    SCOPED_TRACE("image " + std::to_string(i));
    int slot = 0;
    auto header = jl::read_header_block(images[i].data() + kHeaderAt, &slot);
    // No valid slot (the zeros reached it first: fsck resets again) or the
    // old header still wins (the reset did not happen).
    if (!header.is_ok() || header->salt == salt_of(f.region->image())) continue;
    ++checked;
    RecoveryStats stats;
    auto rebooted = RegionDram::from_image(images[i]);
    Status s = reopen(*rebooted, &stats).status();
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    EXPECT_EQ(stats.replayed_transactions, 0u);
  }
  EXPECT_GT(checked, 0u);
}

TEST(JournalTest, ReplayIsIdempotent) {
  Fixture f;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(f.commit_bytes(kHome + i * 300, pattern(200, i)).is_ok());
  Bytes expected = home_of(*f.region);
  Bytes crashed = f.region->crash(CrashMode::kDrop);  // right after commit
  auto first = RegionDram::from_image(crashed);
  RecoveryStats stats;
  ASSERT_TRUE(reopen(*first, &stats).is_ok());
  EXPECT_EQ(stats.replayed_transactions, 5u);
  EXPECT_EQ(home_of(*first), expected);

  // Recovery moved the tail: a second open replays nothing.
  auto second = RegionDram::from_image(first->crash(CrashMode::kDrop));
  ASSERT_TRUE(reopen(*second, &stats).is_ok());
  EXPECT_EQ(stats.replayed_transactions, 0u);
  EXPECT_EQ(stats.next_seq, 6u);
  EXPECT_EQ(home_of(*second), expected);

  // Power lost after replay but before the header update: replay again.
  Bytes half = first->crash(CrashMode::kDrop);
  std::memcpy(half.data() + kHeaderAt, crashed.data() + kHeaderAt, kBlock);
  auto third = RegionDram::from_image(half);
  ASSERT_TRUE(reopen(*third, &stats).is_ok());
  EXPECT_EQ(stats.replayed_transactions, 5u);
  EXPECT_EQ(home_of(*third), expected);

  // Power lost part way through the replay's home writes.
  Bytes partial = crashed;
  std::memcpy(partial.data() + kHome, expected.data(), 2 * 300 + 17);
  auto fourth = RegionDram::from_image(partial);
  ASSERT_TRUE(reopen(*fourth, &stats).is_ok());
  EXPECT_EQ(stats.replayed_transactions, 5u);
  EXPECT_EQ(home_of(*fourth), expected);
}

// Each transaction i stores i+1 in a "last" word, in counter slot i % 16 and
// a few random blobs. After power loss the recovered home must be exactly
// the state after some prefix p of the transactions, with every transaction
// whose commit returned inside it.
class Workload {
 public:
  struct Write {
    uint64_t offset;
    Bytes bytes;
  };
  explicit Workload(size_t count, uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < count; ++i) {
      std::vector<Write> txn;
      uint64_t value = i + 1;
      Bytes word(8);
      std::memcpy(word.data(), &value, 8);
      txn.push_back({kHome + 8 * (i % 16), word});
      int blobs = static_cast<int>(rng() % 4);
      for (int b = 0; b < blobs; ++b) {
        uint64_t len = 1 + rng() % 1500;
        uint64_t at = kHome + 256 + rng() % (kHomeBytes - 256 - len);
        txn.push_back({at, pattern(len, rng())});
      }
      txn.push_back({kHome + 128, word});
      txns_.push_back(std::move(txn));
    }
  }
  Status commit(Journal& journal, size_t i) const {
    Transaction txn = journal.begin();
    for (const auto& w : txns_[i]) txn.write(w.offset, w.bytes.data(), w.bytes.size());
    return journal.commit(std::move(txn));
  }
  Bytes state_after(uint64_t prefix) const {
    Bytes home(kHomeBytes);
    for (uint64_t i = 0; i < prefix; ++i) {
      for (const auto& w : txns_[i]) {
        std::memcpy(home.data() + (w.offset - kHome), w.bytes.data(), w.bytes.size());
      }
    }
    return home;
  }
  static uint64_t recovered_prefix(const Bytes& home) {
    uint64_t last;
    std::memcpy(&last, home.data() + 128, 8);
    return last;
  }

 private:
  std::vector<std::vector<Write>> txns_;
};

TEST(JournalTest, WrapAroundSurvivesRandomPowerLoss) {
  constexpr size_t kTxns = 3000;
  Workload work(kTxns, 42);
  auto dram = RegionDram::create(kRegionBlocks * kBlock);
  ObservedRegion region(*dram);
  ASSERT_TRUE(Journal::format(region, kArea).is_ok());
  auto opened = Journal::open(region, kArea);
  ASSERT_TRUE(opened.is_ok());
  auto journal = std::move(opened).value();

  size_t committed = 0;
  std::mt19937_64 rng(7);
  uint64_t crashes = 0, torn = 0;
  region.on_event = [&] {
    if (rng() % 29 != 0) return;
    ++crashes;
    auto rebooted = RegionDram::from_image(dram->crash(CrashMode::kTear, rng()));
    RecoveryStats stats;
    auto recovered = reopen(*rebooted, &stats);
    ASSERT_TRUE(recovered.is_ok()) << recovered.status().to_string();
    torn += stats.torn_tail ? 1 : 0;
    Bytes home = home_of(*rebooted);
    uint64_t prefix = Workload::recovered_prefix(home);
    // The transaction being committed (if any) may or may not be in.
    ASSERT_GE(prefix, committed);
    ASSERT_LE(prefix, committed + 1);
    ASSERT_EQ(home, work.state_after(prefix)) << "prefix " << prefix;
  };
  for (size_t i = 0; i < kTxns; ++i) {
    ASSERT_TRUE(work.commit(*journal, i).is_ok());
    committed = i + 1;
  }
  region.on_event = nullptr;
  EXPECT_GT(journal->checkpoints(), 100u);
  EXPECT_GT(crashes, 200u);
  EXPECT_GT(torn, 0u);
  EXPECT_EQ(home_of(*dram), work.state_after(kTxns));
}

TEST(JournalTest, ConcurrentCommitsIntoASmallJournal) {
  Fixture f;
  constexpr int kThreads = 4;
  constexpr uint64_t kPerThread = 400;
  std::atomic<uint64_t> hooks_run{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (uint64_t i = 1; i <= kPerThread; ++i) {
        Transaction txn = f.journal->begin();
        txn.write_struct(kHome + 8 * t, i);
        Bytes blob = pattern(200 + rng() % 1800, i * 31 + t);
        txn.write(kHome + 4096 * (1 + t), blob.data(), blob.size());
        txn.on_commit([&] { hooks_run.fetch_add(1); });
        ASSERT_TRUE(f.journal->commit(std::move(txn)).is_ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(f.journal->commits(), kThreads * kPerThread);
  EXPECT_EQ(hooks_run.load(), kThreads * kPerThread);
  EXPECT_GT(f.journal->checkpoints(), 10u);
  EXPECT_LE(f.journal->log_used(), kLogCapacity);
  for (int t = 0; t < kThreads; ++t) {
    uint64_t v;
    std::memcpy(&v, f.region->data() + kHome + 8 * t, 8);
    EXPECT_EQ(v, kPerThread);
  }
  auto rebooted = RegionDram::from_image(f.region->crash(CrashMode::kDrop));
  ASSERT_TRUE(reopen(*rebooted, nullptr).is_ok());
  EXPECT_EQ(home_of(*rebooted), home_of(*f.region));
}

TEST(JournalTest, OversizedTransactionIsNoSpace) {
  Fixture f;
  uint64_t max = f.journal->max_transaction_bytes();
  Transaction fits = f.journal->begin();
  Bytes exact = pattern(max - 56, 1);
  fits.write(kHome, exact.data(), exact.size());
  ASSERT_EQ(fits.log_bytes(), max);
  EXPECT_TRUE(f.journal->commit(std::move(fits)).is_ok());

  Transaction big = f.journal->begin();
  Bytes too_much = pattern(max - 55, 2);
  big.write(kHome, too_much.data(), too_much.size());
  std::vector<std::string> order;
  big.on_commit([&] { order.push_back("commit"); });
  big.on_abort([&] { order.push_back("abort1"); });
  big.on_abort([&] { order.push_back("abort2"); });
  Status s = f.journal->commit(std::move(big));
  EXPECT_EQ(s.code(), Code::kNoSpace) << s.to_string();
  EXPECT_EQ(order, (std::vector<std::string>{"abort1", "abort2"}));
  EXPECT_EQ(0, std::memcmp(f.region->data() + kHome, exact.data(), exact.size()));
  EXPECT_EQ(f.journal->commits(), 1u);
}

// ---------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------

// An image whose two header slots differ: slot 0 (epoch 1) has tail 0, slot 1
// (epoch 2) has its tail after transaction A. B follows, not checkpointed.
struct TwoSlotImage {
  Bytes image;
  uint64_t b_offset;  // log offset of B
  Bytes state_ab;
};

TwoSlotImage make_two_slot_image() {
  Fixture f;
  EXPECT_TRUE(f.commit_bytes(kHome, pattern(40, 1)).is_ok());
  EXPECT_TRUE(f.journal->checkpoint().is_ok());
  EXPECT_TRUE(f.commit_bytes(kHome + 100, pattern(24, 2)).is_ok());
  return {f.region->crash(CrashMode::kDrop), 96, home_of(*f.region)};
}

Status open_image(const Bytes& image, RecoveryStats* stats = nullptr) {
  auto region = RegionDram::from_image(image);
  return reopen(*region, stats).status();
}

void put(Bytes& image, uint64_t at, uint64_t value, size_t width) {
  std::memcpy(image.data() + at, &value, width);
}

// The image as a version before ordered commits would have left it: both
// header slots without kJournalFlagOrderedCommit.
Bytes without_ordered_flag(Bytes image) {
  for (uint64_t at : {kHeaderAt, kHeaderAt + format::kJournalHeaderSlotOffset}) {
    format::DiskJournalHeader slot;
    std::memcpy(&slot, image.data() + at, sizeof(slot));
    jl::encode_header({slot.salt.get(), slot.epoch.get(), slot.tail_offset.get(),
                       slot.tail_seq.get(), 0},
                      image.data() + at);
  }
  return image;
}

bool header_says_ordered(const Region& region) {
  int slot = 0;
  auto header = jl::read_header_block(region.data() + kHeaderAt, &slot);
  return header.is_ok() && header->ordered_commits();
}

TEST(JournalCorruptionTest, HeaderSlots) {
  TwoSlotImage base = make_two_slot_image();
  RecoveryStats stats;
  ASSERT_TRUE(open_image(base.image, &stats).is_ok());
  EXPECT_EQ(stats.replayed_transactions, 1u);  // slot 1 wins: only B

  const uint64_t slot0 = kHeaderAt, slot1 = kHeaderAt + format::kJournalHeaderSlotOffset;
  {  // newer slot has a bad crc: the older slot wins and A is replayed too
    Bytes image = base.image;
    put(image, slot1 + 24, 8, 8);  // tail_offset, crc not updated
    ASSERT_TRUE(open_image(image, &stats).is_ok());
    EXPECT_EQ(stats.replayed_transactions, 2u);
  }
  {  // newer slot has a bad magic
    Bytes image = base.image;
    put(image, slot1, 0x1234, 8);
    ASSERT_TRUE(open_image(image, &stats).is_ok());
    EXPECT_EQ(stats.replayed_transactions, 2u);
  }
  {  // older slot bad: the newer one still wins
    Bytes image = base.image;
    put(image, slot0 + 16, 99, 8);  // epoch
    ASSERT_TRUE(open_image(image, &stats).is_ok());
    EXPECT_EQ(stats.replayed_transactions, 1u);
  }
  {  // both magics bad
    Bytes image = base.image;
    put(image, slot0, 1, 8);
    put(image, slot1, 2, 8);
    EXPECT_EQ(open_image(image).code(), Code::kCorruption);
  }
  {  // both crcs bad
    Bytes image = base.image;
    put(image, slot0 + 8, 1, 4);
    put(image, slot1 + 8, 2, 4);
    EXPECT_EQ(open_image(image).code(), Code::kBadCrc);
  }
  {  // one bad magic, one bad crc: the crc failure is reported
    Bytes image = base.image;
    put(image, slot0, 1, 8);
    put(image, slot1 + 40, 2, 8);
    EXPECT_EQ(open_image(image).code(), Code::kBadCrc);
  }
  {  // a valid header whose tail is outside the log
    Bytes image = base.image;
    jl::encode_header({0, 5, kLogCapacity + 8, 3}, image.data() + slot1);
    EXPECT_EQ(open_image(image).code(), Code::kCorruption);
    jl::encode_header({0, 5, 12, 3}, image.data() + slot1);  // not 8-aligned
    EXPECT_EQ(open_image(image).code(), Code::kCorruption);
  }
}

TEST(JournalCorruptionTest, TransactionFieldsStopTheScan) {
  TwoSlotImage base = make_two_slot_image();
  const uint64_t b = kLogAt + base.b_offset;
  const uint64_t b_commit = b + 24 + 16 + 24;
  struct Case {
    const char* name;
    uint64_t at;
    uint64_t value;
    size_t width;
    bool torn;     // in a log without ordered commits
    // In a log of ordered commits: B's header and commit record, the two
    // witnesses that it committed, are intact (commit_record_in_place).
    bool refused;
  };
  const Case cases[] = {
      {"bad txn magic", b, 0x4e585454, 4, false, false},
      {"wrong seq in header", b + 8, 7, 8, false, false},
      {"length beyond the log", b + 16, kLogCapacity + 8, 8, true, false},
      {"length too short", b + 16, 32, 8, true, false},
      {"length unaligned", b + 16, 81, 8, true, false},
      {"record count too high", b + 4, 2, 4, true, true},
      {"record length overruns", b + 24 + 8, 1000, 4, true, true},
      {"payload flipped", b + 40, 0xff, 1, true, true},
      {"commit magic", b_commit, 0, 4, true, false},
      {"commit crc", b_commit + 4, 0, 4, true, true},
      {"commit seq", b_commit + 8, 3, 8, true, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Bytes image = base.image;
    put(image, c.at, c.value, c.width);
    ASSERT_NE(image, base.image);
    {
      // B committed: its commit record is written only over a durable body,
      // so a body that fails its checks was damaged after the commit.
      auto region = RegionDram::from_image(image);
      RecoveryStats stats;
      Status s = reopen(*region, &stats).status();
      if (c.refused) {
        EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
        EXPECT_EQ(s.message(),
                  "journal: transaction 2 at block 2 committed but is damaged; run fsck.sealfs");
        EXPECT_EQ(region->image(), image) << "a refused open wrote to the region";
      } else {
        ASSERT_TRUE(s.is_ok()) << s.to_string();
        EXPECT_EQ(stats.next_seq, 2u);
        EXPECT_EQ(stats.torn_tail, c.torn);
        EXPECT_NE(home_of(*region), base.state_ab);
      }
    }
    {
      // A log from before ordered commits cannot tell: a torn tail, as
      // before.
      auto region = RegionDram::from_image(without_ordered_flag(image));
      RecoveryStats stats;
      ASSERT_TRUE(reopen(*region, &stats).is_ok());
      EXPECT_EQ(stats.replayed_transactions, 0u);
      EXPECT_EQ(stats.next_seq, 2u);
      EXPECT_EQ(stats.torn_tail, c.torn);
      EXPECT_NE(home_of(*region), base.state_ab);
    }
  }
}

uint32_t salt_of(const Bytes& image) {
  int slot = 0;
  auto header = jl::read_header_block(image.data() + kHeaderAt, &slot);
  return header.is_ok() ? header->salt : 0;
}

// Writes a well-formed (crc-valid) transaction with seq 2 in place of B,
// with the journal's salt unless `salt` is given.
Bytes with_forged_b(const TwoSlotImage& base, uint64_t region_offset, uint32_t length,
                    std::optional<uint32_t> salt = std::nullopt) {
  Bytes image = base.image;
  Bytes payload(length, std::byte{0x5a});
  uint64_t size = jl::kMinTxnBytes + jl::record_log_bytes(length);
  jl::encode_transaction(
      salt.value_or(salt_of(base.image)), 2, 1, size,
      [&](uint32_t) { return jl::RecordView{region_offset, payload.data(), length}; },
      image.data() + kLogAt + base.b_offset);
  return image;
}

// Bytes in the log that look like the next transaction but were written by
// someone who does not know the salt (user data left from an earlier lap:
// an xattr value carries any bytes) are not replayed. Their commit record
// names the expected transaction, so in a log of ordered commits they read
// as a committed transaction damaged since: the open refuses and fsck's
// salvage skips them (format.md 4.3 counts this among what the rule cannot
// tell apart). Without ordered commits they are a torn tail.
TEST(JournalCorruptionTest, TransactionWithoutTheSaltIsNotReplayed) {
  TwoSlotImage base = make_two_slot_image();
  ASSERT_NE(salt_of(base.image), 0u) << "journal format must choose a salt";
  Bytes forged = with_forged_b(base, kHome, 8, /*salt=*/0);
  auto forged_home_reached = [](const Region& region) {
    return std::memcmp(region.data() + kHome, Bytes(8, std::byte{0x5a}).data(), 8) == 0;
  };
  {
    auto region = RegionDram::from_image(forged);
    EXPECT_EQ(reopen(*region, nullptr).status().code(), Code::kCorruption);
    RecoveryStats stats;
    ASSERT_TRUE(Journal::open(*region, kArea, &stats, RecoveryMode::kSalvage).is_ok());
    EXPECT_EQ(stats.replayed_transactions, 0u);  // A was checkpointed; B was overwritten
    EXPECT_EQ(stats.lost_transactions, 1u);
    EXPECT_FALSE(forged_home_reached(*region)) << "the forged record reached its home";
  }
  {
    auto region = RegionDram::from_image(without_ordered_flag(forged));
    RecoveryStats stats;
    ASSERT_TRUE(reopen(*region, &stats).is_ok());
    EXPECT_EQ(stats.replayed_transactions, 0u);
    EXPECT_TRUE(stats.torn_tail);
    EXPECT_FALSE(forged_home_reached(*region)) << "the forged record reached its home";
  }
}

// Images from before the salt (header salt 0) keep plain crc32c commits.
TEST(JournalCorruptionTest, UnsaltedJournalStillReplays) {
  TwoSlotImage base = make_two_slot_image();
  Bytes image = with_forged_b(base, kHome, 8, /*salt=*/0);
  for (uint64_t at : {kHeaderAt, kHeaderAt + format::kJournalHeaderSlotOffset}) {
    format::DiskJournalHeader slot;
    std::memcpy(&slot, image.data() + at, sizeof(slot));
    jl::encode_header({0, slot.epoch.get(), slot.tail_offset.get(), slot.tail_seq.get()},
                      image.data() + at);
  }
  auto region = RegionDram::from_image(image);
  RecoveryStats stats;
  ASSERT_TRUE(reopen(*region, &stats).is_ok());
  EXPECT_EQ(stats.replayed_transactions, 1u);
  Bytes home(8);
  std::memcpy(home.data(), region->data() + kHome, 8);
  EXPECT_EQ(home, Bytes(8, std::byte{0x5a}));
}

TEST(JournalCorruptionTest, ReplayedRecordOutsideItsBounds) {
  TwoSlotImage base = make_two_slot_image();
  ASSERT_TRUE(open_image(with_forged_b(base, kHome, 8)).is_ok());  // the forgery is valid
  const uint64_t size = kRegionBlocks * kBlock;
  struct Case {
    const char* name;
    uint64_t offset;
    uint32_t length;
  };
  const Case cases[] = {
      {"into the header block", kHeaderAt + 100, 8},
      {"into the log", kLogAt + 5000, 8},
      {"straddling the journal start", kHeaderAt - 4, 8},
      {"straddling the journal end", kLogAt + kLogCapacity - 4, 8},
      {"past the region end", size, 8},
      {"straddling the region end", size - 4, 8},
      {"offset overflowing", UINT64_MAX - 2, 8},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Bytes image = with_forged_b(base, c.offset, c.length);
    auto region = RegionDram::from_image(image);
    Status s = reopen(*region, nullptr).status();
    EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
    EXPECT_EQ(region->image(), image);  // nothing applied, not even A
  }
}

TEST(JournalCorruptionTest, BadAreaIsInvalid) {
  auto region = RegionDram::create(kRegionBlocks * kBlock);
  EXPECT_EQ(Journal::format(*region, {1, 1}).code(), Code::kInvalid);
  EXPECT_EQ(Journal::format(*region, {60, 5}).code(), Code::kInvalid);
  EXPECT_EQ(Journal::format(*region, {UINT64_MAX, 2}).code(), Code::kInvalid);
  EXPECT_EQ(Journal::open(*region, {1, 1}).status().code(), Code::kInvalid);
  EXPECT_EQ(Journal::open(*region, {63, 2}).status().code(), Code::kInvalid);
  EXPECT_TRUE(Journal::format(*region, {62, 2}).is_ok());
}

TEST(JournalCorruptionTest, ReadOnlyRegionThatNeedsRecovery) {
  TwoSlotImage base = make_two_slot_image();
  auto dram = RegionDram::from_image(base.image);
  ObservedRegion read_only(*dram, true);
  Status s = Journal::open(read_only, kArea).status();
  EXPECT_EQ(s.code(), Code::kReadOnly);
  EXPECT_NE(s.message().find("journal needs recovery"), std::string::npos) << s.message();
  EXPECT_EQ(dram->flush_count(), 0u);

  // A clean journal opens read-only, and commit refuses.
  ASSERT_TRUE(reopen(*dram, nullptr).is_ok());
  auto opened = Journal::open(read_only, kArea);
  ASSERT_TRUE(opened.is_ok());
  Transaction txn = (*opened)->begin();
  bool aborted = false;
  txn.write_struct(kHome, uint64_t{1});
  txn.on_abort([&] { aborted = true; });
  EXPECT_EQ((*opened)->commit(std::move(txn)).code(), Code::kReadOnly);
  EXPECT_TRUE(aborted);
}

// ---------------------------------------------------------------------------
// A damaged transaction in the middle of the log
// ---------------------------------------------------------------------------

// Five committed, never checkpointed transactions; the fourth rewrites the
// bytes of the first, so replaying only a prefix would roll them back.
struct FiveTxnImage {
  Bytes image;
  std::vector<uint64_t> offsets;  // log offset of transaction seq i + 1
  std::vector<uint64_t> lengths;
  std::vector<Bytes> payloads;
  std::vector<uint64_t> homes;
};

FiveTxnImage make_five_txn_image() {
  Fixture f;
  FiveTxnImage out;
  const uint64_t homes[] = {kHome, kHome + 4096, kHome + 8192, kHome, kHome + 12288};
  const size_t sizes[] = {40, 100, 64, 40, 16};
  uint64_t at = 0;
  for (int i = 0; i < 5; ++i) {
    Bytes payload = pattern(sizes[i], 11 + i);
    EXPECT_TRUE(f.commit_bytes(homes[i], payload).is_ok());
    out.offsets.push_back(at);
    out.lengths.push_back(jl::kMinTxnBytes + jl::record_log_bytes(sizes[i]));
    at += out.lengths.back();
    out.payloads.push_back(payload);
    out.homes.push_back(homes[i]);
  }
  EXPECT_EQ(f.journal->checkpoints(), 0u);
  out.image = f.region->crash(CrashMode::kDrop);
  return out;
}

bool home_holds(const Region& region, const FiveTxnImage& base, int txn) {
  const Bytes& want = base.payloads[txn];
  return std::memcmp(region.data() + base.homes[txn], want.data(), want.size()) == 0;
}

// One damaged byte in each field of a transaction that later committed ones
// follow: the scan stops there whatever field it is (some stops look like a
// tail, some like stale bytes), and the search past it finds seq 4 and 5.
struct Damage {
  const char* name;
  uint64_t at;  // from the start of the transaction; past its end: from its commit
};
const Damage kDamages[] = {
    {"header magic", 0},   {"record count", 4}, {"header seq", 8},
    {"length", 16},        {"record offset", 24}, {"payload byte", 40},
};

Bytes damaged(const FiveTxnImage& base, int txn, uint64_t at) {
  Bytes image = base.image;
  image[kLogAt + base.offsets[txn] + at] ^= std::byte{0x10};
  return image;
}

TEST(JournalCorruptMiddleTest, OpenRefusesAndWritesNothing) {
  FiveTxnImage base = make_five_txn_image();
  std::vector<Damage> damages(std::begin(kDamages), std::end(kDamages));
  damages.push_back({"commit crc", base.lengths[2] - 12});
  damages.push_back({"commit seq", base.lengths[2] - 8});
  for (const Damage& d : damages) {
    SCOPED_TRACE(d.name);
    Bytes image = damaged(base, 2, d.at);
    auto region = RegionDram::from_image(image);
    RecoveryStats stats;
    Status s = reopen(*region, &stats).status();
    EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
    EXPECT_EQ(s.message(),
              "journal: transaction 3 at block 2 is corrupt but later committed transactions "
              "follow; run fsck.sealfs");
    EXPECT_EQ(region->image(), image) << "a refused open wrote to the region";
    EXPECT_EQ(region->flush_count(), 0u);
  }
}

TEST(JournalCorruptMiddleTest, DamagedFirstTransactionIsNotATail) {
  FiveTxnImage base = make_five_txn_image();
  Bytes image = damaged(base, 0, 40);
  auto region = RegionDram::from_image(image);
  Status s = reopen(*region, nullptr).status();
  EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
  EXPECT_NE(s.message().find("transaction 1 at block 2"), std::string::npos) << s.message();
  EXPECT_EQ(region->image(), image);
}

// Damage in the body of the last transaction: it committed (its header and
// commit record stand), so dropping it as a torn tail would lose an
// acknowledged change. The open refuses; fsck's salvage replays the four
// before it and skips its sequence number, and the journal then goes on.
// Damage in those two witnesses themselves still reads as a torn tail.
TEST(JournalCorruptMiddleTest, DamagedLastTransactionIsRefusedAndSalvaged) {
  FiveTxnImage base = make_five_txn_image();
  const Damage in_witnesses[] = {{"header magic", 0},
                                 {"header seq", 8},
                                 {"length", 16},
                                 {"commit magic", base.lengths[4] - 16},
                                 {"commit seq", base.lengths[4] - 8}};
  for (const Damage& d : in_witnesses) {
    SCOPED_TRACE(d.name);
    RecoveryStats stats;
    auto region = RegionDram::from_image(damaged(base, 4, d.at));
    ASSERT_TRUE(reopen(*region, &stats).is_ok());
    EXPECT_EQ(stats.replayed_transactions, 4u);
    EXPECT_EQ(stats.corrupt_seq, 0u);
  }
  const Damage in_body[] = {{"record count", 4},
                            {"record offset", 24},
                            {"payload byte", 40},
                            {"commit crc", base.lengths[4] - 12}};
  for (const Damage& d : in_body) {
    SCOPED_TRACE(d.name);
    Bytes image = damaged(base, 4, d.at);
    auto region = RegionDram::from_image(image);
    Status s = reopen(*region, nullptr).status();
    EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
    EXPECT_EQ(s.message(),
              "journal: transaction 5 at block 2 committed but is damaged; run fsck.sealfs");
    EXPECT_EQ(region->image(), image) << "a refused open wrote to the region";

    auto preview = Journal::preview(*region, kArea);
    ASSERT_TRUE(preview.is_ok()) << preview.status().to_string();
    EXPECT_EQ(preview->stats.corrupt_seq, 5u);
    EXPECT_EQ(preview->stats.transactions_after_corrupt, 0u);

    RecoveryStats stats;
    auto salvaged = Journal::open(*region, kArea, &stats, RecoveryMode::kSalvage);
    ASSERT_TRUE(salvaged.is_ok()) << salvaged.status().to_string();
    EXPECT_EQ(stats.replayed_transactions, 4u);
    EXPECT_EQ(stats.corrupt_seq, 5u);
    EXPECT_EQ(stats.transactions_before_corrupt, 4u);
    EXPECT_EQ(stats.transactions_after_corrupt, 0u);
    EXPECT_EQ(stats.lost_transactions, 1u);
    EXPECT_EQ(stats.next_seq, 6u + kLogCapacity / jl::kMinTxnBytes);
    EXPECT_FALSE(stats.torn_tail);
    EXPECT_TRUE(home_holds(*region, base, 1));
    EXPECT_TRUE(home_holds(*region, base, 3));

    // The damaged record stays in the log past the new head; it names a
    // sequence number the journal no longer expects.
    EXPECT_TRUE(reopen(*RegionDram::from_image(region->crash(CrashMode::kDrop)), nullptr).is_ok());
    Transaction txn = (*salvaged)->begin();
    Bytes next = pattern(8, 77);
    txn.write(kHome + 20000, next.data(), next.size());
    ASSERT_TRUE((*salvaged)->commit(std::move(txn)).is_ok());
    auto again = RegionDram::from_image(region->crash(CrashMode::kDrop));
    ASSERT_TRUE(reopen(*again, &stats).is_ok());
    EXPECT_EQ(stats.replayed_transactions, 1u);
    EXPECT_EQ(0, std::memcmp(again->data() + kHome + 20000, next.data(), next.size()));
  }
}

// Two damaged transactions at the end, both committed: the scan stops at
// the first (seq 4) and salvage replays what comes before it. The commit
// record of seq 5 stays in the log past the new head. Had salvage gone on at
// seq 5, a next transaction as long as the two, torn after its header
// reached the media but before the zeros over its commit slot did, would
// find that record in place and read as a committed, damaged transaction:
// one mount refused for nothing (found by review, 2026-12-07). Salvage skips
// every sequence number the log could still hold instead.
TEST(JournalCorruptMiddleTest, ACommitRecordLeftPastASalvagedTailNamesNoNewTransaction) {
  FiveTxnImage base = make_five_txn_image();
  Bytes image = damaged(base, 3, 40);
  image[kLogAt + base.offsets[4] + 40] ^= std::byte{0x10};
  auto region = RegionDram::from_image(image);
  Status refused = reopen(*region, nullptr).status();
  EXPECT_EQ(refused.message(),
            "journal: transaction 4 at block 2 committed but is damaged; run fsck.sealfs");

  RecoveryStats stats;
  auto salvaged = Journal::open(*region, kArea, &stats, RecoveryMode::kSalvage);
  ASSERT_TRUE(salvaged.is_ok()) << salvaged.status().to_string();
  EXPECT_EQ(stats.replayed_transactions, 3u);
  EXPECT_EQ(stats.corrupt_seq, 4u);
  EXPECT_EQ(stats.next_seq, 5u + kLogCapacity / jl::kMinTxnBytes);

  // One record whose transaction spans exactly the two damaged ones.
  const uint64_t span = base.lengths[3] + base.lengths[4];
  size_t size = 1;
  while (jl::kMinTxnBytes + jl::record_log_bytes(size) != span) ++size;
  const Bytes before = region->crash(CrashMode::kDrop);
  Transaction txn = (*salvaged)->begin();
  Bytes next = pattern(size, 78);
  txn.write(kHome + 20000, next.data(), next.size());
  ASSERT_TRUE((*salvaged)->commit(std::move(txn)).is_ok());
  Bytes torn = region->crash(CrashMode::kDrop);
  const uint64_t commit_at = kLogAt + base.offsets[3] + span - jl::kCommitBytes;
  ASSERT_EQ(std::memcmp(torn.data() + kLogAt + base.offsets[3], "STXN", 4), 0)
      << "the next transaction was not written where the damaged ones began";
  // Power lost with the header and body durable and the commit slot not.
  std::memcpy(torn.data() + commit_at, before.data() + commit_at, jl::kCommitBytes);
  auto rebooted = RegionDram::from_image(torn);
  Status s = reopen(*rebooted, &stats).status();
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_TRUE(stats.torn_tail);
  EXPECT_EQ(stats.replayed_transactions, 0u);
}

// A log written before ordered commits: a damaged last transaction is taken
// for a torn tail, as it always was. The open marks the log ordered and skips
// sequence 5, so the intact commit record of the dropped transaction is not
// read as a damaged commit by the next open.
TEST(JournalCorruptMiddleTest, ALogFromBeforeOrderedCommitsIsUpgradedSafely) {
  FiveTxnImage base = make_five_txn_image();
  Bytes image = without_ordered_flag(damaged(base, 4, 40));
  auto region = RegionDram::from_image(image);
  RecoveryStats stats;
  ASSERT_TRUE(reopen(*region, &stats).is_ok());
  EXPECT_EQ(stats.replayed_transactions, 4u);
  EXPECT_TRUE(stats.torn_tail);
  EXPECT_EQ(stats.next_seq, 6u);
  EXPECT_TRUE(header_says_ordered(*region));
  auto rebooted = RegionDram::from_image(region->crash(CrashMode::kDrop));
  Status s = reopen(*rebooted, &stats).status();
  EXPECT_TRUE(s.is_ok()) << s.to_string();

  // A log with nothing to replay (a clean one, or one with only a torn
  // tail) is marked by the first commit, which checkpoints first: the open
  // itself writes nothing, so a read-only mount leaves the header as it is.
  const Bytes torn_only = without_ordered_flag([&] {
    // The tail at transaction 5's start: 1 to 4 were checkpointed.
    auto r = RegionDram::from_image(damaged(base, 4, 40));
    Bytes out = r->image();
    int slot = 0;
    auto h = jl::read_header_block(out.data() + kHeaderAt, &slot);
    EXPECT_TRUE(h.is_ok());
    jl::encode_header({h->salt, h->epoch + 1, base.offsets[4], 5, h->flags},
                      out.data() + kHeaderAt + (1 - slot) * format::kJournalHeaderSlotOffset);
    return out;
  }());
  auto fresh = RegionDram::from_image(torn_only);
  auto opened = reopen(*fresh, &stats);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  EXPECT_TRUE(stats.torn_tail);
  EXPECT_EQ(stats.replayed_transactions, 0u);
  EXPECT_EQ(fresh->image(), torn_only) << "an open with nothing to replay wrote";
  // The first header that says ordered expects 6: transaction 5's header and
  // commit record, still in place, are never read as a damaged commit.
  ASSERT_TRUE((*opened)->checkpoint().is_ok());
  EXPECT_TRUE(header_says_ordered(*fresh));
  Status s2 = reopen(*RegionDram::from_image(fresh->crash(CrashMode::kDrop)), nullptr).status();
  EXPECT_TRUE(s2.is_ok()) << s2.to_string();
  Transaction txn = (*opened)->begin();
  Bytes next = pattern(8, 78);
  txn.write(kHome + 20000, next.data(), next.size());
  ASSERT_TRUE((*opened)->commit(std::move(txn)).is_ok());
  EXPECT_TRUE(header_says_ordered(*fresh));
  EXPECT_EQ((*opened)->next_seq(), 7u) << "5 is skipped, 6 committed";
  auto after = RegionDram::from_image(fresh->crash(CrashMode::kDrop));
  ASSERT_TRUE(reopen(*after, &stats).is_ok());
  EXPECT_EQ(stats.replayed_transactions, 1u);
  EXPECT_EQ(0, std::memcmp(after->data() + kHome + 20000, next.data(), next.size()));

  // Without a checkpoint first, the first commit marks the log itself.
  auto direct = RegionDram::from_image(torn_only);
  auto journal = reopen(*direct, nullptr);
  ASSERT_TRUE(journal.is_ok());
  Transaction first = (*journal)->begin();
  first.write(kHome + 20000, next.data(), next.size());
  ASSERT_TRUE((*journal)->commit(std::move(first)).is_ok());
  EXPECT_TRUE(header_says_ordered(*direct));
  EXPECT_EQ((*journal)->next_seq(), 7u) << "5 is skipped, 6 committed";
}

TEST(JournalCorruptMiddleTest, SalvageReplaysEveryValidTransactionInOrder) {
  FiveTxnImage base = make_five_txn_image();
  for (const Damage& d : kDamages) {
    SCOPED_TRACE(d.name);
    auto region = RegionDram::from_image(damaged(base, 2, d.at));
    RecoveryStats stats;
    auto opened = Journal::open(*region, kArea, &stats, RecoveryMode::kSalvage);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    EXPECT_EQ(stats.corrupt_seq, 3u);
    EXPECT_EQ(stats.corrupt_block, 2u);
    EXPECT_EQ(stats.transactions_before_corrupt, 2u);
    EXPECT_EQ(stats.transactions_after_corrupt, 2u);
    EXPECT_EQ(stats.lost_transactions, 1u);
    EXPECT_EQ(stats.replayed_transactions, 4u);
    EXPECT_EQ(stats.next_seq, 6u);
    // Transaction 4's bytes, not the first's it replaced, are at home.
    EXPECT_TRUE(home_holds(*region, base, 3));
    EXPECT_FALSE(home_holds(*region, base, 0));
    EXPECT_TRUE(home_holds(*region, base, 1));
    EXPECT_TRUE(home_holds(*region, base, 4));
    // The tail moved past the damage: a plain open is clean and the
    // sequence goes on.
    EXPECT_EQ((*opened)->next_seq(), 6u);
    opened->reset();
    RecoveryStats again;
    ASSERT_TRUE(reopen(*region, &again).is_ok());
    EXPECT_EQ(again.replayed_transactions, 0u);
    EXPECT_EQ(again.next_seq, 6u);
  }
}

TEST(JournalCorruptMiddleTest, SalvageSkipsEveryGap) {
  FiveTxnImage base = make_five_txn_image();
  Bytes image = damaged(base, 1, 40);
  image[kLogAt + base.offsets[3] + 40] ^= std::byte{0x01};
  auto region = RegionDram::from_image(image);
  EXPECT_EQ(reopen(*region, nullptr).status().code(), Code::kCorruption);
  RecoveryStats stats;
  ASSERT_TRUE(Journal::open(*region, kArea, &stats, RecoveryMode::kSalvage).is_ok());
  EXPECT_EQ(stats.corrupt_seq, 2u);
  EXPECT_EQ(stats.transactions_before_corrupt, 1u);
  EXPECT_EQ(stats.transactions_after_corrupt, 2u);  // 3 and 5
  EXPECT_EQ(stats.lost_transactions, 2u);
  EXPECT_TRUE(home_holds(*region, base, 2));
  EXPECT_TRUE(home_holds(*region, base, 4));
}

// A damaged transaction past the end of the log, with the next one written
// at offset 0 after a wrap marker.
TEST(JournalCorruptMiddleTest, GapBeforeAWrap) {
  Fixture f;
  const uint64_t big = f.journal->max_transaction_bytes() - jl::kMinTxnBytes - jl::kRecordBytes;
  uint64_t at = 0;
  std::vector<uint64_t> offsets;
  // Fill the log to near its end with large transactions, then commit two
  // more: the second of them no longer fits and wraps to offset 0.
  while (at + 2 * (jl::kMinTxnBytes + jl::record_log_bytes(big)) <= kLogCapacity) {
    offsets.push_back(at);
    ASSERT_TRUE(f.commit_bytes(kHome, pattern(big, at)).is_ok());
    at += jl::kMinTxnBytes + jl::record_log_bytes(big);
  }
  ASSERT_TRUE(f.journal->checkpoint().is_ok());
  const uint64_t before = f.journal->next_seq();
  Bytes last = pattern(big, 999), wrapped = pattern(64, 1000);
  ASSERT_TRUE(f.commit_bytes(kHome + 8192, last).is_ok());
  ASSERT_TRUE(f.commit_bytes(kHome + 16384, wrapped).is_ok());
  ASSERT_TRUE(f.commit_bytes(kHome + 24576, pattern(8, 1001)).is_ok());
  Bytes image = f.region->crash(CrashMode::kDrop);
  image[kLogAt + at + 40] ^= std::byte{0x01};  // a payload byte of `last`
  auto region = RegionDram::from_image(image);
  Status s = reopen(*region, nullptr).status();
  EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
  EXPECT_NE(s.message().find("transaction " + std::to_string(before) + " "), std::string::npos)
      << s.message();
  EXPECT_EQ(region->image(), image);
  RecoveryStats stats;
  ASSERT_TRUE(Journal::open(*region, kArea, &stats, RecoveryMode::kSalvage).is_ok());
  EXPECT_EQ(stats.transactions_after_corrupt, 2u);
  EXPECT_EQ(0, std::memcmp(region->data() + kHome + 16384, wrapped.data(), wrapped.size()));
}

TEST(JournalCorruptMiddleTest, PreviewReadsWithoutWriting) {
  FiveTxnImage base = make_five_txn_image();
  Bytes image = damaged(base, 2, 40);
  auto dram = RegionDram::from_image(image);
  ObservedRegion read_only(*dram, true);
  auto preview = Journal::preview(read_only, kArea);
  ASSERT_TRUE(preview.is_ok()) << preview.status().to_string();
  EXPECT_EQ(preview->stats.corrupt_seq, 3u);
  EXPECT_EQ(preview->stats.replayed_transactions, 4u);
  ASSERT_EQ(preview->records.size(), 4u);
  EXPECT_EQ(preview->records[2].region_offset, base.homes[3]);
  EXPECT_EQ(0, std::memcmp(preview->records[2].payload, base.payloads[3].data(),
                           base.payloads[3].size()));
  EXPECT_EQ(dram->image(), image);
  EXPECT_EQ(dram->flush_count(), 0u);
}

TEST(JournalCorruptMiddleTest, StandbyHeaderSlotIsReported) {
  FiveTxnImage base = make_five_txn_image();
  RecoveryStats stats;
  ASSERT_TRUE(open_image(base.image, &stats).is_ok());
  EXPECT_FALSE(stats.standby_header_bad);
  Bytes image = base.image;
  // mkfs leaves slot 0 the winner (epoch 1) and slot 1 the standby.
  image[kHeaderAt + format::kJournalHeaderSlotOffset + 16] ^= std::byte{1};
  auto preview = Journal::preview(*RegionDram::from_image(image), kArea);
  ASSERT_TRUE(preview.is_ok());
  EXPECT_TRUE(preview->stats.standby_header_bad);
  ASSERT_TRUE(open_image(image, &stats).is_ok());
  EXPECT_TRUE(stats.standby_header_bad);
}

TEST(JournalDeathTest, RecordInsideTheJournalAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Fixture f;
  EXPECT_DEATH((void)f.commit_bytes(kLogAt, pattern(8, 1)), "journal invariant broken");
  EXPECT_DEATH((void)f.commit_bytes(kRegionBlocks * kBlock - 4, pattern(8, 1)),
               "journal invariant broken");
}

// ---------------------------------------------------------------------------
// Hooks
// ---------------------------------------------------------------------------

TEST(JournalHookTest, PrepareCommitOrderAndStagedWrites) {
  Fixture f;
  std::vector<std::string> order;
  Transaction txn = f.journal->begin();
  txn.write_struct(kHome, uint64_t{1});
  txn.on_prepare([&](Transaction& t) {
    order.push_back("prepare1");
    t.write_struct(kHome + 8, uint64_t{2});
    t.on_commit([&] { order.push_back("commit-from-prepare"); });
  });
  txn.on_prepare([&](Transaction&) { order.push_back("prepare2"); });
  txn.on_commit([&] {
    uint64_t v;
    std::memcpy(&v, f.region->data() + kHome + 8, 8);
    order.push_back("commit1 sees " + std::to_string(v));
  });
  txn.on_commit([&] { order.push_back("commit2"); });
  txn.on_abort([&] { order.push_back("abort"); });
  ASSERT_TRUE(f.journal->commit(std::move(txn)).is_ok());
  EXPECT_EQ(order, (std::vector<std::string>{"prepare1", "prepare2", "commit1 sees 2",
                                             "commit2", "commit-from-prepare"}));
  // The write staged by the prepare hook is in the log.
  auto rebooted = RegionDram::from_image(f.region->crash(CrashMode::kDrop));
  RecoveryStats stats;
  ASSERT_TRUE(reopen(*rebooted, &stats).is_ok());
  EXPECT_EQ(stats.replayed_bytes, 16u);
}

// A prepare hook's undo runs only when the commit fails after the prepare
// hooks ran: in reverse order, still under the journal mutex (before the
// on_abort hooks, which run after it is released: one of them commits here,
// which would deadlock were the mutex still held).
TEST(JournalHookTest, PrepareUndoRunsBeforeAbortHooksOnlyWhenTheCommitFails) {
  Fixture f;
  std::vector<std::string> order;
  Transaction txn = f.journal->begin();
  txn.on_prepare([&](Transaction& t) {
    order.push_back("prepare");
    t.on_prepare_undo([&] { order.push_back("undo1"); });
    t.on_prepare_undo([&] { order.push_back("undo2"); });
    std::vector<std::byte> big(f.journal->max_transaction_bytes(), std::byte{1});
    t.write(kHome, big.data(), big.size());
  });
  txn.on_abort([&] {
    order.push_back("abort");
    ASSERT_TRUE(f.commit_bytes(kHome, pattern(8, 3)).is_ok());
  });
  EXPECT_EQ(f.journal->commit(std::move(txn)).code(), Code::kNoSpace);
  EXPECT_EQ(order, (std::vector<std::string>{"prepare", "undo2", "undo1", "abort"}));

  order.clear();
  Transaction ok = f.journal->begin();
  ok.write_struct(kHome, uint64_t{1});
  ok.on_prepare([&](Transaction& t) { t.on_prepare_undo([&] { order.push_back("undo"); }); });
  ASSERT_TRUE(f.journal->commit(std::move(ok)).is_ok());
  EXPECT_TRUE(order.empty());
}

TEST(JournalHookTest, DroppedTransactionAborts) {
  Fixture f;
  std::vector<std::string> order;
  {
    Transaction txn = f.journal->begin();
    txn.write_struct(kHome, uint64_t{1});
    txn.on_prepare([&](Transaction&) { order.push_back("prepare"); });
    txn.on_commit([&] { order.push_back("commit"); });
    txn.on_abort([&] { order.push_back("abort1"); });
    txn.on_abort([&] { order.push_back("abort2"); });
    Transaction moved = std::move(txn);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"abort1", "abort2"}));
  EXPECT_EQ(f.journal->commits(), 0u);
}

TEST(JournalHookTest, EmptyTransactionIsANoOpThatRunsCommitHooks) {
  Fixture f;
  uint64_t drains = f.region->drain_count();
  int commits = 0, aborts = 0;
  Transaction txn = f.journal->begin();
  txn.on_commit([&] { ++commits; });
  txn.on_abort([&] { ++aborts; });
  EXPECT_TRUE(txn.empty());
  EXPECT_EQ(txn.log_bytes(), 0u);
  ASSERT_TRUE(f.journal->commit(std::move(txn)).is_ok());
  EXPECT_EQ(commits, 1);
  EXPECT_EQ(aborts, 0);
  EXPECT_EQ(f.region->drain_count(), drains);
  EXPECT_EQ(f.journal->next_seq(), 1u);

  // A prepare hook that stages nothing also leaves the log alone.
  Transaction hooked = f.journal->begin();
  hooked.on_prepare([](Transaction&) {});
  EXPECT_FALSE(hooked.empty());
  ASSERT_TRUE(f.journal->commit(std::move(hooked)).is_ok());
  EXPECT_EQ(f.journal->next_seq(), 1u);
}

TEST(JournalHookTest, LaterWritesToTheSameBytesWin) {
  Fixture f;
  Transaction txn = f.journal->begin();
  txn.write_struct(kHome, uint64_t{0x1111111111111111});
  txn.write_struct(kHome + 4, uint32_t{0x22222222});
  ASSERT_TRUE(f.journal->commit(std::move(txn)).is_ok());
  auto rebooted = RegionDram::from_image(f.region->crash(CrashMode::kDrop));
  ASSERT_TRUE(reopen(*rebooted, nullptr).is_ok());
  uint64_t v;
  std::memcpy(&v, rebooted->data() + kHome, 8);
  EXPECT_EQ(v, 0x2222222211111111u);
}

}  // namespace
}  // namespace sealfs
