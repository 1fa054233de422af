// Region persistence costs: emulated pmem (clwb + sfence on a tmpfs mapping)
// against the page-granularity path (msync) on the same tmpfs, so the two
// rows differ only in the persistence primitive.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "media/region_pmem2.h"
#include "util/log.h"

namespace sealfs {
// Benchmarks write the region directly, as the unit tests do.
class RegionTestAccess {
 public:
  static RegionWriteKey key() { return {}; }
};

namespace {

constexpr uint64_t kRegionSize = 64ull << 20;

struct Regions {
  std::string dir;
  std::unique_ptr<RegionPmem2> emulated;
  std::unique_ptr<RegionPmem2> msync;
};

Regions* g_regions = nullptr;

std::unique_ptr<RegionPmem2> make_region(const std::string& path, bool emulate) {
  int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
  if (fd < 0 || ::ftruncate(fd, kRegionSize) != 0) std::abort();
  ::close(fd);
  RegionOptions options;
  options.emulate_pmem = emulate;
  auto r = RegionPmem2::open(path, options);
  if (!r.is_ok()) {
    std::fprintf(stderr, "%s\n", r.status().to_string().c_str());
    std::abort();
  }
  return std::move(r).value();
}

RegionPmem2& region(bool emulated) {
  return emulated ? *g_regions->emulated : *g_regions->msync;
}

// Store to every line of the range, then persist it: the cost a journal
// commit pays per record.
void BM_StorePersist(benchmark::State& state, bool emulated) {
  RegionPmem2& r = region(emulated);
  auto key = RegionTestAccess::key();
  size_t len = static_cast<size_t>(state.range(0));
  uint64_t offset = 0;
  uint8_t value = 0;
  for (auto _ : state) {
    std::byte* p = r.writable(key) + offset;
    std::memset(p, ++value, len);
    r.persist(p, len);
    offset = (offset + 4096) % kRegionSize;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * len));
}

void BM_CopyFlush(benchmark::State& state, bool emulated) {
  RegionPmem2& r = region(emulated);
  auto key = RegionTestAccess::key();
  size_t len = static_cast<size_t>(state.range(0));
  std::vector<std::byte> src(len, std::byte{0x5a});
  uint64_t offset = 0;
  for (auto _ : state) {
    r.copy_flush(key, r.writable(key) + offset, src.data(), len);
    r.drain();
    offset = (offset + len) % kRegionSize;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * len));
}

BENCHMARK_CAPTURE(BM_StorePersist, emulated_clwb, true)->Arg(64)->Arg(4096);
BENCHMARK_CAPTURE(BM_StorePersist, page_msync, false)->Arg(64)->Arg(4096);
BENCHMARK_CAPTURE(BM_CopyFlush, emulated_clwb, true)->Arg(1 << 20);
BENCHMARK_CAPTURE(BM_CopyFlush, page_msync, false)->Arg(1 << 20);

}  // namespace
}  // namespace sealfs

int main(int argc, char** argv) {
  // The open-time warnings (emulated / not DAX) are the point of this bench,
  // not news: keep the output to benchmark rows.
  sealfs::set_log_level("error");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  std::string tmpl = "/dev/shm/sealfs-region-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return 1;
  sealfs::Regions regions;
  regions.dir = tmpl;
  regions.emulated = sealfs::make_region(tmpl + "/emulated.img", true);
  regions.msync = sealfs::make_region(tmpl + "/msync.img", false);
  sealfs::g_regions = &regions;

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  regions.emulated.reset();
  regions.msync.reset();
  std::error_code ec;
  std::filesystem::remove_all(regions.dir, ec);
  return 0;
}
