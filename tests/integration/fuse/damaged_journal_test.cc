// A journal damaged in the middle (issue 8, item 4), or in its last committed
// transaction, on a real region file: the daemon refuses to mount and says to
// run fsck, fsck -n reports it without writing, fsck -y repairs, and the
// region mounts again with everything but what the damaged transaction did.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "fs_helpers.h"
#include "media/journal_log.h"
#include "mount_fixture.h"
#include "sealfs/format.h"

namespace sealfs::itest {
namespace {

namespace jl = journal_log;

enum class Victim { kMiddle, kLast };

class DamagedJournalTest : public MountFixture {
 protected:
  int fsck(const std::string& mode, std::string* output) {
    return run_command({fsck_bin(), mode, region_path()}, output);
  }
  // Flips one byte in the middle (or the last) transaction of the log; its
  // sequence number, or 0 if the log holds too few transactions.
  uint64_t damage_transaction(Victim which) {
    std::string region = read_file(region_path());
    format::DiskSuperblock sb;
    std::memcpy(&sb, region.data(), sizeof(sb));
    const uint64_t header_at = sb.journal_start.get() * format::kBlockSize;
    const uint64_t log_at = header_at + format::kBlockSize;
    const uint64_t capacity = (sb.journal_blocks.get() - 1) * format::kBlockSize;
    const auto* bytes = reinterpret_cast<const std::byte*>(region.data());
    int slot = 0;
    auto header = jl::read_header_block(bytes + header_at, &slot);
    if (!header.is_ok()) return 0;
    auto scan = jl::scan_log(bytes + log_at, capacity, header->salt, header->tail_offset,
                             header->tail_seq, header->ordered_commits());
    if (scan.transactions.size() < 3) return 0;
    const jl::ScannedTxn& victim = which == Victim::kLast
                                       ? scan.transactions.back()
                                       : scan.transactions[scan.transactions.size() / 2];
    const uint64_t at = log_at + victim.offset + victim.length / 2;
    int fd = open(region_path().c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char byte = static_cast<char>(region[at] ^ 0x20);
    bool written = pwrite(fd, &byte, 1, static_cast<off_t>(at)) == 1;
    close(fd);
    return written ? victim.seq : 0;
  }

  void refused_until_fsck_repairs(Victim which, const std::string& refusal,
                                  const std::string& kind);
};

void DamagedJournalTest::refused_until_fsck_repairs(Victim which, const std::string& refusal,
                                                    const std::string& kind) {
  ASSERT_FALSE(fsck_bin().empty()) << "FSCK_BIN is not set";
  MountConfig config;
  config.region_size = 128ull << 20;  // read whole, twice
  ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  constexpr int kFiles = 12;
  for (int i = 0; i < kFiles; ++i) {
    std::string name = path("f" + std::to_string(i));
    int fd = open(name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    auto data = pattern(static_cast<uint64_t>(i), 0, 3000);
    ASSERT_TRUE(pwrite_all(fd, data.data(), data.size(), 0));
    ASSERT_EQ(fsync(fd), 0);
    close(fd);
  }
  // Power loss: the log keeps every committed transaction since the mount.
  ASSERT_NO_FATAL_FAILURE(kill_daemon());
  const uint64_t seq = damage_transaction(which);
  ASSERT_NE(seq, 0u);

  std::string out;
  EXPECT_EQ(run_command({sealfs_bin(), region_path(), mountpoint()}, &out), 1) << out;
  EXPECT_NE(out.find("cannot mount"), std::string::npos) << out;
  EXPECT_NE(out.find("journal: transaction " + std::to_string(seq) +
                     " at block "), std::string::npos) << out;
  EXPECT_NE(out.find(refusal), std::string::npos) << out;
  EXPECT_FALSE(is_mounted(mountpoint()));

  const std::string before = read_file(region_path());
  out.clear();
  EXPECT_EQ(fsck("-n", &out), 4) << out;
  EXPECT_NE(out.find(kind), std::string::npos) << out;
  EXPECT_TRUE(read_file(region_path()) == before) << "fsck -n wrote to the region";
  out.clear();
  EXPECT_EQ(fsck("-y", &out), 1) << out;
  out.clear();
  EXPECT_EQ(fsck("-n", &out), 0) << out;

  ASSERT_NO_FATAL_FAILURE(mount());
  int intact = 0;
  for (int i = 0; i < kFiles; ++i) {
    std::string got = read_file(path("f" + std::to_string(i)));
    auto want = pattern(static_cast<uint64_t>(i), 0, 3000);
    if (got.size() == want.size() && std::memcmp(got.data(), want.data(), want.size()) == 0) {
      ++intact;
    }
  }
  // One damaged transaction loses at most one operation's metadata.
  EXPECT_GE(intact, kFiles - 1);
}

TEST_F(DamagedJournalTest, RefusedUntilFsckRepairs) {
  refused_until_fsck_repairs(
      Victim::kMiddle, "is corrupt but later committed transactions follow; run fsck.sealfs",
      "journal_corrupt_middle");
}

// The last transaction's commit record is written only once its body is
// durable: a damaged body behind it is not a torn tail (format.md 4.3).
TEST_F(DamagedJournalTest, ADamagedLastTransactionIsRefusedUntilFsckRepairs) {
  refused_until_fsck_repairs(Victim::kLast, "committed but is damaged; run fsck.sealfs",
                             "journal_corrupt_last");
}

}  // namespace
}  // namespace sealfs::itest
