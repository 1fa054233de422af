// Fuzz target: a mutated sealfs image (image_patch.h) goes through what a
// damaged region meets in practice:
//   1. the daemon's mount (superblock verify, journal recovery, index
//      rebuild, orphan cleanup), then reads of the whole tree, a few
//      changes, and unmount, when the mount accepts the image;
//   2. fsck check-only, which must not write;
//   3. fsck repair; when it reports the region clean or corrected, a second
//      check must find it clean.
// Any crash, sanitizer report or broken promise aborts (a finding).
#include <fcntl.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fsck/checker.h"
#include "image_patch.h"
#include "memory_region.h"
#include "meta/filesystem.h"
#include "util/log.h"

namespace sealfs::fuzz {
namespace {

[[noreturn]] void broken(const char* promise, const std::string& detail) {
  std::fprintf(stderr, "image_fuzz: broken promise: %s: %s\n", promise, detail.c_str());
  std::abort();
}

bool holder_dead(uint32_t, uint64_t) { return false; }

// Reads everything reachable from the root, depth first, bounded so that a
// directory cycle on a damaged image cannot run forever.
void walk(Filesystem& fs) {
  std::vector<Ino> dirs{format::kRootIno};
  size_t visited = 0;
  while (!dirs.empty() && visited < 512) {
    const Ino dir = dirs.back();
    dirs.pop_back();
    std::vector<std::string> names;
    (void)fs.readdir(dir, 0, [&](const DirEntry& e) {
      if (e.name != "." && e.name != "..") names.emplace_back(e.name);
      return names.size() < 256;
    });
    for (const std::string& name : names) {
      ++visited;
      auto attr = fs.lookup(dir, name);
      if (!attr.is_ok()) continue;
      const Ino ino = attr->ino;
      const uint32_t type = attr->mode & S_IFMT;
      if (type == S_IFDIR) {
        dirs.push_back(ino);
      } else if (type == S_IFLNK) {
        (void)fs.readlink(ino);
      } else if (type == S_IFREG && fs.open(ino, O_RDONLY).is_ok()) {
        std::vector<char> buf(16384);
        (void)fs.read_copy(ino, 0, buf.data(), buf.size());
        (void)fs.read_copy(ino, attr->size > 4096 ? attr->size - 4096 : 0, buf.data(), 4096);
        (void)fs.lseek(ino, 0, SEEK_HOLE);
        (void)fs.file_layout(ino);
        fs.release(ino);
      }
      if (auto xattrs = fs.listxattr(ino); xattrs.is_ok()) {
        for (const std::string& x : *xattrs) (void)fs.getxattr(ino, x);
      }
      fs.forget(ino, 1);
    }
  }
}

// A few changes that allocate and free blocks and inodes: on a damaged
// image they meet the bitmap, the free-inode scan and directories as the
// mount rebuilt them.
void change(Filesystem& fs) {
  const Cred cred{0, 0, 022, 1};
  const std::string data(9000, 'w');
  if (auto f = fs.create(format::kRootIno, "fuzz-new", 0644, O_RDWR, cred); f.is_ok()) {
    (void)fs.write(f->ino, 0, data.data(), data.size(), false);
    (void)fs.fallocate(f->ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096);
    fs.release(f->ino);
    fs.forget(f->ino, 1);
    (void)fs.unlink(format::kRootIno, "fuzz-new");
  }
  if (auto d = fs.mkdir(format::kRootIno, "fuzz-dir", 0755, cred); d.is_ok()) {
    fs.forget(d->ino, 1);
    (void)fs.rename(format::kRootIno, "fuzz-dir", format::kRootIno, "fuzz-dir2", 0, cred);
    (void)fs.rmdir(format::kRootIno, "fuzz-dir2");
  }
}

void mount_and_use(std::vector<std::byte>& image) {
  MountOptions options;
  options.holder_alive = holder_dead;
  auto fs = Filesystem::mount(std::make_unique<MemoryRegion>(image), options);
  if (!fs.is_ok()) return;  // refused: a valid answer to a damaged image
  walk(**fs);
  change(**fs);
  (void)(*fs)->unmount();
}

int check_or_repair(std::vector<std::byte>& image, bool repair) {
  MemoryRegion region(image);
  fsck::FsckOptions options;
  options.repair = repair;
  options.target = "fuzz";
  options.now_ns = 1'700'000'000'000'000'000ull;
  options.holder_alive = holder_dead;
  return fsck::run_fsck(region, options).exit_code;
}

void run_one(const uint8_t* data, size_t size) {
  // One buffer per stage, kept across inputs: assign() reuses them, so an
  // execution does not fault in fresh pages for each copy.
  static std::vector<std::byte> image, mounted, checked, repaired;
  (void)mutate(data, size, image);
  mounted.assign(image.begin(), image.end());
  mount_and_use(mounted);

  checked.assign(image.begin(), image.end());
  const int check = check_or_repair(checked, false);
  if (check != fsck::kExitClean && check != fsck::kExitUncorrected &&
      check != fsck::kExitOperational) {
    broken("fsck -n exit code", std::to_string(check));
  }
  if (checked != image) broken("fsck -n wrote to the region", "");

  repaired.assign(image.begin(), image.end());
  const int fix = check_or_repair(repaired, true);
  if (fix == fsck::kExitClean || fix == fsck::kExitCorrected) {
    const int recheck = check_or_repair(repaired, false);
    if (recheck != fsck::kExitClean) {
      broken("fsck -y said clean or corrected, a second check did not",
             std::to_string(fix) + " then " + std::to_string(recheck));
    }
  } else if (fix != fsck::kExitUncorrected && fix != fsck::kExitOperational) {
    broken("fsck -y exit code", std::to_string(fix));
  }
}

}  // namespace
}  // namespace sealfs::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sealfs::set_log_level("off");
  sealfs::fuzz::base_images();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sealfs::fuzz::run_one(data, size);
  return 0;
}
