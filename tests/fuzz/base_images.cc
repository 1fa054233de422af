#include "base_images.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "media/formatter.h"
#include "media/region_dram.h"
#include "meta/filesystem.h"

namespace sealfs::fuzz {
namespace {

constexpr uint64_t kRegionBytes = 1ull << 20;

// A base image that cannot be built is a broken build, not a finding.
template <typename T>
T must(Result<T> r, const char* what) {
  if (!r.is_ok()) {
    std::fprintf(stderr, "base_images: %s: %s\n", what, r.status().to_string().c_str());
    std::abort();
  }
  return std::move(*r);
}
void must(const Status& s, const char* what) {
  if (!s.is_ok()) {
    std::fprintf(stderr, "base_images: %s: %s\n", what, s.to_string().c_str());
    std::abort();
  }
}

MountOptions mount_options() {
  MountOptions m;
  m.holder_alive = [](uint32_t, uint64_t) { return false; };
  return m;
}

BaseImage describe(const char* name, std::vector<std::byte> bytes, const Geometry& geo) {
  BaseImage b{name, std::move(bytes), geo, {}};
  const uint64_t n = b.bytes.size() / format::kBlockSize;
  for (uint64_t block = 0; block < n; ++block) {
    const std::byte* p = b.bytes.data() + block * format::kBlockSize;
    bool nonzero = false;
    for (size_t i = 0; i < format::kBlockSize && !nonzero; ++i) nonzero = p[i] != std::byte{0};
    // Every metadata block counts, zero or not: a bit set in an empty
    // bitmap block or a slot filled in an empty inode block is a mutation
    // as interesting as one in a used block.
    if (nonzero || block < geo.data_start || block == geo.backup_block()) b.blocks.push_back(block);
  }
  return b;
}

std::vector<BaseImage> build() {
  std::vector<BaseImage> out;
  auto region = RegionDram::create(kRegionBytes);
  FormatOptions fo;
  fo.layout.inode_count = 128;
  fo.layout.journal_bytes = 256 << 10;
  fo.now_ns = 1'700'000'000'000'000'000ull;
  fo.uuid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  fo.label = "fuzz";
  const Geometry geo = must(Formatter::format(*region, fo), "format").geometry;
  out.push_back(describe("empty", region->image(), geo));

  auto fs = must(Filesystem::mount(std::move(region), mount_options()), "mount");
  const Cred cred{1000, 1000, 022, 1};
  const Ino root = format::kRootIno;
  const Ino a = must(fs->mkdir(root, "a", 0755, cred), "mkdir a").ino;
  const Ino b = must(fs->mkdir(a, "b", 0700, cred), "mkdir b").ino;
  const Ino f1 = must(fs->create(root, "f1", 0644, O_RDWR, cred), "create f1").ino;
  const std::string text(6000, 'x');
  must(fs->write(f1, 0, text.data(), text.size(), false), "write f1");
  must(fs->setxattr(f1, "user.color", "blue", 4, 0), "setxattr");
  must(fs->setxattr(f1, "user.long", std::string(300, 'v').data(), 300, 0), "setxattr long");
  // Every other block written: more extents than the inode holds inline.
  const Ino sparse = must(fs->create(b, "sparse", 0600, O_RDWR, cred), "create sparse").ino;
  const std::string block(4096, 'z');
  for (int i = 0; i < 24; i += 2) {
    must(fs->write(sparse, uint64_t(i) * 4096, block.data(), block.size(), false), "write sparse");
  }
  must(fs->symlink(root, "short", "f1", cred), "symlink short");
  must(fs->symlink(a, "long", std::string(200, 'L'), cred), "symlink long");
  must(fs->link(f1, b, "hard"), "link");
  const Ino many = must(fs->mkdir(root, "many", 0755, cred), "mkdir many").ino;
  for (int i = 0; i < 100; ++i) {
    must(fs->mknod(many, "entry-with-a-longish-name-" + std::to_string(i), S_IFREG | 0600, 0, cred), "mknod");
  }
  must(fs->mknod(a, "fifo", S_IFIFO | 0644, 0, cred), "mknod fifo");
  for (Ino ino : {f1, sparse}) fs->release(ino);

  // Changes left in flight for the crashed images: an unlinked file still
  // open (an orphan), a rename, a truncate, a punched hole.
  const Ino open_gone = must(fs->create(a, "gone", 0644, O_RDWR, cred), "create gone").ino;
  must(fs->write(open_gone, 0, text.data(), text.size(), false), "write gone");
  must(fs->unlink(a, "gone"), "unlink gone");
  must(fs->rename(root, "f1", a, "f1-moved", 0, cred), "rename");
  must(fs->fallocate(sparse, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096 * 4, 4096 * 2),
       "punch");
  SetAttr shrink;
  shrink.valid = SetAttr::kSize;
  shrink.size = 3000;
  must(fs->setattr(f1, shrink), "truncate");
  auto& dram = static_cast<RegionDram&>(const_cast<Region&>(fs->region()));
  std::vector<std::byte> crashed = dram.image();
  std::vector<std::byte> torn = dram.crash(RegionDram::CrashMode::kTear, 7);
  fs->release(open_gone);
  must(fs->unmount(), "unmount");
  // Populated and clean: what unmount left.
  out.push_back(describe("populated", dram.image(), geo));
  out.push_back(describe("crashed", std::move(crashed), geo));
  out.push_back(describe("torn", std::move(torn), geo));
  return out;
}

}  // namespace

const std::vector<BaseImage>& base_images() {
  static const std::vector<BaseImage> images = build();
  return images;
}

}  // namespace sealfs::fuzz
