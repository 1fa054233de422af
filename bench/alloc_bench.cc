// Allocator benchmarks: alloc+free pairs, with and without a commit per
// pair, and open() of a 16 GiB data area (the bitmap scan).
//
// The open benchmark runs on a sparse anonymous mapping (untouched pages read
// as zeros and cost nothing), so 16 GiB need no 16 GiB of memory.
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "alloc/allocator.h"
#include "media/journal.h"
#include "media/region.h"
#include "sealfs/format.h"

namespace sealfs {
namespace {

constexpr uint64_t kBlock = format::kBlockSize;

// A Region over anonymous memory, persistence calls are no-ops: the
// benchmark measures the allocator, not the media.
class SparseRegion final : public Region {
 public:
  explicit SparseRegion(uint64_t size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) std::abort();
    base_ = static_cast<std::byte*>(p);
    size_ = size;
    granularity_ = Granularity::kCacheLine;
    description_ = "sparse anonymous memory";
  }
  ~SparseRegion() override { munmap(base_, size_); }
  void flush(const void*, size_t) override {}
  void drain() override {}
  void copy_flush(RegionWriteKey, void* dst, const void* src, size_t len) override {
    std::memcpy(dst, src, len);
  }
  void zero_flush(RegionWriteKey, void* dst, size_t len) override { std::memset(dst, 0, len); }
  std::byte* bytes() { return base_; }
};

struct Setup {
  std::unique_ptr<SparseRegion> region;
  std::unique_ptr<Journal> journal;
  AllocatorArea area;
};

// Journal at block 1, bitmap, holder table, then the data area aligned to
// 2 MiB. The zero pages already are an all-free bitmap and an empty table.
Setup make_setup(uint64_t data_blocks) {
  Setup s;
  JournalArea journal_area{1, 1024};
  s.area.bitmap_start = 1 + journal_area.blocks;
  s.area.bitmap_blocks = (data_blocks + kBlock * 8 - 1) / (kBlock * 8);
  s.area.holder_start = s.area.bitmap_start + s.area.bitmap_blocks;
  s.area.holder_blocks = 4;
  s.area.align_blocks = 512;
  s.area.data_start = (s.area.holder_start + s.area.holder_blocks + 511) / 512 * 512;
  s.area.data_blocks = data_blocks;
  s.region = std::make_unique<SparseRegion>((s.area.data_start + data_blocks + 1) * kBlock);
  if (!Journal::format(*s.region, journal_area).is_ok()) std::abort();
  auto j = Journal::open(*s.region, journal_area);
  if (!j.is_ok()) std::abort();
  s.journal = std::move(j).value();
  return s;
}

bool always_alive(const Holder&) { return true; }

// Marks random runs allocated (log-uniform lengths, mean run ~64 blocks).
void age_bitmap(Setup& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::byte* bitmap = s.region->bytes() + s.area.bitmap_start * kBlock;
  uint64_t pos = 0;
  bool allocated = false;
  while (pos < s.area.data_blocks) {
    double x = std::uniform_real_distribution<double>(0.0, std::log(512.0))(rng);
    uint64_t run = std::min<uint64_t>(s.area.data_blocks - pos, 1 + static_cast<uint64_t>(std::exp(x)));
    if (allocated) {
      for (uint64_t b = pos; b < pos + run; ++b) {
        bitmap[b / 8] |= std::byte{static_cast<uint8_t>(1u << (b % 8))};
      }
    }
    pos += run;
    allocated = !allocated;
  }
}

// A 1 GiB area, about half of it taken by scattered runs, so the indexes
// hold some 1.6k free extents.
std::unique_ptr<Allocator> open_aged(Setup& s) {
  age_bitmap(s, 7);
  auto a = Allocator::open(*s.region, *s.journal, s.area, always_alive);
  if (!a.is_ok()) std::abort();
  return std::move(a).value();
}

void BM_AllocFreeNoCommit(benchmark::State& state) {
  Setup s = make_setup(262144);
  auto alloc = open_aged(s);
  const auto count = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    Transaction txn = s.journal->begin();
    auto e = alloc->allocate(txn, count);
    if (!e.is_ok()) std::abort();
    alloc->free(txn, *e);
    benchmark::DoNotOptimize(e);
    // Dropped: the allocation returns on abort, the free is forgotten.
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["extents"] = static_cast<double>(alloc->free_extents().size());
}
BENCHMARK(BM_AllocFreeNoCommit)->Arg(1)->Arg(512);

void BM_AllocFreeCommitEach(benchmark::State& state) {
  Setup s = make_setup(262144);
  auto alloc = open_aged(s);
  const auto count = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    Transaction a = s.journal->begin();
    auto e = alloc->allocate(a, count);
    if (!e.is_ok()) std::abort();
    if (!s.journal->commit(std::move(a)).is_ok()) std::abort();
    Transaction f = s.journal->begin();
    alloc->free(f, *e);
    if (!s.journal->commit(std::move(f)).is_ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AllocFreeCommitEach)->Arg(1)->Arg(512);

// Open of a 16 GiB data area: 0 = empty bitmap, 1 = full, 2 = aged (runs of
// 1..512 blocks, about 25k free extents).
void BM_Open16GiB(benchmark::State& state) {
  const uint64_t data_blocks = (16ull << 30) / kBlock;
  Setup s = make_setup(data_blocks);
  std::byte* bitmap = s.region->bytes() + s.area.bitmap_start * kBlock;
  if (state.range(0) == 1) std::memset(bitmap, 0xff, data_blocks / 8);
  if (state.range(0) == 2) age_bitmap(s, 11);
  for (auto _ : state) {
    auto a = Allocator::open(*s.region, *s.journal, s.area, always_alive);
    if (!a.is_ok()) std::abort();
    benchmark::DoNotOptimize(a);
  }
  auto a = Allocator::open(*s.region, *s.journal, s.area, always_alive);
  if (!a.is_ok()) std::abort();
  state.counters["free_extents"] = static_cast<double>((*a)->free_extents().size());
}
BENCHMARK(BM_Open16GiB)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sealfs

BENCHMARK_MAIN();
