// A populated sealfs image built once through the meta layer, and helpers
// that corrupt it the way the tests need (raw bytes, re-sealed where the
// test wants a structurally valid lie).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fsck/checker.h"
#include "media/formatter.h"
#include "media/region_dram.h"
#include "media/superblock.h"
#include "meta/directory.h"
#include "meta/extent_map.h"
#include "meta/filesystem.h"
#include "meta/inode.h"

namespace sealfs::fsck::testing {

using Bytes = std::vector<std::byte>;
using format::kRootIno;

struct Populated {
  Bytes image;
  Geometry geo;
  Ino dir_a = 0, dir_b = 0, file1 = 0, file2 = 0, sparse = 0, link_short = 0, link_long = 0;
  Ino many_dir = 0;
  Ino tiny = 0;  // 100 bytes kept inline in its slot
};

inline Cred cred() { return Cred{1000, 1000, 022, 1}; }

inline MountOptions mount_options() {
  MountOptions m;
  m.holder_alive = [](uint32_t, uint64_t) { return false; };
  return m;
}

inline Populated build_populated() {
  Populated p;
  auto region = RegionDram::create(32ull << 20);
  FormatOptions fo;
  fo.layout.inode_count = 512;
  fo.layout.journal_bytes = 1ull << 20;
  fo.now_ns = 1'700'000'000'000'000'000ull;
  auto sb = Formatter::format(*region, fo);
  EXPECT_TRUE(sb.is_ok()) << sb.status().to_string();
  p.geo = sb->geometry;
  auto mounted = Filesystem::mount(std::move(region), mount_options());
  EXPECT_TRUE(mounted.is_ok()) << mounted.status().to_string();
  auto& fs = *mounted;
  auto must = [](auto r) {
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return *r;
  };
  p.dir_a = must(fs->mkdir(kRootIno, "a", 0755, cred())).ino;
  p.dir_b = must(fs->mkdir(p.dir_a, "b", 0755, cred())).ino;
  p.file1 = must(fs->create(kRootIno, "f1", 0644, O_RDWR, cred())).ino;
  std::string data(10000, 'x');
  EXPECT_TRUE(fs->write(p.file1, 0, data.data(), data.size(), false).is_ok());
  EXPECT_TRUE(fs->setxattr(p.file1, "user.color", "blue", 4, 0).is_ok());
  p.file2 = must(fs->create(p.dir_a, "f2", 0644, O_RDWR, cred())).ino;
  std::string big(100000, 'y');
  EXPECT_TRUE(fs->write(p.file2, 0, big.data(), big.size(), false).is_ok());
  // Every other block written: more extents than fit inline.
  p.sparse = must(fs->create(p.dir_b, "sparse", 0644, O_RDWR, cred())).ino;
  std::string block(4096, 'z');
  for (int i = 0; i < 40; i += 2) {
    EXPECT_TRUE(fs->write(p.sparse, uint64_t(i) * 4096, block.data(), block.size(), false).is_ok());
  }
  p.tiny = must(fs->create(p.dir_a, "tiny", 0644, O_RDWR, cred())).ino;
  std::string hundred(100, 't');
  EXPECT_TRUE(fs->write(p.tiny, 0, hundred.data(), hundred.size(), false).is_ok());
  p.link_short = must(fs->symlink(kRootIno, "short", "f1", cred())).ino;
  p.link_long = must(fs->symlink(p.dir_a, "long", std::string(300, 'L'), cred())).ino;
  EXPECT_TRUE(fs->link(p.file1, p.dir_b, "hard").is_ok());
  p.many_dir = must(fs->mkdir(kRootIno, "many", 0755, cred())).ino;
  for (int i = 0; i < 120; ++i) {
    auto a = fs->mknod(p.many_dir, "entry-with-a-longish-name-number-" + std::to_string(i),
                       S_IFREG | 0600, 0, cred());
    EXPECT_TRUE(a.is_ok());
  }
  for (Ino ino : {p.file1, p.file2, p.sparse}) fs->release(ino);
  EXPECT_TRUE(fs->unmount().is_ok());
  p.image = static_cast<const RegionDram&>(fs->region()).image();
  return p;
}

inline const Populated& populated() {
  static const Populated p = build_populated();
  return p;
}

struct FsckRun {
  Report report;
  Bytes image;
};

// `holders_alive`: every holder table entry's process is taken as alive
// (the default: every one as gone).
inline FsckRun run(const Bytes& image, bool repair, bool holders_alive = false) {
  auto region = RegionDram::from_image(image);
  FsckOptions o;
  o.repair = repair;
  o.target = "dram";
  o.holder_alive = [holders_alive](uint32_t, uint64_t) { return holders_alive; };
  FsckRun r;
  r.report = run_fsck(*region, o);
  r.image = region->image();
  return r;
}

inline bool has_kind(const Report& r, const std::string& kind) {
  for (const Problem& p : r.problems) {
    if (p.kind == kind) return true;
  }
  return false;
}

inline bool has_note(const Report& r, const std::string& kind) {
  for (const Problem& n : r.notes) {
    if (n.kind == kind) return true;
  }
  return false;
}

inline std::string notes(const Report& r) {
  std::string out;
  for (const Problem& n : r.notes) out += n.kind + ": " + n.detail + "\n";
  return out;
}

inline std::string kinds(const Report& r) {
  std::string out;
  for (const Problem& p : r.problems) out += p.kind + "(" + std::to_string(p.inode) + "): " + p.detail + "\n";
  return out;
}

// Image accessors.
// -n finds `kind` and writes nothing; -y repairs (and reports `kind`); -n
// is then clean and the repaired image mounts. With Clears::kNoInode, -n
// must not have cleared an inode for it (inode_corrupt). Returns the
// repaired image.
enum class Clears { kAllowed, kNoInode };
inline Bytes expect_round_trip(const Bytes& image, const std::string& kind,
                               Clears clears = Clears::kNoInode) {
  FsckRun check = run(image, false);
  EXPECT_EQ(check.report.exit_code, kExitUncorrected) << kinds(check.report);
  EXPECT_TRUE(has_kind(check.report, kind)) << kinds(check.report);
  if (clears == Clears::kNoInode) {
    EXPECT_FALSE(has_kind(check.report, "inode_corrupt")) << kinds(check.report);
  }
  EXPECT_EQ(check.image, image) << "check-only run wrote to the image";
  FsckRun fix = run(image, true);
  EXPECT_EQ(fix.report.exit_code, kExitCorrected) << kinds(fix.report);
  EXPECT_TRUE(has_kind(fix.report, kind)) << kinds(fix.report);
  EXPECT_EQ(fix.report.remaining_after_repair, 0u);
  FsckRun again = run(fix.image, false);
  EXPECT_EQ(again.report.exit_code, kExitClean) << kinds(again.report);
  auto fs = Filesystem::mount(RegionDram::from_image(fix.image), mount_options());
  EXPECT_TRUE(fs.is_ok()) << fs.status().to_string();
  return fix.image;
}

inline format::DiskInode get_inode(const Bytes& img, const Geometry& g, uint64_t ino) {
  format::DiskInode d{};
  std::memcpy(&d, img.data() + inode_offset(g, ino), sizeof(d));
  return d;
}
inline void put_inode(Bytes& img, const Geometry& g, uint64_t ino, format::DiskInode d,
                      bool seal = true) {
  if (seal) seal_inode_crc(d);
  std::memcpy(img.data() + inode_offset(g, ino), &d, sizeof(d));
}
inline uint64_t first_block(const Bytes& img, const Geometry& g, uint64_t ino) {
  return get_inode(img, g, ino).u.extents[0].region_block.get();
}
inline std::byte* block_ptr(Bytes& img, uint64_t block) {
  return img.data() + block * format::kBlockSize;
}
inline void set_bit(Bytes& img, const Geometry& g, uint64_t block, bool on) {
  uint64_t i = block - g.data_start;
  std::byte& b = img[g.bitmap_start * format::kBlockSize + i / 8];
  auto mask = std::byte{static_cast<unsigned char>(1u << (i % 8))};
  b = on ? (b | mask) : (b & ~mask);
}
inline bool get_bit(const Bytes& img, const Geometry& g, uint64_t block) {
  uint64_t i = block - g.data_start;
  return (std::to_integer<unsigned>(img[g.bitmap_start * format::kBlockSize + i / 8]) >> (i % 8)) & 1;
}
// Offset of the entry named `name` in a directory's first block.
inline int entry_offset(const Bytes& img, uint64_t block, uint64_t owner, std::string_view name) {
  int found = -1;
  dir_block_for_each(img.data() + block * format::kBlockSize, [&](const DirBlockEntry& e) {
    if (e.name == name) found = e.offset;
  });
  (void)owner;
  return found;
}

}  // namespace sealfs::fsck::testing
