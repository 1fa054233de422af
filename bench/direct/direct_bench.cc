// direct_bench: the direct-mapping benchmarks of bench/direct/run.sh, on a
// mounted sealfs (emulate_pmem region file). Prints "key side value" lines
// on stdout for the driver and context lines ("# ...") on stderr.
//
//   direct_bench run MOUNT REGION_FILE [quick]
//   direct_bench holder FILE LENGTH     (the break phase's holder process)
//   direct_bench aa FILE [quick]        only the A/A data-path run, on any
//                                       file of at least the data size
//                                       (no sealfs needed: checks the kernels)
//   direct_bench map|break MOUNT REGION_FILE   one control-path phase alone
//
// Phases, in this order, in one run:
//   FUSE path (5): 1 GiB file written, then read/written with O_DIRECT;
//   data path (1, 2): that file direct-mapped vs a raw mmap of the region,
//     then raw vs raw (A/A: the noise between two equal sides);
//   sealfs_map latency (3) on files of 1, 16 and 256 extents;
//   break round trip (4) with a cooperative holder process.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>
#include <vector>

#include "mem_kernels.h"
#include "phases.h"

namespace dbench {
namespace {

std::vector<sealfs_extent> extents_of(int fd, size_t length) {
  sealfs_layout* layout = nullptr;
  if (int r = sealfs_layout_lease(fd, 0, length, 0, &layout); r != 0) die_sealfs("sealfs_layout_lease", r);
  std::vector<sealfs_extent> extents(sealfs_layout_extents(layout, nullptr, 0));
  sealfs_layout_extents(layout, extents.data(), extents.size());
  if (int r = sealfs_layout_release(layout); r != 0) die_sealfs("sealfs_layout_release", r);
  return extents;
}

// The raw peer: one MAP_SHARED mmap of the region file, as long as the
// direct mapping, over the same bytes when the file is one physical run
// (else over the region from the file's first block on).
char* map_raw_peer(const Config& config, const std::vector<sealfs_extent>& extents, bool align_2m) {
  int region_fd = open(config.region.c_str(), O_RDWR | O_CLOEXEC);
  if (region_fd < 0) die_errno("open " + config.region);
  struct stat st {};
  if (fstat(region_fd, &st) != 0) die_errno("fstat " + config.region);
  bool contiguous = true;
  for (size_t i = 1; i < extents.size(); ++i) {
    contiguous &= extents[i].region_offset == extents[i - 1].region_offset + extents[i - 1].length;
  }
  uint64_t start = extents.front().region_offset;
  const auto region_size = static_cast<uint64_t>(st.st_size);
  if (start + config.data_bytes > region_size) start = (region_size - config.data_bytes) & ~(kBlock - 1);
  static bool told = false;
  if (!std::exchange(told, true)) note("data file: %zu extent(s)%s; raw peer maps region bytes [%llu, +%zu)%s", extents.size(),
       contiguous ? ", one physical run" : "", static_cast<unsigned long long>(start),
       config.data_bytes, contiguous ? " (the same bytes)" : " (not the same bytes)");
  sealfs_extent whole{0, start, config.data_bytes};
  char* raw = map_raw(region_fd, &whole, 1, config.data_bytes, align_2m);
  if (raw == nullptr) die_errno("mmap of the region file");
  close(region_fd);
  return raw;
}

int run(const Config& config, const char* self_exe) {
  if (!kernels_supported()) die("this CPU lacks AVX2, which the memory kernels use");
  calibrate_ticks();
  note("TSC: %.4f ns per tick", ns_per_tick());

  const std::string data_path = config.mount + "/data.bin";
  fill_file(data_path, config.data_bytes);
  run_fuse_path(config, data_path);

  int fd = open(data_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) die_errno("open " + data_path);
  std::vector<struct sealfs_map*> fresh_maps;
  struct sealfs_map* map = nullptr;
  if (int r = sealfs_map(fd, 0, config.data_bytes, PROT_READ | PROT_WRITE, 0, &map); r != 0) {
    die_sealfs("sealfs_map " + data_path, r);
  }
  const std::vector<sealfs_extent> extents = extents_of(fd, config.data_bytes);
  report("data_extents", "sealfs", static_cast<double>(extents.size()));
  const bool align_2m = on_2m_boundary(sealfs_map_addr(map));
  note("direct mapping at %p%s", sealfs_map_addr(map), align_2m ? " (2 MiB-aligned; so is the raw peer)" : "");
  char* raw = map_raw_peer(config, extents, align_2m);
  run_data_path(config, {"direct", static_cast<char*>(sealfs_map_addr(map))}, {"raw", raw});
  unmap_raw(raw, config.data_bytes);
  if (int r = sealfs_unmap(map); r != 0) die_sealfs("sealfs_unmap", r);
  // The A/A run: two fresh raw mappings of the same bytes (fresh, so that
  // both first passes are page faults again).
  char* raw_a = map_raw_peer(config, extents, align_2m);
  char* raw_b = map_raw_peer(config, extents, align_2m);
  run_data_path(config, {"raw_a", raw_a}, {"raw_b", raw_b});
  unmap_raw(raw_a, config.data_bytes);
  unmap_raw(raw_b, config.data_bytes);

  std::array<MapFactory, 2> fresh{
      MapFactory{"direct",
                 [&] {
                   struct sealfs_map* m = nullptr;
                   if (int r = sealfs_map(fd, 0, config.data_bytes, PROT_READ | PROT_WRITE, 0, &m); r != 0) {
                     die_sealfs("sealfs_map " + data_path, r);
                   }
                   fresh_maps.push_back(m);
                   return static_cast<char*>(sealfs_map_addr(m));
                 },
                 [&](char*) {
                   if (int r = sealfs_unmap(fresh_maps.back()); r != 0) die_sealfs("sealfs_unmap", r);
                   fresh_maps.pop_back();
                 }},
      MapFactory{"raw", [&] { return map_raw_peer(config, extents, align_2m); },
                 [&](char* p) { unmap_raw(p, config.data_bytes); }}};
  run_first_touch(config, fresh);
  fresh[0] = MapFactory{"raw_a", fresh[1].map, fresh[1].unmap};
  fresh[1].name = "raw_b";
  run_first_touch(config, fresh);
  close(fd);

  run_map_latency(config);
  run_break_round_trip(config, self_exe);
  return 0;
}

int run_aa_only(const Config& config) {
  if (!kernels_supported()) die("this CPU lacks AVX2, which the memory kernels use");
  calibrate_ticks();
  int fd = open(config.region.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) die_errno("open " + config.region);
  sealfs_extent whole{0, 0, config.data_bytes};
  char* a = map_raw(fd, &whole, 1, config.data_bytes, true);
  char* b = map_raw(fd, &whole, 1, config.data_bytes, true);
  if (a == nullptr || b == nullptr) die_errno("mmap " + config.region);
  close(fd);
  run_data_path(config, {"raw_a", a}, {"raw_b", b});
  unmap_raw(a, config.data_bytes);
  unmap_raw(b, config.data_bytes);
  return 0;
}

void make_quick(Config* config) {
  config->data_bytes = 128ull << 20;
  config->bandwidth_reps = 5;
  config->fuse_reps = 1;
  config->random_ops = 50000;
  config->random_reps = 2;
  config->first_touch_reps = 3;
  config->fuse_random_ops = 5000;
  config->map_iterations = 300;
  config->break_iterations = 200;
}

}  // namespace
}  // namespace dbench

int main(int argc, char** argv) {
  using namespace dbench;
  if (argc == 4 && std::strcmp(argv[1], "holder") == 0) {
    return holder_main(argv[2], std::strtoull(argv[3], nullptr, 10));
  }
  if ((argc == 4 || argc == 5) && std::strcmp(argv[1], "run") == 0) {
    Config config;
    config.mount = argv[2];
    config.region = argv[3];
    if (argc == 5 && std::strcmp(argv[4], "quick") == 0) make_quick(&config);
    // The holder is this program; /proc/self/exe survives a relative argv[0].
    return run(config, "/proc/self/exe");
  }
  // One control-path phase alone, on a mount (for profiling it).
  if (argc == 4 && (std::strcmp(argv[1], "map") == 0 || std::strcmp(argv[1], "break") == 0)) {
    Config config;
    config.mount = argv[2];
    config.region = argv[3];
    calibrate_ticks();
    if (argv[1][0] == 'm') {
      run_map_latency(config);
    } else {
      run_break_round_trip(config, "/proc/self/exe");
    }
    return 0;
  }
  if ((argc == 3 || argc == 4) && std::strcmp(argv[1], "aa") == 0) {
    Config config;
    config.region = argv[2];
    if (argc == 4 && std::strcmp(argv[3], "quick") == 0) make_quick(&config);
    return run_aa_only(config);
  }
  std::fprintf(stderr,
               "usage: direct_bench run MOUNT REGION_FILE [quick]\n"
               "       direct_bench holder FILE LENGTH\n"
               "       direct_bench aa FILE [quick]\n"
               "       direct_bench map|break MOUNT REGION_FILE\n");
  return 2;
}
