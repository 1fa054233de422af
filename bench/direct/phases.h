// The benchmark's phases; each prints "key side value" lines (bench_util.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <array>
#include <functional>
#include <string>

#include <sealfs/sealfs.h>

namespace dbench {

struct Config {
  std::string mount;         // the sealfs mount point
  std::string region;        // the region file the daemon serves
  size_t data_bytes = 1ull << 30;
  int bandwidth_reps = 21;   // passes per side for each sequential row
  int fuse_reps = 3;         // passes for the FUSE sequential rows
  size_t random_ops = 200000;  // 4 KiB ops per side per repetition
  int random_reps = 5;
  int first_touch_reps = 7;
  size_t fuse_random_ops = 20000;
  int map_iterations = 2000;  // sealfs_map + unmap per file
  int break_iterations = 400;
  uint64_t seed = 0x5ea1f5;
};

// (5) read(2)/write(2) through FUSE on `path`, which fill_file created.
void fill_file(const std::string& path, size_t bytes);
void run_fuse_path(const Config& config, const std::string& path);

// (1) and (2): the same kernels on two mappings, both config.data_bytes
// long, alternating sides between repetitions; results are reported under
// the two side names. The real run is ("direct", a sealfs mapping) against
// ("raw", an mmap of the region file); raw against a second raw mapping of
// the same bytes (an A/A run) shows how far apart two equal sides land.
struct Side {
  const char* name;
  char* base;
};
void run_data_path(const Config& config, Side a, Side b);
// The first pass of ordinary stores over a fresh mapping (page faults),
// config.first_touch_reps times per side, alternating; each factory maps
// config.data_bytes and unmaps what it mapped.
struct MapFactory {
  const char* name;
  std::function<char*()> map;
  std::function<void(char*)> unmap;
};
void run_first_touch(const Config& config, const std::array<MapFactory, 2>& sides);

// (3) sealfs_map latency on files of 1, 16 and 256 extents.
void run_map_latency(const Config& config);

// (4) truncate(2) against a cooperative holder process.
void run_break_round_trip(const Config& config, const char* self_exe);
// The holder process's main (direct_bench holder FILE LENGTH).
int holder_main(const char* path, size_t length);

// Maps extents of the region file into one range the way libsealfs lays
// out a direct mapping (a reservation, 2 MiB-aligned when the region's
// alignment asks for it; one MAP_SHARED|MAP_FIXED mmap per extent; the same
// madvise calls), but without the daemon: the raw peer. `length` is the sum
// of the extents. nullptr on failure (errno set).
char* map_raw(int region_fd, const sealfs_extent* extents, size_t count, size_t length,
              bool align_2m);
// Whether libsealfs placed this mapping on a 2 MiB boundary (it does when
// the region alignment is 2 MiB or more; by chance 1 in 512 otherwise).
bool on_2m_boundary(const void* addr);
void unmap_raw(char* addr, size_t length);

}  // namespace dbench
