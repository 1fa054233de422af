// Journal commit latency: one transaction of three records (~300 payload
// bytes, the size of an inode update plus a directory entry plus a bitmap
// word) on an emulated-pmem file in /dev/shm (cache-line flush + fence) and on
// the DRAM test region (which pays for its persistence bookkeeping instead).
// The journal is 16 MiB as mkfs makes it, so checkpoints are included at
// their natural rate.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "media/journal.h"
#include "media/region_dram.h"
#include "media/region_pmem2.h"

namespace sealfs {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kRegionBytes = 64 * kMiB;
constexpr JournalArea kArea{1, 16 * kMiB / 4096};
constexpr uint64_t kHome = 32 * kMiB;

void run_commits(benchmark::State& state, Region& region) {
  if (!Journal::format(region, kArea).is_ok()) {
    state.SkipWithError("journal format failed");
    return;
  }
  auto opened = Journal::open(region, kArea);
  if (!opened.is_ok()) {
    state.SkipWithError(opened.status().to_string().c_str());
    return;
  }
  Journal& journal = **opened;
  unsigned char inode[256], dirent[40], word[8];
  std::memset(inode, 0xab, sizeof(inode));
  std::memset(dirent, 0xcd, sizeof(dirent));
  uint64_t i = 0;
  for (auto _ : state) {
    std::memcpy(word, &i, sizeof(word));
    Transaction txn = journal.begin();
    txn.write(kHome + (i % 4096) * 256, inode, sizeof(inode));
    txn.write(kHome + 2 * kMiB + (i % 1024) * 40, dirent, sizeof(dirent));
    txn.write(kHome + 4 * kMiB + (i % 512) * 8, word, sizeof(word));
    if (!journal.commit(std::move(txn)).is_ok()) {
      state.SkipWithError("commit failed");
      return;
    }
    ++i;
  }
  state.counters["checkpoints"] = static_cast<double>(journal.checkpoints());
  state.SetItemsProcessed(state.iterations());
}

void BM_CommitPmem2Emulated(benchmark::State& state) {
  std::string path = "/dev/shm/sealfs-journal-bench-" + std::to_string(getpid());
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, kRegionBytes) != 0) {
    state.SkipWithError("cannot create the /dev/shm file");
    if (fd >= 0) ::close(fd);
    return;
  }
  ::close(fd);
  {
    RegionOptions options;
    options.emulate_pmem = true;
    auto region = RegionPmem2::open(path, options);
    if (!region.is_ok()) {
      state.SkipWithError(region.status().to_string().c_str());
    } else {
      run_commits(state, **region);
    }
  }
  ::unlink(path.c_str());
}
BENCHMARK(BM_CommitPmem2Emulated);

void BM_CommitDram(benchmark::State& state) {
  auto region = RegionDram::create(kRegionBytes);
  run_commits(state, *region);
}
BENCHMARK(BM_CommitDram);

}  // namespace
}  // namespace sealfs

BENCHMARK_MAIN();
