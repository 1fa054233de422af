// -o writeback_cache on a real mount (docs/daemon.md, "Caching and
// coherence"): the kernel keeps write(2) data until writeback, so a direct
// mapping asked for right after a write must still see it (libsealfs writes
// the file back first, as the daemon asks), O_APPEND is the kernel's, and
// what fsync or the last close handed over survives a killed daemon.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "lease_fixture.h"
#include "pattern.h"
#include "sealfs/sealfs.h"

namespace sealfs::itest {
namespace {

constexpr uint64_t kFile = 1 * kMiB;

class WritebackCacheTest : public LeaseFixture {
 protected:
  // [offset, offset + length) of the file, seen through the mapping m.
  ::testing::AssertionResult mapping_has_pattern(const struct sealfs_map* m, uint64_t offset,
                                                 uint64_t length, uint64_t seed) {
    const auto* data = static_cast<const uint8_t*>(sealfs_map_addr(m)) + offset -
                       static_cast<uint64_t>(sealfs_map_offset(m));
    size_t bad = lease_pattern_mismatch(data, length, seed, offset);
    if (bad == length) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "the direct mapping differs from pattern " << seed << " at " << offset + bad;
  }
};

bool write_pattern(int fd, uint64_t offset, uint64_t length, uint64_t seed) {
  std::vector<uint8_t> buf(length);
  fill_lease_pattern(buf.data(), length, seed, offset);
  return pwrite(fd, buf.data(), length, static_cast<off_t>(offset)) ==
         static_cast<ssize_t>(length);
}

// The database pattern: one descriptor writes with write(2), then maps. The
// written bytes are only in the kernel's page cache when sealfs_map runs;
// the daemon had not even seen the file grow.
TEST_F(WritebackCacheTest, AMapSeesWhatTheSameDescriptorJustWrote) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "writeback_cache"));
  int fd = open(path("db").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_TRUE(write_pattern(fd, 0, kFile, 5));

  struct sealfs_map* whole = nullptr;
  int rc = sealfs_map(fd, 0, kFile, PROT_READ, 0, &whole);
  ASSERT_EQ(rc, 0) << std::strerror(-rc) << ": " << sealfs_last_error();
  EXPECT_TRUE(mapping_has_pattern(whole, 0, kFile, 5));

  // Again after the first lease: this descriptor still writes through the
  // page cache (it was opened before the file had a lease), and the next
  // map flushes it first.
  ASSERT_TRUE(write_pattern(fd, 64 * kKiB, 4 * kKiB, 9));
  struct sealfs_map* piece = nullptr;
  rc = sealfs_map(fd, 64 * kKiB, 64 * kKiB, PROT_READ, 0, &piece);
  ASSERT_EQ(rc, 0) << std::strerror(-rc) << ": " << sealfs_last_error();
  EXPECT_TRUE(mapping_has_pattern(piece, 64 * kKiB, 4 * kKiB, 9));
  // The same blocks, so the first mapping sees the new bytes too.
  EXPECT_TRUE(mapping_has_pattern(whole, 64 * kKiB, 4 * kKiB, 9));
  EXPECT_EQ(sealfs_unmap(piece), 0);
  EXPECT_EQ(sealfs_unmap(whole), 0);
  close(fd);
}

// Closing a descriptor of a file on the mount runs the kernel's flush,
// which writes the file's dirty pages back through the daemon and waits.
// The lease engine closed the descriptor of each map request on its own
// thread, after a refusal while holding the file's layout lock: with pages
// of the file dirty in the cache the daemon deadlocked (the writeback
// waited for the lock, the engine for the writeback).
TEST_F(WritebackCacheTest, MapRequestsWhileTheCacheHoldsDirtyPages) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "writeback_cache"));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  int writer = open(path("f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(writer, 0);
  HolderProcess& h = holder(true);
  for (int round = 0; round < 3; ++round) {
    const uint64_t at = round * 64 * kKiB;
    ASSERT_TRUE(write_pattern(writer, at, 4 * kKiB, 20 + round));
    // Refused under the layout lock (past end of file).
    EXPECT_EQ(h.map(path("f"), 0, 2 * kFile).rc, -ERANGE) << h.transcript();
    ASSERT_TRUE(write_pattern(writer, at + 8 * kKiB, 4 * kKiB, 30 + round));
    MapReply granted = h.map(path("f"), 0, kFile);
    ASSERT_EQ(granted.rc, 0) << h.transcript();
    const std::string idx = std::to_string(granted.index);
    h.send("check " + idx + " " + std::to_string(at + 8 * kKiB) + " 4096 " +
           std::to_string(30 + round));
    EXPECT_EQ(h.expect("check " + idx), "check " + idx + " ok");
    h.send("unmap " + idx);
    ASSERT_TRUE(h.expect("unmapped " + idx, 5s)) << h.transcript();
  }
  close(writer);
}

// With the writeback cache the kernel places O_APPEND writes from its own
// size and writes the pages back with their offsets; a daemon that appended
// them at its own end of file again would move the bytes.
TEST_F(WritebackCacheTest, AppendsLandWhereTheKernelPutThem) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "writeback_cache"));
  int a = open(path("log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int b = open(path("log").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  std::string expected;
  for (int round = 0; round < 60; ++round) {
    const std::string line_a(97, static_cast<char>('a' + round % 26));
    const std::string line_b(89, static_cast<char>('A' + round % 26));
    ASSERT_EQ(write(a, line_a.data(), line_a.size()), static_cast<ssize_t>(line_a.size()));
    ASSERT_EQ(write(b, line_b.data(), line_b.size()), static_cast<ssize_t>(line_b.size()));
    expected += line_a + line_b;
    // Partial pages already handed to the daemon, then appended to again.
    if (round % 7 == 3) {
      ASSERT_EQ(fsync(a), 0);
    }
  }
  close(a);
  close(b);
  // What the daemon stored, not the kernel's cache of it.
  ASSERT_NO_FATAL_FAILURE(unmount());
  ASSERT_NO_FATAL_FAILURE(mount());
  EXPECT_EQ(read_file(path("log")), expected);
}

// The promise: what fsync returned for, and what the last close wrote
// back, is in the region when the daemon is killed.
TEST_F(WritebackCacheTest, FsyncedAndClosedDataSurviveAKilledDaemon) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "writeback_cache"));
  int synced = open(path("synced").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(synced, 0);
  ASSERT_TRUE(write_pattern(synced, 0, 300 * kKiB, 3));
  ASSERT_EQ(fsync(synced), 0);
  int closed = open(path("closed").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(closed, 0);
  ASSERT_TRUE(write_pattern(closed, 0, 200 * kKiB, 4));
  ASSERT_EQ(close(closed), 0);
  ASSERT_NO_FATAL_FAILURE(kill_daemon());
  close(synced);
  ASSERT_NO_FATAL_FAILURE(mount());
  EXPECT_TRUE(file_has_pattern("synced", 300 * kKiB, 3));
  EXPECT_TRUE(file_has_pattern("closed", 200 * kKiB, 4));
}

}  // namespace
}  // namespace sealfs::itest
