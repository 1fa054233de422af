#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <cstring>
#include <map>
#include <set>

#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;

std::map<std::string, Ino> list_dir(Filesystem& fs, Ino dir) {
  std::map<std::string, Ino> out;
  Status s = fs.readdir(dir, 0, [&](const DirEntry& e) {
    out[std::string(e.name)] = e.ino;
    return true;
  });
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return out;
}

class NamespaceTest : public MetaTest {
 protected:
  void SetUp() override { format(); }
};

TEST_F(NamespaceTest, RootIsEmptyDirectory) {
  auto a = fs_->getattr(kRootIno);
  ASSERT_TRUE(a.is_ok());
  EXPECT_TRUE(S_ISDIR(a->mode));
  EXPECT_EQ(a->nlink, 2u);
  auto entries = list_dir(*fs_, kRootIno);
  EXPECT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries["."], kRootIno);
  EXPECT_EQ(entries[".."], kRootIno);
}

TEST_F(NamespaceTest, CreateLookupGetattrSurviveCrash) {
  Attr f = make_file(kRootIno, "hello", 0640);
  EXPECT_EQ(f.uid, 1000u);
  EXPECT_EQ(f.gid, 1000u);
  EXPECT_EQ(f.mode, S_IFREG | 0640u);
  auto l = fs_->lookup(kRootIno, "hello");
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(l->ino, f.ino);
  crash_and_remount();
  auto l2 = fs_->lookup(kRootIno, "hello");
  ASSERT_TRUE(l2.is_ok()) << l2.status().to_string();
  EXPECT_EQ(l2->ino, f.ino);
  EXPECT_EQ(l2->mode, S_IFREG | 0640u);
}

TEST_F(NamespaceTest, ErrorCodes) {
  make_file(kRootIno, "f");
  auto d = fs_->mkdir(kRootIno, "d", 0755, user());
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(fs_->create(kRootIno, "f", 0644, O_RDWR | O_CREAT | O_EXCL, user()).status().code(),
            Code::kExists);
  EXPECT_EQ(fs_->mkdir(kRootIno, "f", 0755, user()).status().code(), Code::kExists);
  EXPECT_EQ(fs_->lookup(kRootIno, "nope").status().code(), Code::kNotFound);
  EXPECT_EQ(fs_->lookup(kRootIno, std::string(256, 'x')).status().code(), Code::kNameTooLong);
  EXPECT_EQ(fs_->mkdir(kRootIno, std::string(256, 'x'), 0755, user()).status().code(),
            Code::kNameTooLong);
  EXPECT_TRUE(fs_->mkdir(kRootIno, std::string(255, 'x'), 0755, user()).is_ok());
  EXPECT_EQ(fs_->unlink(kRootIno, "d").code(), Code::kIsDir);
  EXPECT_EQ(fs_->rmdir(kRootIno, "f").code(), Code::kNotDir);
  EXPECT_EQ(fs_->unlink(kRootIno, "nope").code(), Code::kNotFound);
  Attr f = *fs_->lookup(kRootIno, "f");
  EXPECT_EQ(fs_->lookup(f.ino, "x").status().code(), Code::kNotDir);
  EXPECT_EQ(fs_->create(f.ino, "x", 0644, O_RDWR, user()).status().code(), Code::kNotDir);
  ASSERT_TRUE(fs_->mkdir(d->ino, "sub", 0755, user()).is_ok());
  EXPECT_EQ(fs_->rmdir(kRootIno, "d").code(), Code::kNotEmpty);
  EXPECT_EQ(fs_->link(d->ino, kRootIno, "dlink").status().code(), Code::kPermission);
  EXPECT_EQ(fs_->readlink(f.ino).status().code(), Code::kInvalid);
}

TEST_F(NamespaceTest, MkdirRmdirLinkCounts) {
  auto d = fs_->mkdir(kRootIno, "d", 0755, user());
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->nlink, 2u);
  EXPECT_EQ(fs_->getattr(kRootIno)->nlink, 3u);
  auto s = fs_->mkdir(d->ino, "s", 0755, user());
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(fs_->getattr(d->ino)->nlink, 3u);
  auto entries = list_dir(*fs_, s->ino);
  EXPECT_EQ(entries[".."], d->ino);
  ASSERT_TRUE(fs_->rmdir(d->ino, "s").is_ok());
  EXPECT_EQ(fs_->getattr(d->ino)->nlink, 2u);
  ASSERT_TRUE(fs_->rmdir(kRootIno, "d").is_ok());
  EXPECT_EQ(fs_->getattr(kRootIno)->nlink, 2u);
  crash_and_remount();
  EXPECT_EQ(fs_->getattr(kRootIno)->nlink, 2u);
  EXPECT_EQ(fs_->lookup(kRootIno, "d").status().code(), Code::kNotFound);
}

TEST_F(NamespaceTest, SetgidDirectoryInheritance) {
  auto d = fs_->mkdir(kRootIno, "g", 02775, Cred{0, 50, 0, 1});
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->mode & 07777, 02775u);
  auto f = fs_->create(d->ino, "f", 0644, O_RDWR, user());
  ASSERT_TRUE(f.is_ok());
  EXPECT_EQ(f->gid, 50u);
  EXPECT_EQ(f->uid, 1000u);
  auto sub = fs_->mkdir(d->ino, "sub", 0755, user());
  ASSERT_TRUE(sub.is_ok());
  EXPECT_EQ(sub->gid, 50u);
  EXPECT_TRUE(sub->mode & S_ISGID);
}

TEST_F(NamespaceTest, Symlinks) {
  auto s = fs_->symlink(kRootIno, "short", "target/path", user());
  ASSERT_TRUE(s.is_ok());
  EXPECT_TRUE(S_ISLNK(s->mode));
  EXPECT_EQ(s->size, 11u);
  std::string long_target(3000, 'a');
  auto l = fs_->symlink(kRootIno, "long", long_target, user());
  ASSERT_TRUE(l.is_ok());
  std::string edge(144, 'b');
  ASSERT_TRUE(fs_->symlink(kRootIno, "edge", edge, user()).is_ok());
  EXPECT_EQ(fs_->symlink(kRootIno, "toolong", std::string(4096, 'c'), user()).status().code(),
            Code::kNameTooLong);
  crash_and_remount();
  EXPECT_EQ(*fs_->readlink(s->ino), "target/path");
  EXPECT_EQ(*fs_->readlink(l->ino), long_target);
  EXPECT_EQ(*fs_->readlink(fs_->lookup(kRootIno, "edge")->ino), edge);
}

TEST_F(NamespaceTest, HardLinks) {
  Attr f = make_file(kRootIno, "a");
  auto l = fs_->link(f.ino, kRootIno, "b");
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(l->nlink, 2u);
  EXPECT_EQ(fs_->link(f.ino, kRootIno, "b").status().code(), Code::kExists);
  ASSERT_TRUE(fs_->unlink(kRootIno, "a").is_ok());
  EXPECT_EQ(fs_->getattr(f.ino)->nlink, 1u);
  crash_and_remount();
  EXPECT_EQ(fs_->lookup(kRootIno, "b")->nlink, 1u);
}

TEST_F(NamespaceTest, RenameBasics) {
  Attr a = make_file(kRootIno, "a");
  Attr b = make_file(kRootIno, "b");
  auto d = fs_->mkdir(kRootIno, "d", 0755, user());
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(fs_->rename(kRootIno, "a", kRootIno, "b", RENAME_NOREPLACE).code(), Code::kExists);
  EXPECT_EQ(fs_->rename(kRootIno, "a", kRootIno, "zz", RENAME_EXCHANGE).code(), Code::kNotFound);
  EXPECT_EQ(fs_->rename(kRootIno, "a", kRootIno, "d", 0).code(), Code::kIsDir);
  EXPECT_EQ(fs_->rename(kRootIno, "d", kRootIno, "a", 0).code(), Code::kNotDir);
  EXPECT_EQ(fs_->rename(kRootIno, "d", d->ino, "x", 0).code(), Code::kInvalid);
  ASSERT_TRUE(fs_->rename(kRootIno, "a", kRootIno, "b", RENAME_EXCHANGE).is_ok());
  EXPECT_EQ(fs_->lookup(kRootIno, "a")->ino, b.ino);
  EXPECT_EQ(fs_->lookup(kRootIno, "b")->ino, a.ino);
  // Replace b (-> file a) with a (-> file b): file a loses its last name.
  ASSERT_TRUE(fs_->rename(kRootIno, "a", kRootIno, "b", 0).is_ok());
  EXPECT_EQ(fs_->lookup(kRootIno, "b")->ino, b.ino);
  EXPECT_EQ(fs_->lookup(kRootIno, "a").status().code(), Code::kNotFound);
  // Move into the directory and a directory across parents.
  ASSERT_TRUE(fs_->rename(kRootIno, "b", d->ino, "b2", 0).is_ok());
  auto e = fs_->mkdir(kRootIno, "e", 0755, user());
  ASSERT_TRUE(e.is_ok());
  ASSERT_TRUE(fs_->rename(kRootIno, "e", d->ino, "e", 0).is_ok());
  EXPECT_EQ(fs_->getattr(kRootIno)->nlink, 3u);
  EXPECT_EQ(fs_->getattr(d->ino)->nlink, 3u);
  EXPECT_EQ(list_dir(*fs_, e->ino)[".."], d->ino);
  // Replace an empty directory.
  ASSERT_TRUE(fs_->mkdir(kRootIno, "empty", 0755, user()).is_ok());
  ASSERT_TRUE(fs_->rename(d->ino, "e", kRootIno, "empty", 0).is_ok());
  EXPECT_EQ(fs_->getattr(kRootIno)->nlink, 4u);
  EXPECT_EQ(fs_->getattr(d->ino)->nlink, 2u);
  crash_and_remount();
  EXPECT_EQ(fs_->lookup(kRootIno, "empty")->ino, e->ino);
  EXPECT_EQ(fs_->lookup(d->ino, "b2")->ino, b.ino);
  EXPECT_EQ(fs_->getattr(kRootIno)->nlink, 4u);
  EXPECT_EQ(fs_->getattr(a.ino).status().code(), Code::kStale);
}

TEST_F(NamespaceTest, ManyFilesAndReaddirCookies) {
  std::set<std::string> names;
  for (int i = 0; i < 1000; ++i) {
    std::string n = "file_with_a_longish_name_" + std::to_string(i);
    auto a = fs_->mknod(kRootIno, n, S_IFREG | 0644, 0, user());
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    names.insert(n);
  }
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(fs_->lookup(kRootIno, "file_with_a_longish_name_" + std::to_string(i)).is_ok());
  }
  // Read in pages of 7 while removing and adding entries: every entry that
  // exists throughout is seen exactly once.
  std::map<std::string, int> seen;
  uint64_t cookie = 0;
  int removed = 0;
  while (true) {
    int got = 0;
    ASSERT_TRUE(fs_->readdir(kRootIno, cookie, [&](const DirEntry& e) {
      seen[std::string(e.name)]++;
      cookie = e.next_cookie;
      return ++got < 7;
    }).is_ok());
    if (got == 0) break;
    if (removed < 300) {
      std::string victim = "file_with_a_longish_name_" + std::to_string(999 - removed);
      ASSERT_TRUE(fs_->unlink(kRootIno, victim).is_ok());
      names.erase(victim);
      ++removed;
      ASSERT_TRUE(fs_->mknod(kRootIno, "new" + std::to_string(removed), S_IFREG | 0644, 0, user()).is_ok());
    }
  }
  for (int i = 0; i < 700; ++i) {
    EXPECT_EQ(seen["file_with_a_longish_name_" + std::to_string(i)], 1) << i;
  }
  for (auto& [n, c] : seen) EXPECT_LE(c, 1) << n;
  crash_and_remount();
  auto entries = list_dir(*fs_, kRootIno);
  EXPECT_EQ(entries.size(), 1000u + 2u);
}

}  // namespace
}  // namespace sealfs::testing_meta

namespace sealfs::testing_meta {
namespace {

int64_t nanoseconds(const timespec& t) { return t.tv_sec * 1'000'000'000ll + t.tv_nsec; }

// The birth time lives in the slot only (issue 12: 8 bytes less per cached
// inode): the create writes its ctime there, and no later change, dropped
// inode or remount moves it. A rename's whiteout, made in the rename's
// transaction, gets its own.
TEST_F(NamespaceTest, TheBirthTimeIsTheCreatesAndNeverMoves) {
  auto sb = read_superblock(fs_->region());
  ASSERT_TRUE(sb.is_ok());
  const Geometry geo = sb->geometry;
  auto birth_time = [&](Ino ino) {
    format::DiskInode d{};
    std::memcpy(&d, fs_->region().data() + inode_offset(geo, ino), sizeof(d));
    return static_cast<int64_t>(d.btime_ns.get());
  };
  Attr f = make_file(kRootIno, "f");
  const int64_t born = nanoseconds(f.ctime);
  EXPECT_GT(born, 0);
  EXPECT_EQ(birth_time(f.ino), born);
  auto d = fs_->mkdir(kRootIno, "d", 0755, user());
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(birth_time(d->ino), nanoseconds(d->ctime));

  auto change = [&] {
    SetAttr s;
    s.valid = SetAttr::kMode;
    s.mode = 0600;
    auto a = fs_->setattr(f.ino, s);
    ASSERT_TRUE(a.is_ok());
    ASSERT_TRUE(fs_->write(f.ino, 0, "bytes", 5, false).is_ok());
    EXPECT_EQ(birth_time(f.ino), born);
  };
  ASSERT_NO_FATAL_FAILURE(change());
  ASSERT_TRUE(fs_->rename(kRootIno, "f", kRootIno, "g", RENAME_WHITEOUT).is_ok());
  EXPECT_EQ(birth_time(f.ino), born);
  auto whiteout = fs_->lookup(kRootIno, "f");
  ASSERT_TRUE(whiteout.is_ok());
  EXPECT_EQ(birth_time(whiteout->ino), nanoseconds(whiteout->ctime));
  EXPECT_NE(whiteout->ino, f.ino);
  fs_->trim_inode_cache(0);
  ASSERT_NO_FATAL_FAILURE(change());
  clean_remount();
  ASSERT_NO_FATAL_FAILURE(change());
  crash_and_remount();
  EXPECT_EQ(birth_time(f.ino), born);
  auto now = fs_->getattr(f.ino);
  ASSERT_TRUE(now.is_ok());
  EXPECT_GT(nanoseconds(now->ctime), born);
}

}  // namespace
}  // namespace sealfs::testing_meta
