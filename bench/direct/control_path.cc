// (3) sealfs_map latency for files of 1, 16 and 256 extents.
//
// Fragmented files are built by appending equal chunks alternately to the
// file and to a spacer file (fallocate, then an O_DIRECT write, so each
// append reaches the allocator at once and in order): the allocator grows each file next to its last extent, which
// the other file has just taken. The extent count is then read back through
// a layout lease, not assumed.
//
// The peer is the client-side half of the same work without the daemon: a
// raw mmap of the region file laid out exactly like libsealfs lays out a
// direct mapping (reservation + one MAP_FIXED mmap per extent), and munmap.
// The difference between the two is the protocol: the request with the
// descriptor, the daemon's checks, the pin, the answer. The two sides take
// turns map by map.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <vector>

#include "mem_kernels.h"
#include "phases.h"

namespace dbench {
namespace {

constexpr size_t kFileBytes = 16ull << 20;

int open_or_die(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) die_errno("open " + path);
  return fd;
}

// One fallocate per chunk, then the data: the kernel may split a large
// O_DIRECT write into requests the daemon's threads serve out of order, so
// the allocation is made by one request and the writes only fill it.
void append_chunk(int fd, const char* buf, size_t chunk, size_t index) {
  if (fallocate(fd, 0, static_cast<off_t>(chunk * index), static_cast<off_t>(chunk)) != 0) {
    die_errno("fallocate (building a fragmented file)");
  }
  if (pwrite(fd, buf, chunk, static_cast<off_t>(chunk * index)) != static_cast<ssize_t>(chunk)) {
    die_errno("pwrite (building a fragmented file)");
  }
}

void build_fragmented(const std::string& path, size_t extents) {
  const size_t chunk = kFileBytes / extents;
  void* mem = nullptr;
  if (posix_memalign(&mem, kBlock, chunk) != 0) die("posix_memalign");
  std::memset(mem, 0x5a, chunk);
  const char* buf = static_cast<const char*>(mem);
  int file = open_or_die(path, O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT);
  int spacer = open_or_die(path + ".spacer", O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT);
  for (size_t i = 0; i < extents; ++i) {
    append_chunk(file, buf, chunk, i);
    if (extents > 1) append_chunk(spacer, buf, chunk, i);
  }
  if (fsync(file) != 0 || fsync(spacer) != 0) die_errno("fsync");
  close(spacer);
  close(file);
  free(mem);
}

std::vector<sealfs_extent> layout_of(int fd, size_t length) {
  sealfs_layout* layout = nullptr;
  if (int r = sealfs_layout_lease(fd, 0, length, 0, &layout); r != 0) die_sealfs("sealfs_layout_lease", r);
  std::vector<sealfs_extent> extents(sealfs_layout_extents(layout, nullptr, 0));
  sealfs_layout_extents(layout, extents.data(), extents.size());
  if (int r = sealfs_layout_release(layout); r != 0) die_sealfs("sealfs_layout_release", r);
  return extents;
}

void report_us(const std::string& key, const std::string& side, Samples& s) {
  report(key + "_median_us", side, s.median_ns() / 1000);
  report(key + "_p99_us", side, s.p99_ns() / 1000);
}

void measure_file(const Config& config, const std::string& path, size_t wanted, int region_fd) {
  build_fragmented(path, wanted);
  int fd = open_or_die(path, O_RDWR);
  const std::vector<sealfs_extent> extents = layout_of(fd, kFileBytes);
  const std::string key = "e" + std::to_string(wanted);
  report("extents_" + key, "sealfs", static_cast<double>(extents.size()));
  if (extents.size() != wanted) {
    note("%s: asked for %zu extents, the layout lease shows %zu", path.c_str(), wanted, extents.size());
  }

  const int warmup = 50;
  Samples map, map_unmap, raw_map, raw_map_unmap;
  // Whether libsealfs placed its mappings on 2 MiB boundaries: the raw
  // peer reserves the same way. Learnt from one map before the timed ones.
  bool align_2m = true;
  {
    struct sealfs_map* m = nullptr;
    if (int r = sealfs_map(fd, 0, kFileBytes, PROT_READ | PROT_WRITE, 0, &m); r != 0) {
      die_sealfs("sealfs_map " + path, r);
    }
    align_2m = on_2m_boundary(sealfs_map_addr(m));
    if (int r = sealfs_unmap(m); r != 0) die_sealfs("sealfs_unmap", r);
  }
  // The sides take turns map by map, so that a change in the machine's
  // load during the run weighs on both alike.
  for (int i = -warmup; i < config.map_iterations; ++i) {
    struct sealfs_map* m = nullptr;
    uint64_t t0 = ticks_begin();
    int r = sealfs_map(fd, 0, kFileBytes, PROT_READ | PROT_WRITE, 0, &m);
    uint64_t t1 = ticks_end();
    if (r != 0) die_sealfs("sealfs_map " + path, r);
    if ((r = sealfs_unmap(m)) != 0) die_sealfs("sealfs_unmap", r);
    uint64_t t2 = ticks_end();
    if (i >= 0) {
      map.add(t1 - t0);
      map_unmap.add(t2 - t0);
    }
    t0 = ticks_begin();
    char* p = map_raw(region_fd, extents.data(), extents.size(), kFileBytes, align_2m);
    t1 = ticks_end();
    if (p == nullptr) die_errno("mmap of the region file");
    unmap_raw(p, kFileBytes);
    t2 = ticks_end();
    if (i >= 0) {
      raw_map.add(t1 - t0);
      raw_map_unmap.add(t2 - t0);
    }
  }
  report_us("map_" + key, "sealfs", map);
  report_us("map_unmap_" + key, "sealfs", map_unmap);
  report_us("map_" + key, "raw", raw_map);
  report_us("map_unmap_" + key, "raw", raw_map_unmap);
  close(fd);
}

}  // namespace

void run_map_latency(const Config& config) {
  int region_fd = open_or_die(config.region, O_RDWR);
  for (size_t extents : {1, 16, 256}) {
    measure_file(config, config.mount + "/frag" + std::to_string(extents), extents, region_fd);
  }
  close(region_fd);

  // One part of every sealfs_map: finding the control socket, a FUSE
  // getxattr round trip to the daemon.
  int fd = open_or_die(config.mount + "/frag1", O_RDONLY);
  char buf[4096];
  Samples xattr;
  for (int i = 0; i < config.map_iterations; ++i) {
    uint64_t t0 = ticks_begin();
    ssize_t n = fgetxattr(fd, "user.sealfs.control", buf, sizeof buf);
    xattr.add(ticks_end() - t0);
    if (n <= 0) die_errno("fgetxattr user.sealfs.control");
  }
  report_us("control_xattr", "sealfs", xattr);
  close(fd);
}

}  // namespace dbench
