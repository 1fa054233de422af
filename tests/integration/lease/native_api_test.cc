// The native API on a real mount (docs/protocol.md "The native API"):
// sealfs_extend grows a mapped file without breaking anyone, in place, and
// the grown range is the file's (zeros, then what the holder stores, read
// back through read(2)); the lease still covers it for a later breaker;
// sealfs_persist_ranges checks every range before flushing any.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "reserved_map_fixture.h"
#include "pattern.h"
#include "sealfs/sealfs.h"
#include "sealfs/sealfs.hpp"

namespace sealfs::itest {
namespace {

class NativeApiTest : public ReservedMapFixture {};

constexpr uint64_t kFile = 1 * kMiB;

TEST_F(NativeApiTest, ExtendGrowsTheFileInPlaceWithoutABreak) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile + 100, 1));  // a partial last block
  HolderProcess& other = holder();
  ASSERT_EQ(other.map(path("f"), 0, kFile).rc, 0);
  ASSERT_NO_FATAL_FAILURE(map_here("f", kFile + 4096, 8 * kMiB));
  auto* base = static_cast<uint8_t*>(sealfs_map_addr(map_));
  // Bytes past EOF in the last block: not file data; the growth zeroes them.
  std::memset(base + kFile + 100, 0x77, 4096 - 100);

  ASSERT_EQ(sealfs_extend(map_, fd_, 3 * kMiB), 0) << sealfs_last_error();
  EXPECT_EQ(sealfs_map_addr(map_), base);
  EXPECT_EQ(sealfs_map_length(map_), 3 * kMiB);
  EXPECT_EQ(file_size("f"), 3 * kMiB);  // through the kernel: its cached size was dropped
  EXPECT_TRUE(file_has_pattern("f", kFile + 100, 1));
  EXPECT_TRUE(file_is_zero("f", kFile + 100, 3 * kMiB - kFile - 100));

  // The added pages are the file's blocks: stores show through read(2).
  fill_lease_pattern(base + 2 * kMiB, kMiB, 9, 2 * kMiB);
  const struct sealfs_range ranges[2] = {{base + 2 * kMiB, kMiB / 2},
                                         {base + 2 * kMiB + kMiB / 2, kMiB / 2}};
  ASSERT_EQ(sealfs_persist_ranges(map_, ranges, 2), 0) << sealfs_last_error();
  EXPECT_TRUE(file_has_pattern("f", kMiB, 9, 2 * kMiB));

  // Nobody was told anything: nothing they map changed.
  ASSERT_TRUE(other.sync());
  EXPECT_EQ(other.count("break "), 0) << other.transcript();
  other.send("check 0 0 " + std::to_string(kFile) + " 1");
  EXPECT_EQ(other.expect("check 0"), "check 0 ok");
}

// The lease covers the added range: a truncate into it must break us, and
// proceeds once we let go.
TEST_F(NativeApiTest, TruncateIntoTheAddedRangeBreaksTheExtendedLease) {
  ASSERT_NO_FATAL_FAILURE(mount_with(10));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  ASSERT_NO_FATAL_FAILURE(map_here("f", kFile, 4 * kMiB));
  ASSERT_EQ(sealfs_extend(map_, fd_, 2 * kMiB), 0) << sealfs_last_error();
  const int break_fd = sealfs_break_fd();
  ASSERT_GE(break_fd, 0);
  TimedOp op([&] { return truncate(path("f").c_str(), kFile + kMiB / 2); });
  struct pollfd p{break_fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1) << "no break for a truncate into the added range";
  struct sealfs_break_event ev{};
  ASSERT_EQ(sealfs_next_break(&ev), 0);
  EXPECT_EQ(ev.map, map_);
  EXPECT_EQ(ev.reason, SEALFS_BREAK_TRUNCATE);
  EXPECT_FALSE(op.done());  // it waits for us
  EXPECT_EQ(sealfs_extend(map_, fd_, 3 * kMiB), -ENXIO);  // a breaking lease does not grow
  ASSERT_EQ(sealfs_unmap(map_), 0);
  map_ = nullptr;
  auto r = op.wait(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0) << std::strerror(r->err);
  EXPECT_LT(r->seconds, 5.0);
  EXPECT_EQ(file_size("f"), kFile + kMiB / 2);
}

TEST_F(NativeApiTest, ExtendRefusals) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  ASSERT_NO_FATAL_FAILURE(make_file("g", kFile, 2));
  ASSERT_NO_FATAL_FAILURE(map_here("f", kFile, 2 * kMiB));
  EXPECT_EQ(sealfs_extend(map_, fd_, kFile), -EINVAL);  // not larger
  int other = open(path("g").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(other, 0);
  EXPECT_EQ(sealfs_extend(map_, other, 2 * kMiB), -EINVAL) << sealfs_last_error();  // another file
  close(other);
  int read_only = open(path("f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(read_only, 0);
  EXPECT_EQ(sealfs_extend(map_, read_only, 2 * kMiB), -EACCES) << sealfs_last_error();
  close(read_only);
  // The file is as it was after every refusal.
  EXPECT_EQ(file_size("f"), kFile);
  ASSERT_EQ(sealfs_extend(map_, fd_, 2 * kMiB), 0) << sealfs_last_error();
  EXPECT_EQ(file_size("f"), 2 * kMiB);

  struct sealfs_map* ro = nullptr;
  ASSERT_EQ(sealfs_map(fd_, 0, kFile, PROT_READ, 0, &ro), 0) << sealfs_last_error();
  EXPECT_EQ(sealfs_extend(ro, fd_, 2 * kMiB), -EACCES);
  ASSERT_EQ(sealfs_unmap(ro), 0);
}

// Refusals and failures after the daemon grew the file (docs/protocol.md
// "EXTEND": the size commits before the added range is allocated and
// checked) put the size back and free what was allocated for it.
TEST_F(NativeApiTest, ARefusedExtendLeavesTheFileAsItWas) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "", 64 * kMiB, {"--align", "2097152"}));
  ASSERT_NO_FATAL_FAILURE(make_file("f", 256 * kKiB, 1));
  fd_ = open(path("f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd_, 0) << std::strerror(errno);
  ASSERT_EQ(sealfs_map_reserve(fd_, 0, 256 * kKiB, 256 * kMiB, PROT_READ | PROT_WRITE,
                               SEALFS_MAP_RELOCATE, &map_),
            0)
      << sealfs_last_error();
  const uint64_t free_before = free_blocks();
  // The added range starts 256 KiB into a 2 MiB unit: the blocks allocated
  // for it do not start on the alignment, which MAP's rule refuses.
  EXPECT_EQ(sealfs_extend(map_, fd_, 512 * kKiB), -EINVAL) << sealfs_last_error();
  EXPECT_NE(std::string(sealfs_last_error()).find("align"), std::string::npos)
      << sealfs_last_error();
  EXPECT_EQ(file_size("f"), 256 * kKiB);
  EXPECT_EQ(free_blocks(), free_before);
  // More than the region holds.
  EXPECT_EQ(sealfs_extend(map_, fd_, 128 * kMiB), -ENOSPC) << sealfs_last_error();
  EXPECT_EQ(file_size("f"), 256 * kKiB);
  EXPECT_EQ(free_blocks(), free_before);
  EXPECT_TRUE(file_has_pattern("f", 256 * kKiB, 1));
  EXPECT_EQ(sealfs_map_length(map_), 256 * kKiB);
}

TEST_F(NativeApiTest, PersistRangesChecksEveryRangeFirst) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  ASSERT_NO_FATAL_FAILURE(map_here("f", kFile, kFile));
  auto* base = static_cast<uint8_t*>(sealfs_map_addr(map_));
  const struct sealfs_range good[3] = {{base, 64}, {base + 8192, 100}, {base + kFile - 1, 1}};
  EXPECT_EQ(sealfs_persist_ranges(map_, good, 3), 0) << sealfs_last_error();
  const struct sealfs_range bad[2] = {{base, 64}, {base + kFile - 1, 2}};
  EXPECT_EQ(sealfs_persist_ranges(map_, bad, 2), -EINVAL);
  EXPECT_NE(std::string(sealfs_last_error()).find("range 1"), std::string::npos)
      << sealfs_last_error();
  EXPECT_EQ(sealfs_persist_ranges(map_, nullptr, 0), 0);
}

// Recycling a file, as pmem-rocksdb recycles its logs: a used file renamed
// to its next name keeps its blocks, written, with their old bytes, and a
// map of it with ALLOCATE | RELOCATE allocates, moves and zeroes nothing;
// the new owner writes over the old records (docs/protocol.md, "The native
// API").
TEST_F(NativeApiTest, ARecycledFileKeepsItsBlocksAndBytes) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  constexpr uint64_t kLog = 4 * kMiB;
  const unsigned flags = SEALFS_MAP_ALLOCATE | SEALFS_MAP_RELOCATE;
  fd_ = open(path("log.1").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd_, 0) << std::strerror(errno);
  ASSERT_EQ(ftruncate(fd_, kLog), 0);
  ASSERT_EQ(sealfs_map(fd_, 0, kLog, PROT_READ | PROT_WRITE, flags, &map_), 0) << sealfs_last_error();
  fill_lease_pattern(sealfs_map_addr(map_), kLog, 5, 0);
  ASSERT_EQ(sealfs_persist(map_, sealfs_map_addr(map_), kLog), 0) << sealfs_last_error();
  ASSERT_EQ(sealfs_unmap(map_), 0);
  map_ = nullptr;
  close(fd_);
  fd_ = -1;

  const uint64_t free_before = free_blocks();
  ASSERT_EQ(rename(path("log.1").c_str(), path("log.2").c_str()), 0) << std::strerror(errno);
  fd_ = open(path("log.2").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd_, 0) << std::strerror(errno);
  ASSERT_EQ(sealfs_map(fd_, 0, kLog, PROT_READ | PROT_WRITE, flags, &map_), 0) << sealfs_last_error();
  EXPECT_EQ(free_blocks(), free_before) << "the recycled file's map allocated or moved blocks";
  std::vector<uint8_t> old(kLog);
  fill_lease_pattern(old.data(), kLog, 5, 0);
  EXPECT_EQ(std::memcmp(sealfs_map_addr(map_), old.data(), kLog), 0) << "the old bytes were zeroed";
  fill_lease_pattern(sealfs_map_addr(map_), kMiB, 6, 0);
  ASSERT_EQ(sealfs_persist(map_, sealfs_map_addr(map_), kMiB), 0) << sealfs_last_error();
  EXPECT_TRUE(file_has_pattern("log.2", kMiB, 6));
  EXPECT_EQ(free_blocks(), free_before);
}

// The C++ wrapper (sealfs.hpp) has the native API too: a reserving open,
// extend and persist of many ranges, on the same mapping object.
TEST_F(NativeApiTest, CxxWrapperReservesExtendsAndPersistsRanges) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  fd_ = open(path("f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd_, 0) << std::strerror(errno);
  sealfs::DirectMap map;
  ASSERT_EQ(sealfs::DirectMap::open_reserve(fd_, 0, kFile, 4 * kMiB, PROT_READ | PROT_WRITE, 0,
                                            &map),
            0)
      << sealfs_last_error();
  auto* base = static_cast<uint8_t*>(map.data());
  ASSERT_EQ(map.extend(fd_, 3 * kMiB), 0) << sealfs_last_error();
  EXPECT_EQ(map.data(), base);
  EXPECT_EQ(map.size(), 3 * kMiB);
  fill_lease_pattern(base + kFile, 2 * kMiB, 5, kFile);
  const std::vector<struct sealfs_range> ranges = {{base + kFile, kMiB},
                                                   {base + 2 * kMiB, kMiB}};
  ASSERT_EQ(map.persist(ranges), 0) << sealfs_last_error();
  EXPECT_TRUE(file_has_pattern("f", 2 * kMiB, 5, kFile));
  const struct sealfs_range outside = {base + 3 * kMiB - 1, 2};
  EXPECT_EQ(map.persist(&outside, 1), -EINVAL);
  EXPECT_EQ(map.extend(fd_, 2 * kMiB), -EINVAL);  // not larger
  EXPECT_EQ(map.reset(), 0);
  EXPECT_EQ(file_size("f"), 3 * kMiB);
}

// voluntary_ctxt_switches of this process's thread named `name`, -1 if none.
long thread_switches(const std::string& name) {
  DIR* tasks = opendir("/proc/self/task");
  if (tasks == nullptr) return -1;
  long found = -1;
  while (struct dirent* e = readdir(tasks)) {
    const std::string dir = std::string("/proc/self/task/") + e->d_name;
    std::ifstream comm(dir + "/comm");
    std::string c;
    if (!std::getline(comm, c) || c != name) continue;
    std::ifstream status(dir + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) found = std::stol(line.substr(24));
    }
  }
  closedir(tasks);
  return found;
}

// Map latency (issue 11): the calling thread reads its own answer, so a
// map and an unmap wake no library thread. Before, every answer went
// through the connection's reader thread: two wakeups per map and unmap.
TEST_F(NativeApiTest, AnswersAreReadByTheCallerNotTheReaderThread) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  ASSERT_NO_FATAL_FAILURE(map_here("f", kFile, kFile));  // connects; the reader starts
  // The reader names itself once it runs, which may be after the map returned.
  long before = thread_switches("sealfs-reader");
  for (int i = 0; i < 200 && before < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    before = thread_switches("sealfs-reader");
  }
  ASSERT_GE(before, 0) << "no sealfs-reader thread after 2 s";
  constexpr int kRounds = 50;
  for (int i = 0; i < kRounds; ++i) {
    struct sealfs_map* m = nullptr;
    ASSERT_EQ(sealfs_map(fd_, 0, kFile, PROT_READ | PROT_WRITE, 0, &m), 0) << sealfs_last_error();
    ASSERT_EQ(sealfs_unmap(m), 0);
  }
  const long after = thread_switches("sealfs-reader");
  EXPECT_LT(after - before, kRounds / 5) << "the reader thread woke for answers";
}

// Several threads share one connection while BREAKs, which nobody asked
// for, arrive on it between the answers: whichever thread holds the reading
// role hands every answer to its caller and acts on every break. Each
// mapper holds its mapping until it sees the break, so a break dropped by
// a reading caller makes a truncate wait out the 2 s break time, and a
// caller left without its answer hangs.
TEST_F(NativeApiTest, CallersShareTheSocketWithBreaksArrivingBetweenAnswers) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  fd_ = open(path("f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd_, 0) << std::strerror(errno);
  std::atomic<bool> stop{false};
  std::atomic<int> granted{0}, unexpected{0};
  std::vector<std::thread> mappers;
  for (int t = 0; t < 3; ++t) {
    mappers.emplace_back([&] {
      while (!stop.load()) {
        struct sealfs_map* m = nullptr;
        const int r = sealfs_map(fd_, 0, kFile, PROT_READ, 0, &m);
        if (r == 0) {
          granted++;
          while (sealfs_map_state(m) == 0 && !stop.load()) {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
          }
          if (sealfs_unmap(m) != 0) unexpected++;
        } else if (r != -ENXIO) {  // ENXIO: refused while the file breaks
          unexpected++;
        }
      }
    });
  }
  double slowest = 0;
  for (int round = 0; round < 20; ++round) {
    for (uint64_t size : {2 * kFile, kFile}) {
      TimedOp op([&] { return truncate(path("f").c_str(), static_cast<off_t>(size)); });
      auto done = op.wait(10s);
      ASSERT_TRUE(done) << "a truncate never finished";
      ASSERT_EQ(done->rc, 0) << std::strerror(done->err);
      slowest = std::max(slowest, done->seconds);
    }
  }
  stop = true;
  for (std::thread& t : mappers) t.join();
  int breaks = 0;
  for (struct sealfs_break_event ev; sealfs_next_break(&ev) == 0;) breaks++;
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_GT(granted.load(), 0);
  EXPECT_GT(breaks, 0) << "no break reached the mappers";
  EXPECT_LT(slowest, 1.5) << "a truncate waited out a break time";
}

}  // namespace
}  // namespace sealfs::itest
