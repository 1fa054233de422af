// The client's cache-line persist (sealfs_persist at kGranularityCacheLine)
// on a private DRAM mapping: the cost of writing dirty lines back and
// fencing, without a daemon. The map object is filled in by hand the way
// sealfs_map fills it for a cache-line region whose writes are not tracked,
// so every range is flushed line by line (the path an emulate_pmem or ADR
// region's holder takes for ranges under the write-tracking threshold).
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "client/client_internal.h"

namespace {

constexpr size_t kMapSize = 64ull << 20;

struct sealfs_map* g_map = nullptr;

void make_map() {
  void* addr = ::mmap(nullptr, kMapSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (addr == MAP_FAILED) std::abort();
  std::memset(addr, 0, kMapSize);  // every page present before timing
  g_map = new struct sealfs_map;
  g_map->addr = addr;
  g_map->length = kMapSize;
  g_map->granularity = sealfs::wire::kGranularityCacheLine;
  g_map->tracks_writes = false;
}

// Dirty every line of one range, then persist it: a holder's store + persist.
void BM_StorePersist(benchmark::State& state) {
  const size_t len = static_cast<size_t>(state.range(0));
  auto* base = static_cast<char*>(g_map->addr);
  size_t offset = 0;
  char value = 0;
  for (auto _ : state) {
    std::memset(base + offset, ++value, len);
    if (sealfs_persist(g_map, base + offset, len) != 0) std::abort();
    offset = (offset + ((len + 4095) & ~size_t{4095})) % (kMapSize - len);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * len));
}

// Sixteen scattered 100-byte records (each crossing a line boundary) in one
// call: the many-small-ranges shape of a log commit.
void BM_StorePersistRanges(benchmark::State& state) {
  constexpr size_t kRecords = 16, kRecord = 100;
  auto* base = static_cast<char*>(g_map->addr);
  std::vector<sealfs_range> ranges(kRecords);
  size_t offset = 0;
  char value = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < kRecords; ++i) {
      char* p = base + offset + i * 4096 + 40;
      std::memset(p, ++value, kRecord);
      ranges[i] = {p, kRecord};
    }
    if (sealfs_persist_ranges(g_map, ranges.data(), ranges.size()) != 0) std::abort();
    offset = (offset + kRecords * 4096) % (kMapSize - (kRecords + 1) * 4096);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRecords * kRecord));
}

BENCHMARK(BM_StorePersist)->Arg(64)->Arg(4096)->Arg(60 << 10);
BENCHMARK(BM_StorePersistRanges);

}  // namespace

int main(int argc, char** argv) {
  make_map();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
