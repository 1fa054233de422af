// A persist of a large writable direct mapping flushes the pages written
// since the last persist, not the whole range (docs/protocol.md "Persisting
// only what was written"), on a real mount whose emulate_pmem region lives
// in /dev/shm (cache-line granularity, shmem pages).
//
// Whether the kernel can track writes is probed independently of
// libsealfs (write_tracking_probe.h): where it can, the tests demand the
// scanned path; where it cannot (an older CI kernel), they demand the
// whole-range flush. Neither case is skipped.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "client/persist_stats.h"
#include "client/write_tracking.h"
#include "reserved_map_fixture.h"
#include "sealfs/sealfs.h"
#include "write_tracking_probe.h"

namespace sealfs::itest {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kLinesPerPage = kPage / 64;
// Large enough to be write-protected when mapped (kProtectAtMapAtLeast).
constexpr uint64_t kFile = 64 * kMiB;

struct Counts {
  uint64_t scanned, whole, fallbacks, lines;
  static Counts now() {
    auto& s = client::persist_stats();
    return {s.scanned.load(), s.whole.load(), s.fallbacks.load(), s.lines.load()};
  }
  Counts operator-(const Counts& o) const {
    return {scanned - o.scanned, whole - o.whole, fallbacks - o.fallbacks, lines - o.lines};
  }
};

// The pages (indexes from the map's start) of the runs the scans returned.
std::mutex g_runs_mu;
std::set<uint64_t> g_flushed_pages;
uintptr_t g_base = 0;
void record_run(const void* start, size_t len) {
  std::lock_guard lock(g_runs_mu);
  const auto s = reinterpret_cast<uintptr_t>(start);
  for (uintptr_t p = s; p < s + len; p += kPage) g_flushed_pages.insert((p - g_base) / kPage);
}

class PersistWrittenTest : public ReservedMapFixture {
 protected:
  void SetUp() override {
    ReservedMapFixture::SetUp();
    tracks_ = kernel_tracks_shmem_writes();
    client::set_written_run_observer(record_run);
  }
  void TearDown() override {
    client::set_written_run_observer(nullptr);
    unsetenv("SEALFS_TRACK_WRITES");
    ReservedMapFixture::TearDown();
  }
  void map_file(uint64_t reserve = kFile, uint64_t size = kFile) {
    ASSERT_NO_FATAL_FAILURE(mount_with(10, "", 256 * kMiB));
    ASSERT_NO_FATAL_FAILURE(make_file("f", size, 1));
    ASSERT_NO_FATAL_FAILURE(map_here("f", size, reserve));
    base_ = static_cast<uint8_t*>(sealfs_map_addr(map_));
    g_base = reinterpret_cast<uintptr_t>(base_);
  }
  // Persists the whole map; returns what it flushed and which pages the
  // scans returned.
  Counts persist_all(std::set<uint64_t>* pages = nullptr) {
    {
      std::lock_guard lock(g_runs_mu);
      g_flushed_pages.clear();
    }
    const Counts before = Counts::now();
    EXPECT_EQ(sealfs_persist(map_, base_, sealfs_map_length(map_)), 0) << sealfs_last_error();
    const Counts d = Counts::now() - before;
    if (pages != nullptr) {
      std::lock_guard lock(g_runs_mu);
      *pages = g_flushed_pages;
    }
    return d;
  }
  void expect_whole_flush(const Counts& d, uint64_t length) {
    EXPECT_EQ(d.scanned, 0u);
    EXPECT_EQ(d.whole, 1u);
    EXPECT_EQ(d.lines, length / 64);
  }

  bool tracks_ = false;
  uint8_t* base_ = nullptr;
};

TEST_F(PersistWrittenTest, FlushesOnlyThePagesWrittenSinceTheLastPersist) {
  ASSERT_NO_FATAL_FAILURE(map_file());
  // Nothing was stored through the map yet (the file was written through
  // the mount).
  Counts d = persist_all();
  EXPECT_EQ(d.lines, tracks_ ? 0 : kFile / 64);

  const std::set<uint64_t> first = {3, 1000, 4097, 6000, kFile / kPage - 1};
  for (uint64_t page : first) base_[page * kPage + 100] = 0xA5;
  std::set<uint64_t> pages;
  d = persist_all(&pages);
  if (!tracks_) {
    expect_whole_flush(d, kFile);
    return;
  }
  EXPECT_EQ(d.scanned, 1u);
  EXPECT_EQ(d.fallbacks, 0u);
  EXPECT_EQ(d.lines, first.size() * kLinesPerPage);
  EXPECT_EQ(pages, first);

  // A page written after a persist is flushed by the next one; one written
  // before and not since is not flushed again.
  base_[1000 * kPage + 7] = 1;
  base_[20 * kPage] = 2;
  d = persist_all(&pages);
  EXPECT_EQ(pages, (std::set<uint64_t>{20, 1000}));
  EXPECT_EQ(d.lines, 2 * kLinesPerPage);

  // Reads are not writes; nothing written, nothing flushed.
  volatile uint8_t sum = 0;
  for (uint64_t off = 0; off < kFile; off += kPage) sum = sum + base_[off];
  d = persist_all(&pages);
  EXPECT_EQ(d.lines, 0u);
  EXPECT_TRUE(pages.empty());

  // A persist of part of the map leaves the rest's written pages alone; a
  // range ending inside a page flushes (and rescans) that whole page.
  base_[10 * kPage] = 3;
  base_[5000 * kPage] = 4;
  const Counts before = Counts::now();
  ASSERT_EQ(sealfs_persist(map_, base_, 100 * kPage + 10), 0);
  d = Counts::now() - before;
  EXPECT_EQ(d.lines, kLinesPerPage);  // page 10 only
  d = persist_all(&pages);
  EXPECT_EQ(pages, (std::set<uint64_t>{5000}));

  // What the stores wrote is the file's.
  uint8_t byte = 0;
  EXPECT_EQ(pread(fd_, &byte, 1, 5000 * kPage), 1);
  EXPECT_EQ(byte, 4);
}

// A small mapping is not write-protected when mapped (a map should not
// wait for it): its first persist writes all of it back, the next ones
// only what was written.
TEST_F(PersistWrittenTest, ASmallMappingIsFlushedWholeOnceThenByWrittenPages) {
  constexpr uint64_t kSmall = 8 * kMiB;
  static_assert(kSmall < client::kProtectAtMapAtLeast);
  ASSERT_NO_FATAL_FAILURE(map_file(kSmall, kSmall));
  Counts d = persist_all();
  EXPECT_EQ(d.lines, kSmall / 64);
  base_[33 * kPage] = 1;
  std::set<uint64_t> pages;
  d = persist_all(&pages);
  if (!tracks_) return expect_whole_flush(d, kSmall);
  EXPECT_EQ(d.scanned, 1u);
  EXPECT_EQ(pages, (std::set<uint64_t>{33}));
  EXPECT_EQ(d.lines, kLinesPerPage);
}

TEST_F(PersistWrittenTest, TheAddedPagesOfAnExtendedMapAreTrackedToo) {
  ASSERT_NO_FATAL_FAILURE(map_file(2 * kFile));
  base_[7 * kPage] = 9;
  ASSERT_EQ(sealfs_extend(map_, fd_, kFile + 4 * kMiB), 0) << sealfs_last_error();
  base_[kFile + 3 * kPage] = 9;
  base_[2 * kPage] = 9;
  std::set<uint64_t> pages;
  const Counts d = persist_all(&pages);
  if (!tracks_) return expect_whole_flush(d, kFile + 4 * kMiB);
  EXPECT_EQ(d.fallbacks, 0u);
  EXPECT_EQ(pages, (std::set<uint64_t>{2, 7, kFile / kPage + 3}));
  EXPECT_EQ(d.lines, 3 * kLinesPerPage);
}

// A forked child that maps the file tracks its writes with descriptors of
// its own (the parent's userfaultfd registers and its pagemap descriptor
// scans the parent's memory), and the parent's tracking goes on.
TEST_F(PersistWrittenTest, AForkedChildTracksItsOwnMappings) {
  ASSERT_NO_FATAL_FAILURE(map_file());
  base_[4 * kPage] = 1;
  (void)persist_all();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    struct sealfs_map* m = nullptr;
    const int fd = open(path("f").c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0 || sealfs_map(fd, 0, kFile, PROT_READ | PROT_WRITE, 0, &m) != 0) _exit(2);
    auto* p = static_cast<uint8_t*>(sealfs_map_addr(m));
    for (uint64_t page : {1, 2, 3}) p[page * kPage] = 7;
    const Counts before = Counts::now();
    if (sealfs_persist(m, p, kFile) != 0) _exit(3);
    const Counts d = Counts::now() - before;
    const bool ok = tracks_ ? d.scanned == 1 && d.lines == 3 * kLinesPerPage
                            : d.whole == 1 && d.lines == kFile / 64;
    sealfs_unmap(m);
    _exit(ok ? 0 : 4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  base_[5 * kPage] = 1;
  std::set<uint64_t> pages;
  const Counts d = persist_all(&pages);
  if (!tracks_) return expect_whole_flush(d, kFile);
  EXPECT_EQ(d.fallbacks, 0u);
  EXPECT_EQ(pages, (std::set<uint64_t>{5}));
}

// Without tracking every line of the range is written back, written or not:
// when turned off, and when a scan finds part of the range untracked.
TEST_F(PersistWrittenTest, TheFallbackFlushesEveryLine) {
  ASSERT_EQ(setenv("SEALFS_TRACK_WRITES", "0", 1), 0);
  ASSERT_NO_FATAL_FAILURE(map_file());
  unsetenv("SEALFS_TRACK_WRITES");
  (void)persist_all();
  base_[77 * kPage] = 1;
  expect_whole_flush(persist_all(), kFile);
  expect_whole_flush(persist_all(), kFile);  // and again, written or not

  // A tracked map, one page of which is replaced behind the library's back
  // (anonymous memory, never registered): the scan refuses; all is flushed.
  ASSERT_EQ(sealfs_unmap(map_), 0);
  map_ = nullptr;
  close(fd_);
  ASSERT_NO_FATAL_FAILURE(map_here("f", kFile, kFile));
  base_ = static_cast<uint8_t*>(sealfs_map_addr(map_));
  g_base = reinterpret_cast<uintptr_t>(base_);
  (void)persist_all();
  ASSERT_NE(mmap(base_ + 9 * kPage, kPage, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
            MAP_FAILED);
  base_[100 * kPage] = 5;
  const Counts d = persist_all();
  EXPECT_EQ(d.whole, 1u);
  EXPECT_EQ(d.fallbacks, tracks_ ? 1u : 0u);
  EXPECT_GE(d.lines, kFile / 64);  // everything (plus the pages the scan returned first)
}

// Writer threads store into random pages while the main thread persists
// the whole map over and over; each writer notes, before each store, a
// tick of a shared clock as that page's last write, and every page a scan
// returns is stamped with a tick taken after its lines were written back.
// After the writers stop and one last persist, every written page must
// carry a flush stamp later than its last write: a store that landed while
// a scan was write-protecting again, and was neither returned by that scan
// nor by a later one, leaves its page's stamp behind.
std::atomic<uint64_t> g_clock{1};
std::vector<std::atomic<uint64_t>>* g_flushed_at = nullptr;
void stamp_run(const void* start, size_t len) {
  const auto s = reinterpret_cast<uintptr_t>(start);
  for (uintptr_t p = s; p < s + len; p += kPage) {
    (*g_flushed_at)[(p - g_base) / kPage].store(g_clock.fetch_add(1), std::memory_order_release);
  }
}

TEST_F(PersistWrittenTest, ConcurrentWritersAreNeverMissed) {
  ASSERT_NO_FATAL_FAILURE(map_file());
  const uint64_t pages = 4 * kMiB / kPage;  // a hot part: pages written again and again
  std::vector<std::atomic<uint64_t>> flushed_at(kFile / kPage);
  std::vector<std::atomic<uint64_t>> last_write(kFile / kPage);
  g_flushed_at = &flushed_at;
  client::set_written_run_observer(stamp_run);
  (void)persist_all();

  constexpr int kWriters = 3;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937_64 rng(w + 1);
      while (!stop.load(std::memory_order_relaxed)) {
        // Each writer owns the pages p with p % kWriters == w.
        const uint64_t page = (rng() % (pages / kWriters)) * kWriters + w;
        const uint64_t tick = g_clock.fetch_add(1);
        last_write[page].store(tick, std::memory_order_relaxed);
        reinterpret_cast<volatile uint64_t*>(base_ + page * kPage)[rng() % (kPage / 8)] = tick;
      }
    });
  }
  const auto until = std::chrono::steady_clock::now() + 1500ms;
  int persists = 0;
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_EQ(sealfs_persist(map_, base_, kFile), 0);
    ++persists;
  }
  stop = true;
  for (auto& t : writers) t.join();
  const Counts d = persist_all();
  client::set_written_run_observer(nullptr);
  g_flushed_at = nullptr;
  if (!tracks_) return expect_whole_flush(d, kFile);
  uint64_t written = 0, missed = 0;
  for (uint64_t p = 0; p < pages; ++p) {
    const uint64_t w = last_write[p].load();
    if (w == 0) continue;
    ++written;
    if (flushed_at[p].load() < w) ++missed;
  }
  EXPECT_GT(persists, 10);
  EXPECT_GT(written, pages / 2);
  EXPECT_EQ(missed, 0u) << "of " << written << " written pages, over " << persists << " persists";
}

// Threads that each store into pages of their own and then persist the
// whole map: when a persist returns, every page its thread stored into
// before calling it has been flushed since. A scan returns a page to one
// thread only (it write-protects it again), so another thread's persist
// that finds the page clean must wait until the first has flushed it.
TEST_F(PersistWrittenTest, ConcurrentPersistsReturnOnlyOnceTheirPagesAreFlushed) {
  ASSERT_NO_FATAL_FAILURE(map_file());
  std::vector<std::atomic<uint64_t>> flushed_at(kFile / kPage);
  g_flushed_at = &flushed_at;
  client::set_written_run_observer(stamp_run);
  constexpr int kThreads = 3;
  constexpr uint64_t kPagesEach = 64;
  std::atomic<uint64_t> early{0}, persists{0};
  std::vector<std::thread> threads;
  const Counts before = Counts::now();
  const auto until = std::chrono::steady_clock::now() + 1500ms;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t + 7);
      std::vector<std::pair<uint64_t, uint64_t>> wrote;  // page, tick before the store
      while (std::chrono::steady_clock::now() < until) {
        wrote.clear();
        for (int i = 0; i < 4; ++i) {
          const uint64_t page = (rng() % kPagesEach) * kThreads + t;
          const uint64_t tick = g_clock.fetch_add(1);
          reinterpret_cast<volatile uint64_t*>(base_ + page * kPage)[rng() % (kPage / 8)] = tick;
          wrote.emplace_back(page, tick);
        }
        if (sealfs_persist(map_, base_, kFile) != 0) std::abort();
        persists.fetch_add(1);
        for (auto& [page, tick] : wrote) {
          if (flushed_at[page].load(std::memory_order_acquire) < tick) early.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  client::set_written_run_observer(nullptr);
  g_flushed_at = nullptr;
  const Counts d = Counts::now() - before;
  EXPECT_GT(persists.load(), 30u);
  if (!tracks_) {  // no scan: each persist writes back every line itself
    EXPECT_EQ(d.scanned, 0u);
    EXPECT_EQ(d.whole, persists.load());
    EXPECT_EQ(d.lines, persists.load() * (kFile / 64));
    return;
  }
  EXPECT_EQ(d.scanned, persists.load());
  EXPECT_EQ(early.load(), 0u) << "stores not yet flushed when their persist returned, over "
                              << persists.load() << " persists";
}

}  // namespace
}  // namespace sealfs::itest
