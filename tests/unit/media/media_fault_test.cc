// Media faults: a genuine SIGBUS (a shared file mapping whose file was cut
// short under it) inside a recovery window becomes an error, and the journal
// and the data writer keep their promises when it happens: nothing half
// applied, nothing lost that was committed.
#include "media/media_fault.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "media/data_writer.h"
#include "media/formatter.h"
#include "media/journal.h"
#include "media/region_pmem2.h"
#include "sealfs/format.h"

namespace sealfs {
namespace {

constexpr uint64_t kBlock = format::kBlockSize;

// A file in /dev/shm (or /tmp) removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(uint64_t size) {
    char tmpl[] = "/tmp/media_fault_test.XXXXXX";
    fd_ = mkstemp(tmpl);
    path_ = tmpl;
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(size)), 0);
  }
  ~TempFile() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  // Cuts the file to `size` bytes: pages of a mapping past the new end now
  // fault with SIGBUS, as stores into a full backing filesystem do.
  void resize(uint64_t size) { ASSERT_EQ(ftruncate(fd_, static_cast<off_t>(size)), 0); }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

class MediaFaultTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(install_media_fault_handler()); }
};

TEST_F(MediaFaultTest, AGenuineSigbusInsideTheWindowIsReportedWithItsAddress) {
  TempFile file(2 * kBlock);
  auto* map = static_cast<std::byte*>(
      mmap(nullptr, 2 * kBlock, PROT_READ | PROT_WRITE, MAP_SHARED, file.fd(), 0));
  ASSERT_NE(map, MAP_FAILED);
  file.resize(kBlock);

  uintptr_t fault = 0;
  bool completed = run_recoverable(map, 2 * kBlock, [&] { std::memset(map, 0x5a, 2 * kBlock); },
                                   &fault);
  EXPECT_FALSE(completed);
  // memset may store in any order; the fault is somewhere on the lost page.
  EXPECT_GE(fault, reinterpret_cast<uintptr_t>(map + kBlock));
  EXPECT_LT(fault, reinterpret_cast<uintptr_t>(map + 2 * kBlock));

  // A second fault on the same thread is caught too: SIGBUS was not left
  // blocked by the first jump out of the handler.
  fault = 0;
  completed = run_recoverable(map, 2 * kBlock, [&] { (void)*(volatile std::byte*)(map + kBlock); },
                              &fault);
  EXPECT_FALSE(completed);
  EXPECT_EQ(fault, reinterpret_cast<uintptr_t>(map + kBlock));

  // And a window that does not fault completes.
  EXPECT_TRUE(run_recoverable(map, 2 * kBlock, [&] { map[0] = std::byte{1}; }, &fault));
  munmap(map, 2 * kBlock);
}

TEST_F(MediaFaultTest, NestedWindowsUnwindToTheOneWhoseRangeFaulted) {
  TempFile file(2 * kBlock);
  auto* map = static_cast<std::byte*>(
      mmap(nullptr, 2 * kBlock, PROT_READ | PROT_WRITE, MAP_SHARED, file.fd(), 0));
  ASSERT_NE(map, MAP_FAILED);
  file.resize(kBlock);
  uintptr_t outer_fault = 0, inner_fault = 0;
  bool inner_done = true;
  bool outer_done = run_recoverable(map, 2 * kBlock, [&] {
    // The inner window guards only the first page: a fault on the second
    // belongs to the outer window.
    inner_done = run_recoverable(map, kBlock, [&] { map[kBlock] = std::byte{1}; }, &inner_fault);
  }, &outer_fault);
  EXPECT_FALSE(outer_done);
  EXPECT_TRUE(inner_done) << "never returned: the jump skipped it";
  EXPECT_EQ(inner_fault, 0u);
  EXPECT_EQ(outer_fault, reinterpret_cast<uintptr_t>(map + kBlock));
  // Both windows are gone: a fault now, outside any window, would kill.
  EXPECT_TRUE(run_recoverable(map, kBlock, [&] { map[0] = std::byte{2}; }, &inner_fault));
  munmap(map, 2 * kBlock);
}

using MediaFaultDeathTest = MediaFaultTest;

TEST_F(MediaFaultDeathTest, AFaultOutsideTheWindowsRangeStillKills) {
  TempFile file(2 * kBlock);
  auto* map = static_cast<std::byte*>(
      mmap(nullptr, 2 * kBlock, PROT_READ | PROT_WRITE, MAP_SHARED, file.fd(), 0));
  ASSERT_NE(map, MAP_FAILED);
  file.resize(kBlock);
  EXPECT_EXIT(
      {
        uintptr_t fault = 0;
        // Armed for the first page only; the store hits the second.
        (void)run_recoverable(map, kBlock, [&] { map[kBlock] = std::byte{1}; }, &fault);
      },
      ::testing::KilledBySignal(SIGBUS), "");
  EXPECT_EXIT(*(volatile std::byte*)(map + kBlock) = std::byte{1},
              ::testing::KilledBySignal(SIGBUS), "");
  munmap(map, 2 * kBlock);
}

// --- Region, DataWriter ---------------------------------------------------

TEST_F(MediaFaultTest, RegionFailsOnceAndNamesTheOffset) {
  TempFile file(16 * kBlock);
  auto region = RegionPmem2::open(file.path(), RegionOptions{});
  ASSERT_TRUE(region.is_ok()) << region.status().to_string();
  Region& r = **region;
  file.resize(8 * kBlock);
  EXPECT_FALSE(r.media_failed());

  DataWriter writer(r, 4, 12);
  std::vector<std::byte> data(3 * kBlock, std::byte{7});
  writer.write(4 * kBlock, data.data(), data.size());  // blocks 4..6: inside the file
  EXPECT_TRUE(writer.drain().is_ok());
  writer.write(7 * kBlock, data.data(), data.size());  // block 8 is past the end
  Status s = writer.drain();
  EXPECT_EQ(s.code(), Code::kIoError) << s.to_string();
  EXPECT_TRUE(r.media_failed());
  // memcpy may store the pieces of a copy in any order: the fault is on one
  // of the pages past the end.
  EXPECT_GE(r.media_fault_offset(), 8 * kBlock);
  EXPECT_LT(r.media_fault_offset(), 10 * kBlock);
  EXPECT_NE(s.message().find("media error at region offset " +
                             std::to_string(r.media_fault_offset())),
            std::string::npos)
      << s.message();
  // The region stays failed for every later write, even one that would fit.
  writer.write(4 * kBlock, data.data(), kBlock);
  EXPECT_EQ(writer.drain().code(), Code::kIoError);
}

TEST_F(MediaFaultTest, AFormatCutShortFailsAndLeavesNoSuperblock) {
  TempFile file(8ull << 20);
  auto region = RegionPmem2::open(file.path(), RegionOptions{});
  ASSERT_TRUE(region.is_ok());
  FormatOptions options;
  options.layout.inode_count = 64;
  options.layout.journal_bytes = 256 << 10;
  ASSERT_TRUE(Formatter::format(**region, options).is_ok());
  // Formatting again over a file that lost its second half: mkfs must get
  // an error (and exit 1), not die with SIGBUS.
  file.resize(1ull << 20);
  auto again = Formatter::format(**region, options);
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status().code(), Code::kIoError) << again.status().to_string();
  // The old primary superblock was cleared before the fault.
  const std::byte* primary = (*region)->data();
  for (uint64_t i = 0; i < kBlock; ++i) ASSERT_EQ(primary[i], std::byte{0}) << "byte " << i;
}

// --- Journal --------------------------------------------------------------

constexpr JournalArea kArea{1, 16};  // header block 1, log blocks 2..16
constexpr uint64_t kRegionBlocks = 64;

struct CommitOutcome {
  Status status;
  bool committed_hook = false;
  bool aborted_hook = false;
};

CommitOutcome commit_one(Journal& journal, uint64_t home, const std::vector<std::byte>& bytes) {
  CommitOutcome out;
  Transaction t = journal.begin();
  t.write(home, bytes.data(), bytes.size());
  t.on_commit([&] { out.committed_hook = true; });
  t.on_abort([&] { out.aborted_hook = true; });
  out.status = journal.commit(std::move(t));
  return out;
}

TEST_F(MediaFaultTest, HomeWriteFaultKeepsTheCommittedTransactionForReplay) {
  TempFile file(kRegionBlocks * kBlock);
  const uint64_t home = 40 * kBlock;
  const std::vector<std::byte> bytes(2 * kBlock, std::byte{0x3c});
  {
    auto region = RegionPmem2::open(file.path(), RegionOptions{});
    ASSERT_TRUE(region.is_ok());
    ASSERT_TRUE(Journal::format(**region, kArea).is_ok());
    auto journal = Journal::open(**region, kArea);
    ASSERT_TRUE(journal.is_ok());
    // The home blocks are lost (the backing store cannot give them); the
    // log is still there.
    file.resize(32 * kBlock);
    CommitOutcome first = commit_one(**journal, home, bytes);
    EXPECT_EQ(first.status.code(), Code::kIoError) << first.status.to_string();
    EXPECT_TRUE(first.aborted_hook) << "the caller's DRAM state must be rolled back";
    EXPECT_FALSE(first.committed_hook);
    EXPECT_TRUE((*region)->media_failed());
    EXPECT_GE((*region)->media_fault_offset(), home);
    EXPECT_LT((*region)->media_fault_offset(), home + bytes.size());

    // Nothing more is written: no commit (even one that would fit), and no
    // checkpoint, which would drop the committed transaction from the log.
    CommitOutcome second = commit_one(**journal, 20 * kBlock, bytes);
    EXPECT_EQ(second.status.code(), Code::kReadOnly) << second.status.to_string();
    EXPECT_TRUE(second.aborted_hook);
    EXPECT_EQ((*region)->data()[20 * kBlock], std::byte{0});
    EXPECT_FALSE((**journal).checkpoint().is_ok());
  }
  // Space is back: recovery applies the transaction whole.
  file.resize(kRegionBlocks * kBlock);
  auto region = RegionPmem2::open(file.path(), RegionOptions{});
  ASSERT_TRUE(region.is_ok());
  RecoveryStats stats;
  auto journal = Journal::open(**region, kArea, &stats);
  ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
  EXPECT_EQ(stats.replayed_transactions, 1u);
  EXPECT_EQ(std::memcmp((*region)->data() + home, bytes.data(), bytes.size()), 0);
}

TEST_F(MediaFaultTest, LogWriteFaultCommitsNothing) {
  TempFile file(kRegionBlocks * kBlock);
  const uint64_t home = 40 * kBlock;
  const std::vector<std::byte> bytes(kBlock, std::byte{0x77});
  {
    auto region = RegionPmem2::open(file.path(), RegionOptions{});
    ASSERT_TRUE(region.is_ok());
    ASSERT_TRUE(Journal::format(**region, kArea).is_ok());
    auto journal = Journal::open(**region, kArea);
    ASSERT_TRUE(journal.is_ok());
    // Only the superblock block and the journal header remain: the log
    // write itself faults.
    file.resize(2 * kBlock);
    CommitOutcome out = commit_one(**journal, home, bytes);
    EXPECT_EQ(out.status.code(), Code::kIoError) << out.status.to_string();
    EXPECT_TRUE(out.aborted_hook);
    EXPECT_FALSE(out.committed_hook);
    EXPECT_GE((*region)->media_fault_offset(), 2 * kBlock);
    EXPECT_LT((*region)->media_fault_offset(), 4 * kBlock);
  }
  file.resize(kRegionBlocks * kBlock);
  auto region = RegionPmem2::open(file.path(), RegionOptions{});
  ASSERT_TRUE(region.is_ok());
  RecoveryStats stats;
  auto journal = Journal::open(**region, kArea, &stats);
  ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
  EXPECT_EQ(stats.replayed_transactions, 0u);
  EXPECT_EQ((*region)->data()[home], std::byte{0});
  // And the journal works again.
  EXPECT_TRUE(commit_one(**journal, home, bytes).status.is_ok());
  EXPECT_EQ((*region)->data()[home], std::byte{0x77});
}

TEST_F(MediaFaultTest, ReplayFaultLeavesTheJournalForTheNextTry) {
  TempFile file(kRegionBlocks * kBlock);
  const uint64_t home = 40 * kBlock;
  const std::vector<std::byte> bytes(kBlock, std::byte{0x19});
  {
    auto region = RegionPmem2::open(file.path(), RegionOptions{});
    ASSERT_TRUE(region.is_ok());
    ASSERT_TRUE(Journal::format(**region, kArea).is_ok());
    auto journal = Journal::open(**region, kArea);
    ASSERT_TRUE(journal.is_ok());
    file.resize(32 * kBlock);
    EXPECT_EQ(commit_one(**journal, home, bytes).status.code(), Code::kIoError);
  }
  {
    // Still no space: the replay faults and says so. (The file is mapped
    // whole, then cut, as a sparse file on a full filesystem behaves.)
    file.resize(kRegionBlocks * kBlock);
    auto region = RegionPmem2::open(file.path(), RegionOptions{});
    ASSERT_TRUE(region.is_ok());
    file.resize(32 * kBlock);
    auto journal = Journal::open(**region, kArea);
    ASSERT_FALSE(journal.is_ok());
    EXPECT_EQ(journal.status().code(), Code::kIoError) << journal.status().to_string();
  }
  file.resize(kRegionBlocks * kBlock);
  auto region = RegionPmem2::open(file.path(), RegionOptions{});
  ASSERT_TRUE(region.is_ok());
  RecoveryStats stats;
  auto journal = Journal::open(**region, kArea, &stats);
  ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
  EXPECT_EQ(stats.replayed_transactions, 1u);
  EXPECT_EQ((*region)->data()[home], std::byte{0x19});
}

}  // namespace
}  // namespace sealfs
