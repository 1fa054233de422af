// Lookups of "." and ".." by inode number, as the kernel's export
// operations send them (open_by_handle_at, nfsd): "." of any live inode is
// that inode with its generation, "." of a removed or freed one is kStale,
// ".." follows the directory wherever rename and remount put it.
#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <string>
#include <thread>

#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;

class HandleLookupTest : public MetaTest {
 protected:
  void SetUp() override { format(); }
  // Drops the create's open and lookup references: the file goes if unlinked.
  void let_go(Ino ino) {
    fs_->release(ino);
    fs_->forget(ino, 1);
  }
};

TEST_F(HandleLookupTest, DotOfEveryTypeIsTheInodeItself) {
  Attr f = make_file(kRootIno, "f");
  auto d = fs_->mkdir(kRootIno, "d", 0755, user());
  ASSERT_TRUE(d.is_ok());
  auto s = fs_->symlink(kRootIno, "s", "f", user());
  ASSERT_TRUE(s.is_ok());
  auto p = fs_->mknod(kRootIno, "p", S_IFIFO | 0600, 0, user());
  ASSERT_TRUE(p.is_ok());
  for (const Attr& a : {f, *d, *s, *p}) {
    auto self = fs_->lookup(a.ino, ".");
    ASSERT_TRUE(self.is_ok()) << a.ino << ": " << self.status().to_string();
    EXPECT_EQ(self->ino, a.ino);
    EXPECT_EQ(self->mode, a.mode);
    EXPECT_EQ(self->generation, a.generation);
    EXPECT_NE(self->generation, 0u);
  }
  auto root = fs_->lookup(kRootIno, ".");
  ASSERT_TRUE(root.is_ok());
  EXPECT_EQ(root->ino, kRootIno);
}

TEST_F(HandleLookupTest, DotTakesAReferenceTheKernelForgets) {
  Attr f = make_file(kRootIno, "f");
  ASSERT_TRUE(fs_->lookup(f.ino, ".").is_ok());
  ASSERT_TRUE(fs_->unlink(kRootIno, "f").is_ok());
  let_go(f.ino);
  EXPECT_TRUE(fs_->getattr(f.ino).is_ok()) << "the '.' lookup's reference holds it";
  fs_->forget(f.ino, 1);
  EXPECT_EQ(fs_->getattr(f.ino).status().code(), Code::kStale);
}

TEST_F(HandleLookupTest, DotOfARemovedOrFreedInodeIsStale) {
  Attr f = make_file(kRootIno, "f");
  ASSERT_TRUE(fs_->unlink(kRootIno, "f").is_ok());
  // Still open: alive for its holders, but no handle may reach it again.
  ASSERT_TRUE(fs_->getattr(f.ino).is_ok());
  EXPECT_EQ(fs_->lookup(f.ino, ".").status().code(), Code::kStale);
  let_go(f.ino);
  EXPECT_EQ(fs_->lookup(f.ino, ".").status().code(), Code::kStale);
  EXPECT_EQ(fs_->lookup(f.ino + 100, ".").status().code(), Code::kStale);  // never used
  EXPECT_FALSE(fs_->lookup(1ull << 40, ".").is_ok());                    // beyond the table
}

TEST_F(HandleLookupTest, AReusedNumberAnswersWithANewGenerationAcrossRemounts) {
  Attr f = make_file(kRootIno, "f");
  ASSERT_TRUE(fs_->unlink(kRootIno, "f").is_ok());
  let_go(f.ino);
  Attr g = make_file(kRootIno, "g");
  ASSERT_EQ(g.ino, f.ino) << "the lowest free number is reused";
  EXPECT_EQ(g.generation, f.generation + 1);
  auto self = fs_->lookup(g.ino, ".");
  ASSERT_TRUE(self.is_ok());
  EXPECT_EQ(self->generation, g.generation);
  fs_->forget(g.ino, 1);

  // A freed slot keeps its generation on the media: the next use after a
  // remount (clean or not) still moves on from it.
  ASSERT_TRUE(fs_->unlink(kRootIno, "g").is_ok());
  let_go(g.ino);
  clean_remount();
  Attr h = make_file(kRootIno, "h");
  ASSERT_EQ(h.ino, f.ino);
  EXPECT_EQ(h.generation, g.generation + 1);
  ASSERT_TRUE(fs_->unlink(kRootIno, "h").is_ok());
  let_go(h.ino);
  crash_and_remount();
  Attr i = make_file(kRootIno, "i");
  ASSERT_EQ(i.ino, f.ino);
  EXPECT_EQ(i.generation, h.generation + 1);
  // Every kind of create bumps it, not only files.
  ASSERT_TRUE(fs_->unlink(kRootIno, "i").is_ok());
  let_go(i.ino);
  auto d = fs_->mkdir(kRootIno, "d", 0755, user());
  ASSERT_TRUE(d.is_ok());
  ASSERT_EQ(d->ino, f.ino);
  EXPECT_EQ(d->generation, i.generation + 1);
  ASSERT_TRUE(fs_->rmdir(kRootIno, "d").is_ok());
  fs_->forget(d->ino, 1);
  auto s = fs_->symlink(kRootIno, "s", "target", user());
  ASSERT_TRUE(s.is_ok());
  ASSERT_EQ(s->ino, f.ino);
  EXPECT_EQ(s->generation, d->generation + 1);
}

TEST_F(HandleLookupTest, DotDotFollowsRenameAndRemount) {
  auto a = fs_->mkdir(kRootIno, "a", 0755, user());
  auto c = fs_->mkdir(kRootIno, "c", 0755, user());
  ASSERT_TRUE(a.is_ok() && c.is_ok());
  auto b = fs_->mkdir(a->ino, "b", 0755, user());
  ASSERT_TRUE(b.is_ok());
  auto up = fs_->lookup(b->ino, "..");
  ASSERT_TRUE(up.is_ok());
  EXPECT_EQ(up->ino, a->ino);
  EXPECT_EQ(up->generation, a->generation);
  ASSERT_TRUE(fs_->rename(a->ino, "b", c->ino, "b", 0, user()).is_ok());
  EXPECT_EQ(fs_->lookup(b->ino, "..")->ino, c->ino);
  clean_remount();
  EXPECT_EQ(fs_->lookup(b->ino, "..")->ino, c->ino);
  EXPECT_EQ(fs_->lookup(c->ino, "..")->ino, kRootIno);
  EXPECT_EQ(fs_->lookup(kRootIno, "..")->ino, kRootIno);

  Attr f = make_file(c->ino, "f");
  EXPECT_EQ(fs_->lookup(f.ino, "..").status().code(), Code::kNotDir);
  // A removed directory has no parent to climb to.
  ASSERT_TRUE(fs_->lookup(b->ino, ".").is_ok());  // held, as the kernel would
  ASSERT_TRUE(fs_->rmdir(c->ino, "b").is_ok());
  EXPECT_EQ(fs_->lookup(b->ino, "..").status().code(), Code::kStale);
  EXPECT_EQ(fs_->lookup(b->ino, ".").status().code(), Code::kStale);
}

// ".." is read under the directory's lock, the parent locked after it is
// released: a rename out of the parent, its rmdir and the reuse of its
// number as a file all fit between the two. The answer must be a live
// directory that was the parent, or kStale; never the file that took the
// number (the first version answered with it).
TEST_F(HandleLookupTest, DotDotRacingAMoveAndTheParentsRemovalIsNeverAFile) {
  auto p = fs_->mkdir(kRootIno, "p", 0755, user());
  ASSERT_TRUE(p.is_ok());
  auto c = fs_->mkdir(p->ino, "c", 0755, user());
  ASSERT_TRUE(c.is_ok());
  fs_->forget(p->ino, 1);  // the kernel's reference: p is freed at its rmdir
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> answers{0}, reused{0};
  std::atomic<bool> failed{false};
  std::string bad;  // the climber's, read after join
  std::thread climber([&] {
    while (!stop.load() && !failed.load()) {
      auto up = fs_->lookup(c->ino, "..");
      if (!up.is_ok()) {
        if (up.status().code() != Code::kStale) {
          bad = up.status().to_string();
          failed.store(true);
        }
        continue;
      }
      answers.fetch_add(1);
      if (!S_ISDIR(up->mode)) {
        bad = "'..' answered inode " + std::to_string(up->ino) + " mode " +
              std::to_string(up->mode);
        failed.store(true);
      }
      fs_->forget(up->ino, 1);
    }
  });
  Ino parent = p->ino;
  // Without the re-check this failed about one run in five (2 cores).
  for (int i = 0; i < 3000 && !failed.load(); ++i) {
    ASSERT_TRUE(fs_->rename(parent, "c", kRootIno, "c", 0, user()).is_ok());
    ASSERT_TRUE(fs_->rmdir(kRootIno, "p").is_ok());
    // The parent's number, free now, goes to a file (lowest free first).
    Attr f = make_file(kRootIno, "f");
    reused.fetch_add(f.ino == parent ? 1 : 0);
    let_go(f.ino);
    ASSERT_TRUE(fs_->unlink(kRootIno, "f").is_ok());
    auto again = fs_->mkdir(kRootIno, "p", 0755, user());
    ASSERT_TRUE(again.is_ok());
    fs_->forget(again->ino, 1);
    parent = again->ino;
    ASSERT_TRUE(fs_->rename(kRootIno, "c", parent, "c", 0, user()).is_ok());
  }
  stop.store(true);
  climber.join();
  EXPECT_EQ(bad, "");
  EXPECT_GT(answers.load(), 0u);
  EXPECT_GT(reused.load(), 0u) << "the file never took the parent's number: the race is not exercised";
}

}  // namespace
}  // namespace sealfs::testing_meta
