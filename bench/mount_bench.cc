// Mount cost on a big region (issue 8, item 5): how long Filesystem::mount
// takes on a populated 16 GiB region, and how much of it the mount-time
// cross-checks (block bitmap against every referent, link counts against
// names) add. Their own times come from the info-level log lines of
// mount_checks.cc, printed on stderr.
//
//   mount_bench PATH [FILES] [BIG_FILES] [BIG_FILE_MIB]
//
// PATH is created as a sparse file (on /dev/shm the region is DRAM; it is
// mounted with emulate_pmem). FILES small files of one block each go in
// directories of 1000; BIG_FILES files are written one block at a time in
// turn, so each is made of one-block extents (a worst case for the extent
// walk: BIG_FILE_MIB * 256 extents per file). Keep BIG_FILE_MIB small: every
// write that adds an extent rewrites and journals the file's whole overflow
// chain, so populating costs grow with the square of the extent count.
// Defaults: 100000 files, 4 files of 8 MiB.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "media/formatter.h"
#include "media/region_pmem2.h"
#include "meta/filesystem.h"
#include "sealfs/format.h"
#include "util/log.h"

namespace sealfs {
namespace {

constexpr uint64_t kRegionBytes = 16ull << 30;

void die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "mount_bench: %s: %s\n", what.c_str(), s.to_string().c_str());
  std::exit(1);
}

std::unique_ptr<Region> open_region(const std::string& path) {
  RegionOptions options;
  options.emulate_pmem = true;
  auto region = RegionPmem2::open(path, options);
  if (!region.is_ok()) die("open " + path, region.status());
  return std::move(region).value();
}

void populate(const std::string& path, int files, int big_files, int big_mib) {
  ::unlink(path.c_str());
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(kRegionBytes)) != 0) {
    die("create " + path, Status::from_errno(errno, path));
  }
  ::close(fd);
  auto region = open_region(path);
  FormatOptions fo;
  fo.metadata_zeroed = true;
  auto sb = Formatter::format(*region, fo);
  if (!sb.is_ok()) die("format", sb.status());
  auto fs = Filesystem::mount(std::move(region), {});
  if (!fs.is_ok()) die("mount", fs.status());
  Cred root{0, 0, 022, 0};
  std::string block(format::kBlockSize, 'b');
  Ino dir = 0;
  for (int i = 0; i < files; ++i) {
    if (i % 1000 == 0) {
      auto d = (*fs)->mkdir(format::kRootIno, "d" + std::to_string(i / 1000), 0755, root);
      if (!d.is_ok()) die("mkdir", d.status());
      dir = d->ino;
    }
    auto f = (*fs)->create(dir, "f" + std::to_string(i), 0644, O_RDWR, root);
    if (!f.is_ok()) die("create", f.status());
    auto n = (*fs)->write(f->ino, 0, block.data(), block.size(), false);
    if (!n.is_ok()) die("write", n.status());
    (*fs)->release(f->ino);
    (*fs)->forget(f->ino, 1);
  }
  std::vector<Ino> big;
  for (int i = 0; i < big_files; ++i) {
    auto f = (*fs)->create(format::kRootIno, "big" + std::to_string(i), 0644, O_RDWR, root);
    if (!f.is_ok()) die("create", f.status());
    big.push_back(f->ino);
  }
  const uint64_t blocks = uint64_t(big_mib) << 8;
  for (uint64_t b = 0; b < blocks; ++b) {
    for (Ino ino : big) {
      auto n = (*fs)->write(ino, b * format::kBlockSize, block.data(), block.size(), false);
      if (!n.is_ok()) die("write big", n.status());
    }
  }
  for (Ino ino : big) {
    (*fs)->release(ino);
    (*fs)->forget(ino, 1);
  }
  Status s = (*fs)->unmount();
  if (!s.is_ok()) die("unmount", s);
}

double mount_ms(const std::string& path) {
  auto region = open_region(path);
  auto start = std::chrono::steady_clock::now();
  auto fs = Filesystem::mount(std::move(region), {});
  auto end = std::chrono::steady_clock::now();
  if (!fs.is_ok()) die("mount", fs.status());
  Status s = (*fs)->unmount();
  if (!s.is_ok()) die("unmount", s);
  return std::chrono::duration<double, std::milli>(end - start).count();
}

}  // namespace
}  // namespace sealfs

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: mount_bench PATH [FILES] [BIG_FILES] [BIG_FILE_MIB]\n");
    return 2;
  }
  const std::string path = argv[1];
  const int files = argc > 2 ? std::atoi(argv[2]) : 100000;
  const int big_files = argc > 3 ? std::atoi(argv[3]) : 4;
  const int big_mib = argc > 4 ? std::atoi(argv[4]) : 8;
  auto t0 = std::chrono::steady_clock::now();
  sealfs::populate(path, files, big_files, big_mib);
  std::printf("populated %s: %d files, %d files of %d MiB in one-block extents, %.1f s\n",
              path.c_str(), files, big_files, big_mib,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  sealfs::set_log_level("info");
  std::vector<double> times;
  for (int i = 0; i < 5; ++i) times.push_back(sealfs::mount_ms(path));
  std::sort(times.begin(), times.end());
  std::printf("mount: median %.1f ms, min %.1f ms, max %.1f ms (5 mounts)\n", times[2], times[0],
              times[4]);
  ::unlink(path.c_str());
  return 0;
}
