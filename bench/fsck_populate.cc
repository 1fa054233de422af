// Makes a populated region for measuring fsck.sealfs at scale (issue 9):
//
//   fsck_populate PATH SIZE_GIB FILES
//
// PATH is created as a sparse file of SIZE_GIB GiB, formatted, and filled
// through the meta layer (no FUSE) with FILES small files of one written
// block each, in directories of 1000; it is left in place for
//
//   /usr/bin/time -v build/fsck/fsck.sealfs -n PATH
//
// (docs/fsck.md, "Scale", has the figures). Region files in /dev/shm are
// DRAM; elsewhere they are on disk (mounted here with emulate_pmem, so the
// population costs cache flushes, not msync: it is not durable, which a
// measurement does not need).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "media/formatter.h"
#include "media/region_pmem2.h"
#include "meta/filesystem.h"
#include "sealfs/format.h"

namespace sealfs {
namespace {

void die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "fsck_populate: %s: %s\n", what.c_str(), s.to_string().c_str());
  std::exit(1);
}

void populate(const std::string& path, uint64_t bytes, long files) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    die("create " + path, Status::from_errno(errno, path));
  }
  ::close(fd);
  RegionOptions options;
  options.emulate_pmem = true;
  auto region = RegionPmem2::open(path, options);
  if (!region.is_ok()) die("open " + path, region.status());
  FormatOptions fo;
  fo.metadata_zeroed = true;  // a new sparse file reads as zero
  auto sb = Formatter::format(**region, fo);
  if (!sb.is_ok()) die("format", sb.status());
  auto fs = Filesystem::mount(std::move(region).value(), {});
  if (!fs.is_ok()) die("mount", fs.status());
  Cred root{0, 0, 022, 0};
  std::string block(format::kBlockSize, 'b');
  Ino dir = 0;
  for (long i = 0; i < files; ++i) {
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
  Status s = (*fs)->unmount();
  if (!s.is_ok()) die("unmount", s);
}

}  // namespace
}  // namespace sealfs

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: fsck_populate PATH SIZE_GIB FILES\n");
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  sealfs::populate(argv[1], std::strtoull(argv[2], nullptr, 10) << 30,
                   std::strtol(argv[3], nullptr, 10));
  std::printf("populated %s: %s files, %.1f s\n", argv[1], argv[3],
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}
