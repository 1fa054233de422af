// Set-id bits: the kernel's rules (setattr_should_drop_suidgid and chown's)
// as setid_bits_to_drop applies them, and their effect through
// Filesystem::drop_setid and setattr, durable across a crash.
#include <sys/stat.h>

#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;

// A caller with fixed answers that counts how often it was asked.
class FakeCaller final : public SetidCaller {
 public:
  FakeCaller(bool fsetid, uint32_t group) : fsetid_(fsetid), group_(group) {}
  bool has_fsetid() override {
    ++asked;
    return fsetid_;
  }
  bool in_group(uint32_t gid) override {
    ++asked;
    return gid == group_;
  }
  bool may_chmod(uint32_t) override { return owner; }
  int asked = 0;
  bool owner = true;  // owns the file, or has CAP_FOWNER

 private:
  bool fsetid_;
  uint32_t group_;
};

TEST(SetidRules, ContentChange) {
  FakeCaller outsider(false, 7), member(false, 1000), privileged(true, 7);
  // S_ISUID always; S_ISGID with group execute.
  EXPECT_EQ(setid_bits_to_drop(S_IFREG | 06777, 1000, member), uint32_t{S_ISUID | S_ISGID});
  // S_ISGID without group execute: kept for a member, dropped for others.
  EXPECT_EQ(setid_bits_to_drop(S_IFREG | 02666, 1000, member), 0u);
  EXPECT_EQ(setid_bits_to_drop(S_IFREG | 02666, 1000, outsider), uint32_t{S_ISGID});
  EXPECT_EQ(setid_bits_to_drop(S_IFREG | 06666, 1000, member), uint32_t{S_ISUID});
  // CAP_FSETID keeps everything.
  EXPECT_EQ(setid_bits_to_drop(S_IFREG | 06777, 1000, privileged), 0u);
  // Only regular files.
  EXPECT_EQ(setid_bits_to_drop(S_IFDIR | 02777, 1000, outsider), 0u);
  // A file without set-id bits never asks about the caller.
  FakeCaller counted(false, 7);
  EXPECT_EQ(setid_bits_to_drop(S_IFREG | 0777, 1000, counted), 0u);
  EXPECT_EQ(counted.asked, 0);
}

TEST(SetidRules, Chown) {
  FakeCaller outsider(false, 7), privileged(true, 7);
  // S_ISUID whoever asks, S_ISGID with group execute whoever asks.
  EXPECT_EQ(setid_bits_to_drop_on_chown(S_IFREG | 06755, 0, &privileged),
            uint32_t{S_ISUID | S_ISGID});
  EXPECT_EQ(setid_bits_to_drop_on_chown(S_IFREG | 06745, 0, &privileged), uint32_t{S_ISUID});
  EXPECT_EQ(setid_bits_to_drop_on_chown(S_IFREG | 02745, 0, &outsider), uint32_t{S_ISGID});
  EXPECT_EQ(setid_bits_to_drop_on_chown(S_IFREG | 02745, 0, nullptr), 0u);
  EXPECT_EQ(setid_bits_to_drop_on_chown(S_IFDIR | 06755, 0, &outsider), 0u);
}

class SetidTest : public MetaTest {
 protected:
  void SetUp() override { format(); }
  Attr setid_file(uint32_t mode) {
    Attr f = make_file(kRootIno, "f", 0644);
    SetAttr s;
    s.valid = SetAttr::kMode;
    s.mode = mode;
    auto a = fs_->setattr(f.ino, s);
    EXPECT_TRUE(a.is_ok());
    return f;
  }
  uint32_t mode_of(Ino ino) {
    auto a = fs_->getattr(ino);
    EXPECT_TRUE(a.is_ok());
    return a.is_ok() ? a->mode & 07777 : 0;
  }
};

TEST_F(SetidTest, DropSetidIsDurable) {
  Attr f = setid_file(06777);
  FakeCaller outsider(false, 7);
  auto dropped = fs_->drop_setid(f.ino, outsider);
  ASSERT_TRUE(dropped.is_ok()) << dropped.status().to_string();
  EXPECT_TRUE(*dropped);
  EXPECT_EQ(mode_of(f.ino), 0777u);
  crash_and_remount();
  EXPECT_EQ(mode_of(f.ino), 0777u);
  // Nothing left: no change, no transaction.
  dropped = fs_->drop_setid(f.ino, outsider);
  ASSERT_TRUE(dropped.is_ok());
  EXPECT_FALSE(*dropped);
}

TEST_F(SetidTest, TruncateAndChownClearByTheCaller) {
  Attr f = setid_file(06777);
  SetAttr t;
  t.valid = SetAttr::kSize;
  t.size = 10;
  t.caller = std::make_shared<FakeCaller>(true, 7);  // CAP_FSETID: kept
  ASSERT_TRUE(fs_->setattr(f.ino, t).is_ok());
  EXPECT_EQ(mode_of(f.ino), 06777u);
  t.caller = std::make_shared<FakeCaller>(false, 7);
  ASSERT_TRUE(fs_->setattr(f.ino, t).is_ok());
  EXPECT_EQ(mode_of(f.ino), 0777u);

  SetAttr m;
  m.valid = SetAttr::kMode;
  m.mode = 04745;
  ASSERT_TRUE(fs_->setattr(f.ino, m).is_ok());
  // chown to the same owner still clears S_ISUID.
  SetAttr c;
  c.valid = SetAttr::kUid;
  c.uid = user().uid;
  ASSERT_TRUE(fs_->setattr(f.ino, c).is_ok());
  EXPECT_EQ(mode_of(f.ino), 0745u);
  crash_and_remount();
  EXPECT_EQ(mode_of(f.ino), 0745u);
}

// chown(f, -1, -1): the chown rule for a caller that may chmod the file, the
// ctime moved; nothing at all for anyone else; directories keep S_ISGID.
TEST_F(SetidTest, ChownKeepingTheOwnerClearsForTheOwnerOnly) {
  const Attr f = *fs_->getattr(setid_file(06755).ino);
  auto stranger = std::make_shared<FakeCaller>(false, 7);
  stranger->owner = false;
  SetAttr k;
  k.valid = SetAttr::kKeepOwner;
  k.caller = stranger;
  auto a = fs_->setattr(f.ino, k);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->mode & 07777, 06755u);
  EXPECT_EQ(a->ctime.tv_nsec, f.ctime.tv_nsec);
  EXPECT_EQ(a->ctime.tv_sec, f.ctime.tv_sec);

  k.caller = std::make_shared<FakeCaller>(true, 7);  // the owner, even with CAP_FSETID
  a = fs_->setattr(f.ino, k);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->mode & 07777, 0755u);
  EXPECT_TRUE(a->ctime.tv_sec != f.ctime.tv_sec || a->ctime.tv_nsec != f.ctime.tv_nsec);
  crash_and_remount();
  EXPECT_EQ(mode_of(f.ino), 0755u);

  auto d = fs_->mkdir(kRootIno, "d", 0755, user());
  ASSERT_TRUE(d.is_ok());
  SetAttr m;
  m.valid = SetAttr::kMode;
  m.mode = 02755;
  ASSERT_TRUE(fs_->setattr(d->ino, m).is_ok());
  ASSERT_TRUE(fs_->setattr(d->ino, k).is_ok());
  EXPECT_EQ(mode_of(d->ino), 02755u);
}

}  // namespace
}  // namespace sealfs::testing_meta
