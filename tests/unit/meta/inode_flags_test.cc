// Inode flags (chattr): who may change them, what immutable and append-only
// forbid in every operation of the metadata layer (the kernel does not know
// a FUSE inode's flags, so this is the only enforcement), noatime, the
// direct-mapping rules, and that flags and project id survive a crash.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstdio>
#include <set>

#include "media/superblock.h"
#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kInodeAppend;
using format::kInodeImmutable;
using format::kInodeNoatime;
using format::kInodeNodump;
using format::kRootIno;

class FakeFlagsCaller final : public FlagsCaller {
 public:
  FakeFlagsCaller(uint32_t uid, bool fowner, bool linux_immutable)
      : uid_(uid), fowner_(fowner), immutable_(linux_immutable) {}
  uint32_t fsuid() override { return uid_; }
  bool has_fowner() override { return fowner_; }
  bool has_linux_immutable() override { return immutable_; }

 private:
  uint32_t uid_;
  bool fowner_, immutable_;
};

FakeFlagsCaller root() { return FakeFlagsCaller(0, true, true); }

class InodeFlagsTest : public MetaTest {
 protected:
  void SetUp() override { format(); }
  void set(Ino ino, uint32_t flags, uint32_t project = 0) {
    FakeFlagsCaller r = root();
    Status s = fs_->set_flags(ino, InodeAttrFlags{flags, project}, r);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }
  static void expect_eperm(const Status& s, const char* what) {
    EXPECT_EQ(s.code(), Code::kPermission) << what << ": " << s.to_string();
  }
  template <typename T>
  static void expect_eperm(const Result<T>& r, const char* what) {
    EXPECT_EQ(r.status().code(), Code::kPermission) << what << ": " << r.status().to_string();
  }
  Status open_close(Ino ino, int flags) {
    Status s = fs_->open(ino, flags);
    if (s.is_ok()) fs_->release(ino);
    return s;
  }
  Status set_times(Ino ino, uint32_t valid, bool cached = false) {
    SetAttr a;
    a.valid = valid;
    a.atime = a.mtime = {1000, 0};
    a.cached_times = cached;
    return fs_->setattr(ino, a).status();
  }
};

TEST_F(InodeFlagsTest, WhoMayChangeFlags) {
  Attr f = make_file(kRootIno, "f");  // owned by uid 1000
  FakeFlagsCaller owner(1000, false, false), stranger(2000, false, false),
      fowner(2000, true, false), owner_immutable(1000, false, true);
  EXPECT_TRUE(fs_->set_flags(f.ino, {kInodeNodump | kInodeNoatime, 7}, owner).is_ok());
  expect_eperm(fs_->set_flags(f.ino, {kInodeNodump, 7}, stranger), "not the owner");
  EXPECT_TRUE(fs_->set_flags(f.ino, {kInodeNodump, 8}, fowner).is_ok());
  // Immutable and append-only need CAP_LINUX_IMMUTABLE, even for the owner,
  // both to set and to clear.
  expect_eperm(fs_->set_flags(f.ino, {kInodeImmutable, 8}, owner), "set immutable");
  expect_eperm(fs_->set_flags(f.ino, {kInodeAppend, 8}, fowner), "set append-only");
  EXPECT_TRUE(fs_->set_flags(f.ino, {kInodeImmutable, 8}, owner_immutable).is_ok());
  expect_eperm(fs_->set_flags(f.ino, {0, 8}, owner), "clear immutable");
  EXPECT_EQ(fs_->set_flags(f.ino, {1u << 20, 8}, owner_immutable).code(), Code::kNotSupported);
  EXPECT_EQ(fs_->set_flags(f.ino, {format::kInodeOrphan, 8}, owner_immutable).code(),
            Code::kNotSupported);
  auto now = fs_->get_flags(f.ino);
  ASSERT_TRUE(now.is_ok());
  EXPECT_EQ(*now, (InodeAttrFlags{kInodeImmutable, 8}));
}

TEST_F(InodeFlagsTest, ImmutableFileRefusesEveryChange) {
  Attr dir = *fs_->mkdir(kRootIno, "d", 0755, user());
  Attr f = make_file(dir.ino, "f", 04755);
  fs_->release(f.ino);
  write_str(f.ino, 0, "sealed bytes");
  ASSERT_TRUE(fs_->setxattr(f.ino, "user.k", "v", 1, 0).is_ok());
  Attr other = make_file(kRootIno, "other");
  fs_->release(other.ino);
  set(f.ino, kInodeImmutable);
  const Attr before = *fs_->getattr(f.ino);

  expect_eperm(fs_->write(f.ino, 0, "x", 1, false), "write");
  expect_eperm(fs_->write(f.ino, 0, "x", 1, true), "append");
  SetAttr trunc;
  trunc.valid = SetAttr::kSize;
  expect_eperm(fs_->setattr(f.ino, trunc), "truncate");
  SetAttr chmod;
  chmod.valid = SetAttr::kMode;
  chmod.mode = 0600;
  expect_eperm(fs_->setattr(f.ino, chmod), "chmod");
  SetAttr chown;
  chown.valid = SetAttr::kUid;
  expect_eperm(fs_->setattr(f.ino, chown), "chown");
  expect_eperm(set_times(f.ino, SetAttr::kAtime | SetAttr::kMtime), "utimes");
  expect_eperm(set_times(f.ino, SetAttr::kAtimeNow | SetAttr::kMtimeNow), "touch");
  expect_eperm(set_times(f.ino, SetAttr::kMtime, /*cached=*/true), "cached mtime");
  expect_eperm(fs_->fallocate(f.ino, 0, 0, 4096), "fallocate");
  expect_eperm(fs_->fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096),
               "punch");
  expect_eperm(fs_->unlink(dir.ino, "f"), "unlink");
  expect_eperm(fs_->rename(dir.ino, "f", dir.ino, "g", 0), "rename");
  expect_eperm(fs_->rename(kRootIno, "other", dir.ino, "f", 0), "rename over");
  expect_eperm(fs_->rename(kRootIno, "other", dir.ino, "f", RENAME_EXCHANGE), "exchange");
  expect_eperm(fs_->link(f.ino, dir.ino, "h"), "link");
  expect_eperm(fs_->setxattr(f.ino, "user.k", "w", 1, 0), "setxattr");
  expect_eperm(fs_->removexattr(f.ino, "user.k"), "removexattr");
  expect_eperm(open_close(f.ino, O_WRONLY), "open O_WRONLY");
  expect_eperm(open_close(f.ino, O_RDWR | O_APPEND), "open O_RDWR|O_APPEND");
  expect_eperm(open_close(f.ino, O_RDONLY | O_TRUNC), "open O_TRUNC");
  expect_eperm(fs_->copy_file_range(other.ino, 0, f.ino, 0, 1), "copy_file_range into");
  class Writer final : public SetidCaller {
    bool has_fsetid() override { return false; }
    bool in_group(uint32_t) override { return false; }
    bool may_chmod(uint32_t) override { return false; }
  } writer;
  expect_eperm(fs_->drop_setid(f.ino, writer), "drop set-id bits");
  // chown(f, -1, -1) changes no owner, mode or time the caller gives: the
  // kernel lets it through on tmpfs and ext4 (found by difftest).
  SetAttr same_owner;
  same_owner.valid = SetAttr::kKeepOwner | SetAttr::kCtime;
  EXPECT_TRUE(fs_->setattr(dir.ino, same_owner).is_ok());
  set(dir.ino, kInodeImmutable);
  EXPECT_TRUE(fs_->setattr(dir.ino, same_owner).is_ok());
  set(dir.ino, 0);

  // Reading stays allowed, and nothing changed.
  EXPECT_TRUE(open_close(f.ino, O_RDONLY).is_ok());
  EXPECT_EQ(read_all(f.ino), "sealed bytes");
  const Attr after = *fs_->getattr(f.ino);
  EXPECT_EQ(after.mode, before.mode);
  EXPECT_EQ(after.size, before.size);
  EXPECT_EQ(after.nlink, 1u);
  EXPECT_EQ(after.mtime.tv_sec, before.mtime.tv_sec);
  EXPECT_EQ(after.mtime.tv_nsec, before.mtime.tv_nsec);
  EXPECT_TRUE(fs_->lookup(dir.ino, "f").is_ok());
  EXPECT_EQ(*fs_->getxattr(f.ino, "user.k"), std::vector<uint8_t>{'v'});
  // And drops S_ISUID as a chown does, which notify_change also lets
  // through on an immutable inode (the flags are checked before).
  EXPECT_TRUE(fs_->setattr(f.ino, same_owner).is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->mode, uint32_t{S_IFREG | 0755});

  // Cleared, it is an ordinary file again.
  set(f.ino, 0);
  write_str(f.ino, 0, "S");
  EXPECT_TRUE(fs_->unlink(dir.ino, "f").is_ok());
}

TEST_F(InodeFlagsTest, ImmutableDirectoryKeepsItsEntries) {
  Attr dir = *fs_->mkdir(kRootIno, "d", 0755, user());
  Attr f = make_file(dir.ino, "f");
  fs_->release(f.ino);
  Attr outside = make_file(kRootIno, "outside");
  fs_->release(outside.ino);
  set(dir.ino, kInodeImmutable);
  expect_eperm(fs_->create(dir.ino, "new", 0644, O_RDWR, user()), "create");
  expect_eperm(fs_->mkdir(dir.ino, "sub", 0755, user()), "mkdir");
  expect_eperm(fs_->symlink(dir.ino, "s", "f", user()), "symlink");
  expect_eperm(fs_->link(outside.ino, dir.ino, "l"), "link into");
  expect_eperm(fs_->unlink(dir.ino, "f"), "unlink");
  expect_eperm(fs_->rename(dir.ino, "f", kRootIno, "moved", 0), "rename out");
  expect_eperm(fs_->rename(kRootIno, "outside", dir.ino, "in", 0), "rename in");
  expect_eperm(fs_->rmdir(kRootIno, "d"), "rmdir");
  // The files inside are not immutable themselves.
  write_str(f.ino, 0, "still writable");
  EXPECT_EQ(read_all(f.ino), "still writable");
}

TEST_F(InodeFlagsTest, AppendOnlyFileWritesOnlyAtItsEnd) {
  Attr dir = *fs_->mkdir(kRootIno, "d", 0755, user());
  Attr f = make_file(dir.ino, "log");
  fs_->release(f.ino);
  write_str(f.ino, 0, "first\n");
  set(f.ino, kInodeAppend);

  expect_eperm(open_close(f.ino, O_WRONLY), "open O_WRONLY");
  expect_eperm(open_close(f.ino, O_RDWR), "open O_RDWR");
  expect_eperm(open_close(f.ino, O_WRONLY | O_APPEND | O_TRUNC), "open O_TRUNC");
  EXPECT_TRUE(open_close(f.ino, O_WRONLY | O_APPEND).is_ok());
  EXPECT_TRUE(open_close(f.ino, O_RDONLY).is_ok());

  // O_APPEND: at the end whatever the offset.
  auto n = fs_->write(f.ino, 0, "second\n", 7, true);
  ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  EXPECT_EQ(read_all(f.ino), "first\nsecond\n");
  // With an offset (the writeback cache writing a page back): the bytes
  // below EOF must be the file's own; the rest is appended.
  n = fs_->write(f.ino, 0, "first\nsecond\nthird\n", 19, false);
  ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  EXPECT_EQ(*n, 19u);
  EXPECT_EQ(read_all(f.ino), "first\nsecond\nthird\n");
  expect_eperm(fs_->write(f.ino, 0, "FIRST\n", 6, false), "overwrite");
  expect_eperm(fs_->write(f.ino, 6, "SECOND\nfourth\n", 14, false), "overwrite and append");
  expect_eperm(fs_->write(f.ino, 100, "gap", 3, false), "write past EOF");
  EXPECT_EQ(read_all(f.ino), "first\nsecond\nthird\n");
  // At EOF exactly is an append.
  n = fs_->write(f.ino, 19, "4\n", 2, false);
  ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  EXPECT_EQ(read_all(f.ino), "first\nsecond\nthird\n4\n");

  SetAttr trunc;
  trunc.valid = SetAttr::kSize;
  trunc.size = 21;
  expect_eperm(fs_->setattr(f.ino, trunc), "truncate");
  SetAttr chmod;
  chmod.valid = SetAttr::kMode;
  chmod.mode = 0600;
  expect_eperm(fs_->setattr(f.ino, chmod), "chmod");
  expect_eperm(set_times(f.ino, SetAttr::kAtime | SetAttr::kMtime), "utimes");
  expect_eperm(set_times(f.ino, SetAttr::kMtime), "set mtime");
  // Touch (times set to now) and the writeback cache's mtime flush pass.
  EXPECT_TRUE(set_times(f.ino, SetAttr::kAtimeNow | SetAttr::kMtimeNow).is_ok());
  EXPECT_TRUE(set_times(f.ino, SetAttr::kMtime | SetAttr::kCtime, /*cached=*/true).is_ok());
  // Preallocation is allowed, nothing that removes or zeroes data.
  EXPECT_TRUE(fs_->fallocate(f.ino, FALLOC_FL_KEEP_SIZE, 0, 1 << 16).is_ok());
  expect_eperm(fs_->fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096),
               "punch");
  expect_eperm(fs_->fallocate(f.ino, FALLOC_FL_ZERO_RANGE, 0, 4096), "zero range");
  expect_eperm(fs_->unlink(dir.ino, "log"), "unlink");
  expect_eperm(fs_->rename(dir.ino, "log", dir.ino, "old", 0), "rename");
  expect_eperm(fs_->link(f.ino, dir.ino, "l"), "link");
  expect_eperm(fs_->setxattr(f.ino, "user.k", "v", 1, 0), "setxattr");
  Attr src = make_file(kRootIno, "src");
  fs_->release(src.ino);
  write_str(src.ino, 0, "x");
  expect_eperm(fs_->copy_file_range(src.ino, 0, f.ino, 21, 1), "copy_file_range into");
  EXPECT_EQ(read_all(f.ino), "first\nsecond\nthird\n4\n");
}

TEST_F(InodeFlagsTest, AppendOnlyDirectoryTakesNewNamesOnly) {
  Attr dir = *fs_->mkdir(kRootIno, "d", 0755, user());
  Attr f = make_file(dir.ino, "f");
  fs_->release(f.ino);
  Attr outside = make_file(kRootIno, "outside");
  fs_->release(outside.ino);
  set(dir.ino, kInodeAppend);
  Attr g = make_file(dir.ino, "g");
  fs_->release(g.ino);
  EXPECT_TRUE(fs_->rename(kRootIno, "outside", dir.ino, "in", 0).is_ok());
  expect_eperm(fs_->unlink(dir.ino, "f"), "unlink");
  expect_eperm(fs_->rename(dir.ino, "f", kRootIno, "moved", 0), "rename out");
  Attr another = make_file(kRootIno, "another");
  fs_->release(another.ino);
  expect_eperm(fs_->rename(kRootIno, "another", dir.ino, "f", 0), "rename over");
}

TEST_F(InodeFlagsTest, NoatimeFlagLeavesAtimeAlone) {
  MountOptions strict;
  strict.atime = AtimePolicy::kStrict;
  clean_remount(strict);
  Attr quiet = make_file(kRootIno, "quiet");
  Attr loud = make_file(kRootIno, "loud");
  write_str(quiet.ino, 0, "q");
  write_str(loud.ino, 0, "l");
  set(quiet.ino, kInodeNoatime);
  SetAttr old;
  old.valid = SetAttr::kAtime;
  old.atime = {1000, 0};
  ASSERT_TRUE(fs_->setattr(quiet.ino, old).is_ok());
  ASSERT_TRUE(fs_->setattr(loud.ino, old).is_ok());
  read_all(quiet.ino);
  read_all(loud.ino);
  EXPECT_EQ(fs_->getattr(quiet.ino)->atime.tv_sec, 1000);
  EXPECT_NE(fs_->getattr(loud.ino)->atime.tv_sec, 1000);
}

// Found by difftest against tmpfs: a new inode takes nodump and noatime
// from its directory (ext4's EXT4_FL_INHERITED, tmpfs's
// SHMEM_FL_INHERITED), never immutable or append-only.
TEST_F(InodeFlagsTest, NewInodesInheritNodumpAndNoatimeFromTheirDirectory) {
  Attr d = *fs_->mkdir(kRootIno, "d", 0755, user());
  set(d.ino, kInodeNodump | kInodeNoatime | kInodeAppend);
  Attr f = make_file(d.ino, "f");
  Attr sub = *fs_->mkdir(d.ino, "sub", 0755, user());
  auto link = fs_->symlink(d.ino, "l", "target", user());
  ASSERT_TRUE(link.is_ok()) << link.status().to_string();
  for (Ino ino : {f.ino, sub.ino, link->ino}) {
    EXPECT_EQ(fs_->get_flags(ino)->flags, kInodeNodump | kInodeNoatime) << "inode " << ino;
  }
  Attr plain = make_file(kRootIno, "plain");
  EXPECT_EQ(fs_->get_flags(plain.ino)->flags, 0u);
  crash_and_remount();
  EXPECT_EQ(fs_->get_flags(f.ino)->flags, kInodeNodump | kInodeNoatime);
}

TEST_F(InodeFlagsTest, FlagsAndProjectIdSurviveACrash) {
  Attr f = make_file(kRootIno, "f");
  Attr d = *fs_->mkdir(kRootIno, "d", 0755, user());
  set(f.ino, kInodeImmutable | kInodeNodump | kInodeNoatime, 1234);
  set(d.ino, kInodeAppend, 77);
  crash_and_remount();
  EXPECT_EQ(*fs_->get_flags(f.ino),
            (InodeAttrFlags{kInodeImmutable | kInodeNodump | kInodeNoatime, 1234}));
  EXPECT_EQ(*fs_->get_flags(d.ino), (InodeAttrFlags{kInodeAppend, 77}));
  expect_eperm(fs_->write(f.ino, 0, "x", 1, false), "write after remount");
  clean_remount();
  EXPECT_EQ(fs_->get_flags(f.ino)->project_id, 1234u);
}

// The first immutable or append-only inode marks the superblock, in the
// same transaction: a reader that does not know the flags (and so would
// not enforce them) then mounts read-only. This reader mounts read-write.
TEST_F(InodeFlagsTest, SealFlagMarksTheSuperblockForOlderReaders) {
  auto ro_compat = [&] { return read_superblock(fs_->region())->feature_ro_compat; };
  Attr f = make_file(kRootIno, "f");
  EXPECT_EQ(ro_compat(), 0u);
  set(f.ino, kInodeNodump | kInodeNoatime, 5);
  EXPECT_EQ(ro_compat(), 0u);
  set(f.ino, kInodeAppend);
  EXPECT_EQ(ro_compat(), format::kFeatureRoCompatSealFlags);
  crash_and_remount();
  EXPECT_EQ(ro_compat(), format::kFeatureRoCompatSealFlags);
  set(f.ino, 0);
  clean_remount();
  EXPECT_EQ(ro_compat(), format::kFeatureRoCompatSealFlags);  // never cleared
  Attr g = make_file(kRootIno, "g");
  write_str(g.ino, 0, "still writable");
}

// A gate that reports chosen inodes sealed (leased).
class SealedGate final : public LayoutGate {
 public:
  bool sealed(Ino ino) override { return leased.count(ino) != 0; }
  std::set<Ino> leased;
};

TEST_F(InodeFlagsTest, DirectMappingsOfSealedFiles) {
  SealedGate gate;
  MountOptions options;
  options.gate = &gate;
  clean_remount(options);
  Attr f = make_file(kRootIno, "f");
  write_str(f.ino, 0, std::string(8192, 'a'));
  Attr holey = make_file(kRootIno, "holey");
  write_str(holey.ino, 8192, std::string(4096, 'b'));

  // Making a leased file immutable or append-only first breaks its leases;
  // other flags need no break.
  gate.leased.insert(f.ino);
  FakeFlagsCaller r = root();
  EXPECT_TRUE(fs_->set_flags(f.ino, {kInodeNodump, 0}, r).is_ok());
  Status sealed = fs_->set_flags(f.ino, {kInodeImmutable, 0}, r);
  EXPECT_TRUE(is_layout_sealed(sealed)) << sealed.to_string();
  EXPECT_EQ(fs_->get_flags(f.ino)->flags, kInodeNodump);
  gate.leased.clear();
  set(f.ino, kInodeImmutable);
  set(holey.ino, kInodeImmutable);

  auto lock = fs_->lock_layout(f.ino);
  ASSERT_TRUE(lock.is_ok());
  expect_eperm(fs_->layout_extents(**lock, 0, 8192, kLayoutWritable), "writable map");
  auto read_only = fs_->layout_extents(**lock, 0, 8192, 0);
  EXPECT_TRUE(read_only.is_ok()) << read_only.status().to_string();
  lock->reset();
  // ALLOCATE would change an immutable file's block map: refused, and the
  // hole stays a hole.
  auto hl = fs_->lock_layout(holey.ino);
  ASSERT_TRUE(hl.is_ok());
  expect_eperm(fs_->layout_extents(**hl, 0, 12288, kLayoutAllocate), "allocate");
  EXPECT_EQ(fs_->layout_extents(**hl, 0, 12288, 0).status().code(), Code::kNoData);
  hl->reset();

  set(f.ino, kInodeAppend);
  auto al = fs_->lock_layout(f.ino);
  ASSERT_TRUE(al.is_ok());
  expect_eperm(fs_->layout_extents(**al, 0, 8192, kLayoutWritable), "writable map, append-only");
  EXPECT_TRUE(fs_->layout_extents(**al, 0, 8192, 0).is_ok());
}

}  // namespace
}  // namespace sealfs::testing_meta
