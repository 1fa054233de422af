// An inode slot that fails only its crc: fsck keeps it when its fields
// check (inode_bad_crc_salvaged) and clears it when they do not. The
// campaign flips one bit at every byte of the slot of several kinds of
// inode, repairs, and reads the whole namespace back through the meta
// layer: the damaged inode is kept identical, kept with a change only in a
// field nothing can check, or cleared with its names gone; every other
// inode is exactly as it was (never a cross-link won by the damaged one).
// A kept inode always takes a new generation (fsck raises it).
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "fsck_fixture.h"

namespace sealfs::fsck::testing {
namespace {

// The fixture's kinds of inode in a region a quarter of its size: the
// campaign copies the image a few times per flip.
Populated build_small() {
  Populated p;
  auto region = RegionDram::create(8ull << 20);
  FormatOptions fo;
  fo.layout.inode_count = 64;
  fo.layout.journal_bytes = 1ull << 20;
  auto sb = Formatter::format(*region, fo);
  EXPECT_TRUE(sb.is_ok()) << sb.status().to_string();
  p.geo = sb->geometry;
  auto mounted = Filesystem::mount(std::move(region), mount_options());
  EXPECT_TRUE(mounted.is_ok()) << mounted.status().to_string();
  Filesystem& fs = **mounted;
  auto must = [](auto r) {
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r->ino;
  };
  p.dir_a = must(fs.mkdir(kRootIno, "a", 0755, cred()));
  p.dir_b = must(fs.mkdir(p.dir_a, "b", 0755, cred()));
  p.file1 = must(fs.create(kRootIno, "f1", 0644, O_RDWR, cred()));
  std::string data(10000, 'x');
  EXPECT_TRUE(fs.write(p.file1, 0, data.data(), data.size(), false).is_ok());
  EXPECT_TRUE(fs.setxattr(p.file1, "user.color", "blue", 4, 0).is_ok());
  EXPECT_TRUE(fs.link(p.file1, p.dir_b, "hard").is_ok());
  p.file2 = must(fs.create(p.dir_a, "f2", 0644, O_RDWR, cred()));
  EXPECT_TRUE(fs.write(p.file2, 0, data.data(), 5000, false).is_ok());
  // Every other block written: more extents than fit in the slot.
  p.sparse = must(fs.create(p.dir_b, "sparse", 0644, O_RDWR, cred()));
  std::string block(4096, 'z');
  for (int i = 0; i < 20; i += 2) {
    EXPECT_TRUE(fs.write(p.sparse, uint64_t(i) * 4096, block.data(), block.size(), false).is_ok());
  }
  p.tiny = must(fs.create(p.dir_a, "tiny", 0644, O_RDWR, cred()));
  EXPECT_TRUE(fs.write(p.tiny, 0, data.data(), 100, false).is_ok());
  p.link_short = must(fs.symlink(kRootIno, "short", "f1", cred()));
  p.link_long = must(fs.symlink(p.dir_a, "long", std::string(300, 'L'), cred()));
  for (Ino ino : {p.file1, p.file2, p.sparse, p.tiny}) fs.release(ino);
  EXPECT_TRUE(fs.unmount().is_ok());
  p.image = static_cast<const RegionDram&>(fs.region()).image();
  return p;
}

const Populated& small() {
  static const Populated p = build_small();
  return p;
}

// What a user sees of one inode.
struct Seen {
  uint32_t mode = 0, nlink = 0, uid = 0, gid = 0, generation = 0;
  uint64_t size = 0;
  int64_t atime = 0, mtime = 0, ctime = 0, btime = 0;
  InodeAttrFlags flags;
  std::string bytes;     // file contents, symlink target, or a directory's "name=ino;" list
  std::string xattrs;    // "name=value;" ...
  bool operator==(const Seen&) const = default;
};

void PrintTo(const Seen& s, std::ostream* os) {
  *os << "mode " << std::oct << s.mode << std::dec << " nlink " << s.nlink << " uid " << s.uid
      << " gid " << s.gid << " generation " << s.generation << " size " << s.size << " times "
      << s.atime << "/" << s.mtime << "/" << s.ctime << "/" << s.btime << " flags "
      << s.flags.flags << " project " << s.flags.project_id << " bytes " << s.bytes.size()
      << " xattrs '" << s.xattrs << "'";
}

int64_t ns(const timespec& t) { return t.tv_sec * 1'000'000'000ll + t.tv_nsec; }

struct Namespace {
  std::map<Ino, Seen> inodes;
  std::map<Ino, std::set<std::string>> names;  // paths
};

void walk(Filesystem& fs, Ino dir, const std::string& path, Namespace& out) {
  std::vector<std::pair<std::string, Ino>> entries;
  ASSERT_TRUE(fs.readdir(dir, 0, [&](const DirEntry& e) {
                  if (e.name != "." && e.name != "..") entries.emplace_back(e.name, e.ino);
                  return true;
                }).is_ok());
  for (const auto& [name, ino] : entries) {
    out.inodes[dir].bytes += name + "=" + std::to_string(ino) + ";";
    const bool first = out.names[ino].empty();
    out.names[ino].insert(path + "/" + name);
    if (!first) continue;
    auto attr = fs.lookup(dir, name);
    ASSERT_TRUE(attr.is_ok()) << path << "/" << name << ": " << attr.status().to_string();
    Seen& s = out.inodes[ino];
    // Before any read, which may move atime.
    s.mode = attr->mode, s.nlink = attr->nlink, s.uid = attr->uid, s.gid = attr->gid;
    s.generation = attr->generation, s.size = attr->size;
    s.atime = ns(attr->atime), s.mtime = ns(attr->mtime), s.ctime = ns(attr->ctime);
    auto flags = fs.get_flags(ino);
    ASSERT_TRUE(flags.is_ok());
    s.flags = *flags;
    auto names = fs.listxattr(ino);
    ASSERT_TRUE(names.is_ok());
    for (const std::string& x : *names) {
      auto v = fs.getxattr(ino, x);
      ASSERT_TRUE(v.is_ok());
      s.xattrs += x + "=" + std::string(v->begin(), v->end()) + ";";
    }
    if (S_ISREG(s.mode)) {
      // A flipped size bit may make a file of terabytes (of zeros): what
      // it had before is at most 100 KB.
      s.bytes.resize(std::min<uint64_t>(s.size, 1 << 20));
      auto n = fs.read_copy(ino, 0, s.bytes.data(), s.bytes.size());
      ASSERT_TRUE(n.is_ok()) << n.status().to_string();
      ASSERT_EQ(*n, s.bytes.size());
    } else if (S_ISLNK(s.mode)) {
      auto target = fs.readlink(ino);
      ASSERT_TRUE(target.is_ok());
      s.bytes = *target;
    } else if (S_ISDIR(s.mode)) {
      walk(fs, ino, path + "/" + name, out);
    }
  }
}

// Mounts the image (the checks every mount makes) and reads everything.
Namespace read_namespace(const Bytes& image) {
  Namespace out;
  auto fs = Filesystem::mount(RegionDram::from_image(image), mount_options());
  EXPECT_TRUE(fs.is_ok()) << fs.status().to_string();
  if (!fs.is_ok()) return out;
  auto root = (*fs)->getattr(kRootIno);
  EXPECT_TRUE(root.is_ok());
  if (root.is_ok()) out.inodes[kRootIno].mode = root->mode;
  walk(**fs, kRootIno, "", out);
  // The birth time: in the slot only (the daemon serves none: FUSE has no
  // field for it), and the mount changes no slot's.
  auto sb = read_superblock(*RegionDram::from_image(image), nullptr);
  EXPECT_TRUE(sb.is_ok());
  if (!sb.is_ok()) return out;
  for (auto& [ino, seen] : out.inodes) {
    seen.btime = static_cast<int64_t>(get_inode(image, sb->geometry, ino).btime_ns.get());
  }
  return out;
}

bool reported(const Report& r, const std::string& kind, Ino ino) {
  for (const Problem& p : r.problems) {
    if (p.kind == kind && p.inode == ino) return true;
  }
  return false;
}

// Bytes of the slot that nothing on the image vouches for: a flip there
// may be kept, changed. Every other field is checked (the crc, the link
// count and orphan pointer, which later phases set from the names, the
// device number, the block count, the map, the overflow and xattr
// pointers), so a flip there is kept only when it changed nothing.
bool unverifiable(size_t offset, const format::DiskInode& slot) {
  const bool in_slot_bytes = (slot.flags.get() & format::kInodeInlineData) != 0 ||
                             (S_ISLNK(slot.mode.get()) && slot.extent_count.get() == 0);
  if (offset >= offsetof(format::DiskInode, u)) {
    if (in_slot_bytes) return true;  // an inline file's bytes or a symlink's target
    // Only an extent's unwritten flag.
    return (offset - offsetof(format::DiskInode, u)) % sizeof(format::DiskExtent) ==
           offsetof(format::DiskExtent, flags);
  }
  auto in = [&](size_t field, size_t size) { return offset >= field && offset < field + size; };
  using D = format::DiskInode;
  return in(offsetof(D, mode), 2) || in(offsetof(D, uid), 8) || in(offsetof(D, flags), 1) ||
         in(offsetof(D, generation), 4) || in(offsetof(D, size), 8) ||
         in(offsetof(D, atime_ns), 32) || in(offsetof(D, project_id), 4);
}

struct Tally {
  int identical = 0, changed = 0, cleared = 0;
};

// The slot offsets flipped: every one with FSCK_SALVAGE_EVERY_BYTE=1 (six
// inodes take minutes), else a seeded sample of 64 that always holds a
// byte of the crc and one of mtime.
std::vector<size_t> offsets_to_flip() {
  std::vector<size_t> all(sizeof(format::DiskInode));
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  const char* every = std::getenv("FSCK_SALVAGE_EVERY_BYTE");
  if (every != nullptr && std::string(every) == "1") return all;
  std::mt19937_64 rng(0x5a17a9e);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(62);
  for (size_t must : {size_t{0}, offsetof(format::DiskInode, mtime_ns)}) {
    if (std::find(all.begin(), all.end(), must) == all.end()) all.push_back(must);
  }
  std::sort(all.begin(), all.end());
  return all;
}

// Flips one bit at each offset of `ino`'s slot (the bit moves with the
// offset, so that every bit position is hit) and checks each outcome.
Tally campaign(Ino ino, const Namespace& before) {
  const Populated& p = small();
  Tally tally;
  const format::DiskInode slot = get_inode(p.image, p.geo, ino);
  for (size_t offset : offsets_to_flip()) {
    const int bit = static_cast<int>((offset * 3 + ino) % 8);
    SCOPED_TRACE("inode " + std::to_string(ino) + " offset " + std::to_string(offset) + " bit " +
                 std::to_string(bit));
    Bytes image = p.image;
    image[inode_offset(p.geo, ino) + offset] ^= std::byte{static_cast<unsigned char>(1u << bit)};

    FsckRun check = run(image, false);
    EXPECT_EQ(check.report.exit_code, kExitUncorrected) << kinds(check.report);
    const bool kept = reported(check.report, "inode_bad_crc_salvaged", ino);
    EXPECT_TRUE(kept || reported(check.report, "inode_bad_crc", ino)) << kinds(check.report);
    FsckRun fix = run(image, true);
    EXPECT_EQ(fix.report.exit_code, kExitCorrected) << kinds(fix.report);
    EXPECT_EQ(fix.report.remaining_after_repair, 0u) << kinds(fix.report);
    // -n said what -y did.
    EXPECT_EQ(reported(fix.report, "inode_bad_crc_salvaged", ino), kept) << kinds(fix.report);
    EXPECT_EQ(run(fix.image, false).report.exit_code, kExitClean);

    Namespace after = read_namespace(fix.image);
    if (::testing::Test::HasFailure()) return tally;
    // Kept: its names are all there. Cleared: none is (its number may be
    // taken again, by lost+found).
    std::set<std::string> paths;
    for (const auto& [i, names] : after.names) paths.insert(names.begin(), names.end());
    const bool survived =
        after.names.count(ino) != 0 && after.names.at(ino) == before.names.at(ino);
    for (const auto& [other, seen] : before.inodes) {
      // Directories' listings change with a removed name or lost+found.
      if (other == ino || S_ISDIR(seen.mode)) continue;
      auto it = after.inodes.find(other);
      if (it == after.inodes.end()) {
        ADD_FAILURE() << "inode " << other << " lost";
        return tally;
      }
      Seen expect = seen;
      // A cleared directory takes its names with it: a file named there
      // and elsewhere too has one link less.
      if (!survived && S_ISDIR(slot.mode.get())) expect.nlink = it->second.nlink;
      EXPECT_EQ(it->second, expect) << "inode " << other << " changed";
    }
    // A flip of the crc changes no field, one of a time only what nothing
    // can check: the inode is kept (before this change it was cleared).
    const bool crc = offset < sizeof(slot.crc);
    const bool time = offset >= offsetof(format::DiskInode, atime_ns) &&
                      offset < offsetof(format::DiskInode, extent_block);
    EXPECT_TRUE(survived || !(crc || time)) << kinds(fix.report);
    if (!survived) {
      ++tally.cleared;
      for (const std::string& name : before.names.at(ino)) EXPECT_EQ(paths.count(name), 0u) << name;
      EXPECT_TRUE(reported(fix.report, "inode_bad_crc", ino) ||
                  reported(fix.report, "cross_linked", ino))
          << kinds(fix.report);
      continue;
    }
    EXPECT_TRUE(kept) << kinds(fix.report);
    const Seen& found = after.inodes.at(ino);
    // Kept: its generation raised past what one flip can have lowered
    // (from the value found; a flip in it still ends above the old one).
    const uint32_t flipped_generation = get_inode(image, p.geo, ino).generation.get();
    Seen as_before = before.inodes.at(ino);
    as_before.generation = flipped_generation < (1u << 31) ? flipped_generation + (1u << 31) + 1
                                                           : found.generation;
    EXPECT_GT(found.generation, before.inodes.at(ino).generation);
    if (found == as_before) {
      ++tally.identical;
    } else {
      ++tally.changed;
      EXPECT_TRUE(unverifiable(offset, slot)) << "kept with a checked field changed";
    }
    // A flip in the crc itself changes no field: always kept as it was.
    if (crc) {
      EXPECT_EQ(found, as_before);
    }
  }
  return tally;
}

// One flipped bit of the block count that no flip of the map can explain
// (bit 40: no 32-bit extent length moves by 2^40) used to clear the file;
// the count is set back from the map and the file is kept as it was. The
// campaign below checks the flips a map could explain: they still clear.
TEST(FsckSalvageTest, AFlippedBlockCountNoMapFlipExplainsIsSetBack) {
  const Populated& p = small();
  const Namespace before = read_namespace(p.image);
  Bytes image = p.image;
  const uint64_t at = inode_offset(p.geo, p.file1) + offsetof(format::DiskInode, blocks) + 5;
  image[at] ^= std::byte{0x01};
  FsckRun fix = run(image, true);
  EXPECT_EQ(fix.report.exit_code, kExitCorrected) << kinds(fix.report);
  ASSERT_TRUE(reported(fix.report, "inode_bad_crc_salvaged", p.file1)) << kinds(fix.report);
  EXPECT_NE(kinds(fix.report).find("block count " +
                                   std::to_string(get_inode(image, p.geo, p.file1).blocks.get()) +
                                   " set to the " +
                                   std::to_string(get_inode(p.image, p.geo, p.file1).blocks.get()) +
                                   " blocks owned"),
            std::string::npos)
      << kinds(fix.report);
  EXPECT_EQ(run(fix.image, false).report.exit_code, kExitClean);
  EXPECT_EQ(get_inode(fix.image, p.geo, p.file1).blocks.get(),
            get_inode(p.image, p.geo, p.file1).blocks.get());
  const Namespace after = read_namespace(fix.image);
  ASSERT_EQ(after.names.count(p.file1), 1u);
  EXPECT_EQ(after.names.at(p.file1), before.names.at(p.file1));
  Seen expect = before.inodes.at(p.file1);
  expect.generation = after.inodes.at(p.file1).generation;  // raised, as for any kept inode
  EXPECT_EQ(after.inodes.at(p.file1), expect);
}

// An empty file's xattr block moved to a power-of-two block, then its
// pointer flipped to 0: the count (1) is one bit above what the map owns
// (0), but a store of the file's one bit away from 0 explains that too.
// Setting the count would keep the file without its xattrs (an ACL among
// them) and free their block as a leak; it is cleared, as before the count
// rule (review of ff8cb68).
TEST(FsckSalvageTest, AnXattrPointerFlippedToZeroIsNotTakenForTheCount) {
  const Populated& p = small();
  Bytes image;
  Ino file = 0;
  {
    auto fs = Filesystem::mount(RegionDram::from_image(p.image), mount_options());
    ASSERT_TRUE(fs.is_ok());
    auto made = (*fs)->create(kRootIno, "secretive", 0644, O_RDWR, cred());
    ASSERT_TRUE(made.is_ok());
    file = made->ino;
    (*fs)->release(file);
    ASSERT_TRUE((*fs)->setxattr(file, "user.secret", "x", 1, 0).is_ok());
    image = static_cast<const RegionDram&>((*fs)->region()).crash(RegionDram::CrashMode::kDrop);
  }
  image = run(image, true).image;  // the unmount did not run
  format::DiskInode slot = get_inode(image, p.geo, file);
  ASSERT_EQ(slot.blocks.get(), 1u);
  const uint64_t old_block = slot.xattr_block.get();
  ASSERT_NE(old_block, 0u);
  uint64_t head = 0;
  for (uint64_t b = 1; b < p.geo.data_start + p.geo.data_blocks; b <<= 1) {
    if (b >= p.geo.data_start && !get_bit(image, p.geo, b)) head = b;
  }
  ASSERT_NE(head, 0u) << "no free power-of-two block";
  std::memcpy(block_ptr(image, head), block_ptr(image, old_block), format::kBlockSize);
  set_bit(image, p.geo, head, true);
  set_bit(image, p.geo, old_block, false);
  slot.xattr_block.set(head);
  put_inode(image, p.geo, file, slot);
  ASSERT_EQ(run(image, false).report.exit_code, kExitClean) << "the moved store does not check";
  slot.xattr_block.set(0);
  put_inode(image, p.geo, file, slot, /*seal=*/false);  // one flipped bit, crc as it was
  FsckRun fix = run(image, true);
  EXPECT_FALSE(reported(fix.report, "inode_bad_crc_salvaged", file)) << kinds(fix.report);
  EXPECT_TRUE(reported(fix.report, "inode_bad_crc", file)) << kinds(fix.report);
}

// A flip that clears the inline-data flag of a small file: its slot holds
// its bytes, which a slot without the flag never does. The flag is set
// back and the file kept as it was; it used to be kept with its bytes
// zeroed as unused (review of ff8cb68).
TEST(FsckSalvageTest, AFlippedInlineFlagIsSetBackWithTheBytes) {
  const Populated& p = small();
  const Namespace before = read_namespace(p.image);
  Bytes image = p.image;
  image[inode_offset(p.geo, p.tiny) + offsetof(format::DiskInode, flags)] ^=
      std::byte{static_cast<unsigned char>(format::kInodeInlineData)};
  FsckRun fix = run(image, true);
  ASSERT_TRUE(reported(fix.report, "inode_bad_crc_salvaged", p.tiny)) << kinds(fix.report);
  EXPECT_NE(kinds(fix.report).find("inline-data flag restored"), std::string::npos)
      << kinds(fix.report);
  EXPECT_EQ(run(fix.image, false).report.exit_code, kExitClean);
  const Namespace after = read_namespace(fix.image);
  Seen expect = before.inodes.at(p.tiny);
  expect.generation = after.inodes.at(p.tiny).generation;
  EXPECT_EQ(after.inodes.at(p.tiny), expect);
}

TEST(FsckSalvageTest, OneFlippedBitAnywhereInASlotNeverCostsAnotherFile) {
  const Populated& p = small();
  const Namespace before = read_namespace(p.image);
  ASSERT_FALSE(::testing::Test::HasFailure());
  const std::pair<const char*, Ino> targets[] = {
      {"regular file with extents and an xattr block (f1)", p.file1},
      {"regular file with an overflow chain (a/b/sparse)", p.sparse},
      {"inline file (a/tiny)", p.tiny},
      {"directory with entries (a/b)", p.dir_b},
      {"inline symlink (short)", p.link_short},
      {"symlink with a block (a/long)", p.link_long},
  };
  Tally total;
  for (const auto& [what, ino] : targets) {
    Tally t = campaign(ino, before);
    ASSERT_FALSE(::testing::Test::HasFailure()) << what;
    std::printf("%s, inode %llu: %d flips: %d kept identical, %d kept with an unverifiable "
                "field changed, %d cleared\n",
                what, static_cast<unsigned long long>(ino), t.identical + t.changed + t.cleared,
                t.identical, t.changed, t.cleared);
    total.identical += t.identical, total.changed += t.changed, total.cleared += t.cleared;
  }
  std::printf("total: %d kept identical, %d kept changed, %d cleared\n", total.identical,
              total.changed, total.cleared);
}

}  // namespace
}  // namespace sealfs::fsck::testing
