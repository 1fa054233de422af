// mkfs cost: Formatter::format of a fresh 16 GiB sparse file through
// RegionPmem2, on a disk-backed filesystem (/tmp: page granularity, msync) and
// on tmpfs (/dev/shm). Only metadata is written, so the time should not grow
// with the data area; the disk case also reports the bytes the file ends up
// allocating.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "media/formatter.h"
#include "media/region_pmem2.h"
#include "util/log.h"

namespace sealfs {
namespace {

constexpr uint64_t kRegionBytes = 16ull << 30;

bool make_sparse(const std::string& path) {
  ::unlink(path.c_str());
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = ::ftruncate(fd, static_cast<off_t>(kRegionBytes)) == 0;
  ::close(fd);
  return ok;
}

void BM_Mkfs16GiB(benchmark::State& state, const char* dir, bool metadata_zeroed) {
  set_log_level("error");
  const std::string path = std::string(dir) + "/sealfs_mkfs_bench.img";
  uint64_t allocated = 0;
  for (auto _ : state) {
    state.PauseTiming();
    if (!make_sparse(path)) {
      state.SkipWithError(("cannot create " + path).c_str());
      break;
    }
    state.ResumeTiming();
    // Open (map) plus format: what mkfs.sealfs spends beyond argument parsing.
    auto region = RegionPmem2::open(path, RegionOptions{});
    if (!region.is_ok()) {
      state.SkipWithError(region.status().to_string().c_str());
      break;
    }
    FormatOptions options;
    options.metadata_zeroed = metadata_zeroed;
    auto sb = Formatter::format(**region, options);
    if (!sb.is_ok()) {
      state.SkipWithError(sb.status().to_string().c_str());
      break;
    }
    region->reset();  // unmap inside the timed part: munmap of dirty pages counts
    state.PauseTiming();
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) allocated = static_cast<uint64_t>(st.st_blocks) * 512;
    ::unlink(path.c_str());
    state.ResumeTiming();
  }
  state.counters["allocated_MiB"] = static_cast<double>(allocated) / (1 << 20);
}

// "fresh": the file was just created sparse, so the formatter is told the
// metadata reads as zero (what mkfs.sealfs arranges by punching holes).
// "scan": the generic path, which reads the inode table and bitmap to zero
// only what is not zero yet.
BENCHMARK_CAPTURE(BM_Mkfs16GiB, tmp_disk_fresh, "/tmp", true)
    ->Unit(benchmark::kMillisecond)->Iterations(5)->UseRealTime();
BENCHMARK_CAPTURE(BM_Mkfs16GiB, dev_shm_fresh, "/dev/shm", true)
    ->Unit(benchmark::kMillisecond)->Iterations(5)->UseRealTime();
BENCHMARK_CAPTURE(BM_Mkfs16GiB, tmp_disk_scan, "/tmp", false)
    ->Unit(benchmark::kMillisecond)->Iterations(5)->UseRealTime();
BENCHMARK_CAPTURE(BM_Mkfs16GiB, dev_shm_scan, "/dev/shm", false)
    ->Unit(benchmark::kMillisecond)->Iterations(5)->UseRealTime();

}  // namespace
}  // namespace sealfs

BENCHMARK_MAIN();
