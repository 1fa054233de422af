// (5) The same workloads through read(2)/write(2) on the FUSE path, for
// contrast. O_DIRECT throughout: every request reaches the daemon (a leased
// inode is opened direct_io by the daemon anyway), so the kernel's page
// cache does not stand in for sealfs.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <vector>

#include "mem_kernels.h"
#include "phases.h"

namespace dbench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kRequest = 1 << 20;

char* aligned_buffer(size_t bytes, unsigned char seed) {
  void* p = nullptr;
  if (posix_memalign(&p, kBlock, bytes) != 0) die("posix_memalign");
  auto* c = static_cast<unsigned char*>(p);
  // Not zeros: a filesystem must not get to treat the data as holes.
  for (size_t i = 0; i < bytes; ++i) c[i] = static_cast<unsigned char>(i * 131 + seed);
  return static_cast<char*>(p);
}

int open_or_die(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) die_errno("open " + path);
  return fd;
}

// One sequential pass of kRequest-sized pwrite or pread; seconds.
double sequential_pass(int fd, char* buf, size_t bytes, bool write) {
  auto t0 = Clock::now();
  for (size_t off = 0; off < bytes; off += kRequest) {
    ssize_t n = write ? pwrite(fd, buf, kRequest, static_cast<off_t>(off))
                      : pread(fd, buf, kRequest, static_cast<off_t>(off));
    if (n != static_cast<ssize_t>(kRequest)) die_errno(write ? "pwrite" : "pread");
  }
  if (write && fsync(fd) != 0) die_errno("fsync");
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

void fill_file(const std::string& path, size_t bytes) {
  char* buf = aligned_buffer(kRequest, 7);
  int fd = open_or_die(path, O_CREAT | O_TRUNC | O_RDWR | O_DIRECT);
  double s = sequential_pass(fd, buf, bytes, true);
  close(fd);
  free(buf);
  report("seq_write_allocating_gibs", "fuse", static_cast<double>(bytes) / (1ull << 30) / s);
}

void run_fuse_path(const Config& config, const std::string& path) {
  const size_t bytes = config.data_bytes;
  char* buf = aligned_buffer(kRequest, 11);
  int fd = open_or_die(path, O_RDWR | O_DIRECT);
  const double gib = static_cast<double>(bytes) / (1ull << 30);

  std::vector<double> writes, reads;
  for (int rep = 0; rep < config.fuse_reps; ++rep) {
    writes.push_back(gib / sequential_pass(fd, buf, bytes, true));
    reads.push_back(gib / sequential_pass(fd, buf, bytes, false));
  }
  report("seq_read_gibs", "fuse", median(reads));
  report("seq_write_gibs", "fuse", median(writes));

  std::mt19937_64 rng(config.seed);
  std::uniform_int_distribution<uint64_t> pick(0, bytes / kBlock - 1);
  Samples loads, stores;
  loads.reserve(config.fuse_random_ops);
  stores.reserve(config.fuse_random_ops);
  for (size_t i = 0; i < config.fuse_random_ops; ++i) {
    const auto off = static_cast<off_t>(pick(rng) * kBlock);
    uint64_t t0 = ticks_begin();
    if (pread(fd, buf, kBlock, off) != static_cast<ssize_t>(kBlock)) die_errno("pread 4k");
    loads.add(ticks_end() - t0);
  }
  for (size_t i = 0; i < config.fuse_random_ops; ++i) {
    const auto off = static_cast<off_t>(pick(rng) * kBlock);
    uint64_t t0 = ticks_begin();
    if (pwrite(fd, buf, kBlock, off) != static_cast<ssize_t>(kBlock)) die_errno("pwrite 4k");
    stores.add(ticks_end() - t0);
  }
  report("rand4k_load_median_ns", "fuse", loads.median_ns());
  report("rand4k_load_p99_ns", "fuse", loads.p99_ns());
  report("rand4k_load_mean_ns", "fuse", loads.mean_ns());
  report("rand4k_store_median_ns", "fuse", stores.median_ns());
  report("rand4k_store_p99_ns", "fuse", stores.p99_ns());
  report("rand4k_store_mean_ns", "fuse", stores.mean_ns());
  close(fd);
  free(buf);
}

}  // namespace dbench
