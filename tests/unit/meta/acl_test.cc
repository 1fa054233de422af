// POSIX ACLs in the metadata layer: the xattr codec and its validation (the
// kernel's posix_acl_from_xattr and posix_acl_valid), and the rules a FUSE
// daemon must apply itself with FUSE_CAP_POSIX_ACL: the mode follows a set
// access ACL (S_ISGID cleared for an outsider), an ACL the mode says in
// full is stored as the mode, chmod rewrites the stored ACL, and a new
// inode inherits its parent's default ACL instead of the umask.
#include <sys/stat.h>

#include "meta/posix_acl.h"
#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;
using T = AclEntry;

std::vector<uint8_t> acl_bytes(const Acl& acl) { return encode_acl(acl); }

// owner rwx, user 1234 rw-, group r-x, mask rw-, other r--
Acl named_user_acl() {
  return {{T::kUserObj, 7, 0}, {T::kUser, 6, 1234}, {T::kGroupObj, 5, 0}, {T::kMask, 6, 0},
          {T::kOther, 4, 0}};
}

class Caller final : public SetidCaller {
 public:
  Caller(bool fsetid, uint32_t group) : fsetid_(fsetid), group_(group) {}
  bool has_fsetid() override { return fsetid_; }
  bool in_group(uint32_t gid) override { return gid == group_; }
  bool may_chmod(uint32_t) override { return true; }  // the ACL tests act as the owner

 private:
  bool fsetid_;
  uint32_t group_;
};

TEST(AclCodec, RoundTripsAndReadsTheModeBits) {
  std::vector<uint8_t> bytes = acl_bytes(named_user_acl());
  ASSERT_EQ(bytes.size(), 4u + 5 * 8);
  EXPECT_EQ(bytes[0], 2);  // version, little-endian
  auto parsed = parse_acl(bytes.data(), bytes.size());
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  ASSERT_EQ(parsed->size(), 5u);
  EXPECT_EQ((*parsed)[1].id, 1234u);
  EXPECT_EQ(acl_mode_bits(*parsed), 0764u);  // the group class is the mask
  EXPECT_FALSE(acl_is_mode(*parsed));
  Acl base = {{T::kUserObj, 6, 0}, {T::kGroupObj, 4, 0}, {T::kOther, 0, 0}};
  EXPECT_TRUE(acl_is_mode(base));
  EXPECT_EQ(acl_mode_bits(base), 0640u);
}

TEST(AclCodec, RefusesWhatTheKernelRefuses) {
  auto expect_invalid = [](const std::vector<uint8_t>& v, const char* what) {
    EXPECT_EQ(parse_acl(v.data(), v.size()).status().code(), Code::kInvalid) << what;
  };
  std::vector<uint8_t> good = acl_bytes(named_user_acl());
  std::vector<uint8_t> v = good;
  v[0] = 1;
  expect_invalid(v, "version 1");
  v = good;
  v.pop_back();
  expect_invalid(v, "a torn entry");
  expect_invalid({}, "no header");
  expect_invalid(acl_bytes({{T::kUserObj, 7, 0}, {T::kUser, 6, 5}, {T::kGroupObj, 5, 0},
                            {T::kOther, 4, 0}}),
                 "a named user without a mask");
  expect_invalid(acl_bytes({{T::kGroupObj, 5, 0}, {T::kUserObj, 7, 0}, {T::kOther, 4, 0}}),
                 "out of order");
  expect_invalid(acl_bytes({{T::kUserObj, 7, 0}, {T::kGroupObj, 5, 0}}), "no other entry");
  expect_invalid(acl_bytes({{T::kUserObj, 7, 0}, {T::kUserObj, 7, 0}, {T::kGroupObj, 5, 0},
                            {T::kOther, 4, 0}}),
                 "two owners");
  expect_invalid(acl_bytes({{T::kUserObj, 8, 0}, {T::kGroupObj, 5, 0}, {T::kOther, 4, 0}}),
                 "an unknown permission bit");
  expect_invalid(acl_bytes({{T::kUserObj, 7, 0}, {0x40, 5, 0}, {T::kOther, 4, 0}}),
                 "an unknown tag");
  expect_invalid(acl_bytes({{T::kUserObj, 7, 0}, {T::kUser, 6, ~0u}, {T::kGroupObj, 5, 0},
                            {T::kMask, 6, 0}, {T::kOther, 4, 0}}),
                 "a named user without an id");
  // The header alone is an empty ACL, not an error.
  auto empty = parse_acl(good.data(), 4);
  ASSERT_TRUE(empty.is_ok());
  EXPECT_TRUE(empty->empty());
}

TEST(AclRules, ChmodAndCreateMasq) {
  Acl acl = named_user_acl();
  acl_apply_mode(acl, 0750);
  EXPECT_EQ(acl[0].perm, 7);  // owner
  EXPECT_EQ(acl[1].perm, 6);  // the named user keeps its entry
  EXPECT_EQ(acl[2].perm, 5);  // the owning group too: the mask moved
  EXPECT_EQ(acl[3].perm, 5);
  EXPECT_EQ(acl[4].perm, 0);
  // create: 0666 asked under default rwx / rw- mask / r--: mode 0664.
  Acl def = named_user_acl();
  EXPECT_EQ(acl_create_masq(def, S_IFREG | 0666), uint32_t{S_IFREG | 0664});
  EXPECT_EQ(def[0].perm, 6);
  EXPECT_EQ(def[3].perm, 6);
  EXPECT_EQ(def[4].perm, 4);
}

class AclTest : public MetaTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(format()); }
  uint32_t mode_of(Ino ino) { return fs_->getattr(ino)->mode; }
  std::vector<uint8_t> stored(Ino ino, std::string_view name) {
    auto v = fs_->getxattr(ino, name);
    EXPECT_TRUE(v.is_ok()) << name << ": " << v.status().to_string();
    return v.is_ok() ? *v : std::vector<uint8_t>{};
  }
  Status set(Ino ino, std::string_view name, const Acl& acl, SetidCaller* caller = nullptr) {
    std::vector<uint8_t> v = acl_bytes(acl);
    return fs_->setxattr(ino, name, v.data(), v.size(), 0, caller);
  }
};

TEST_F(AclTest, AccessAclSetsTheModeAndIsStoredWhenItSaysMore) {
  Attr f = make_file(kRootIno, "f", 0600);
  ASSERT_TRUE(set(f.ino, kAclAccessXattr, named_user_acl()).is_ok());
  EXPECT_EQ(mode_of(f.ino), uint32_t{S_IFREG | 0764});
  EXPECT_EQ(stored(f.ino, kAclAccessXattr), acl_bytes(named_user_acl()));
  auto names = fs_->listxattr(f.ino);
  ASSERT_TRUE(names.is_ok());
  EXPECT_EQ(*names, std::vector<std::string>{std::string(kAclAccessXattr)});
  // An ACL the mode says in full replaces the stored one by the mode alone.
  ASSERT_TRUE(set(f.ino, kAclAccessXattr,
                  {{T::kUserObj, 6, 0}, {T::kGroupObj, 4, 0}, {T::kOther, 0, 0}})
                  .is_ok());
  EXPECT_EQ(mode_of(f.ino), uint32_t{S_IFREG | 0640});
  EXPECT_EQ(fs_->getxattr(f.ino, kAclAccessXattr).status().code(), Code::kNoData);
}

TEST_F(AclTest, AnInvalidAclIsRefusedAndTheOldOneKept) {
  Attr f = make_file(kRootIno, "f", 0600);
  ASSERT_TRUE(set(f.ino, kAclAccessXattr, named_user_acl()).is_ok());
  Acl no_mask = {{T::kUserObj, 7, 0}, {T::kUser, 6, 5}, {T::kGroupObj, 5, 0}, {T::kOther, 0, 0}};
  EXPECT_EQ(set(f.ino, kAclAccessXattr, no_mask).code(), Code::kInvalid);
  EXPECT_EQ(fs_->setxattr(f.ino, kAclAccessXattr, "junk", 4, 0).code(), Code::kInvalid);
  EXPECT_EQ(stored(f.ino, kAclAccessXattr), acl_bytes(named_user_acl()));
  EXPECT_EQ(mode_of(f.ino), uint32_t{S_IFREG | 0764});
  // Only directories have default ACLs; other system.* names stay refused.
  EXPECT_EQ(set(f.ino, kAclDefaultXattr, named_user_acl()).code(), Code::kAccess);
  EXPECT_EQ(fs_->setxattr(f.ino, "system.other", "x", 1, 0).code(), Code::kNotSupported);
}

// Found by difftest against tmpfs: removing an ACL sets it to none, which
// the kernel (ext4, tmpfs) answers with success when there was none.
TEST_F(AclTest, RemovingAnAbsentAclSucceedsAsSettingItToNone) {
  Attr f = make_file(kRootIno, "f", 0640);
  EXPECT_TRUE(fs_->removexattr(f.ino, kAclAccessXattr).is_ok());
  auto d = fs_->mkdir(kRootIno, "d", 0755, user());
  ASSERT_TRUE(d.is_ok());
  EXPECT_TRUE(fs_->removexattr(d->ino, kAclDefaultXattr).is_ok());
  EXPECT_EQ(mode_of(f.ino), uint32_t{S_IFREG | 0640});
  EXPECT_EQ(fs_->removexattr(f.ino, "user.absent").code(), Code::kNoData);
  ASSERT_TRUE(set(f.ino, kAclAccessXattr, named_user_acl()).is_ok());
  EXPECT_TRUE(fs_->removexattr(f.ino, kAclAccessXattr).is_ok());
  EXPECT_EQ(fs_->getxattr(f.ino, kAclAccessXattr).status().code(), Code::kNoData);
}

TEST_F(AclTest, SettingAnAccessAclClearsSetgidForAnOutsider) {
  Attr f = make_file(kRootIno, "f", 0600);
  SetAttr s;
  s.valid = SetAttr::kMode;
  s.mode = 02770;
  ASSERT_TRUE(fs_->setattr(f.ino, s).is_ok());
  Caller member(false, 1000), outsider(false, 7), privileged(true, 7);
  ASSERT_TRUE(set(f.ino, kAclAccessXattr, named_user_acl(), &member).is_ok());
  EXPECT_EQ(mode_of(f.ino), uint32_t{S_IFREG | 02764});
  ASSERT_TRUE(set(f.ino, kAclAccessXattr, named_user_acl(), &privileged).is_ok());
  EXPECT_EQ(mode_of(f.ino), uint32_t{S_IFREG | 02764});
  ASSERT_TRUE(set(f.ino, kAclAccessXattr, named_user_acl(), &outsider).is_ok());
  EXPECT_EQ(mode_of(f.ino), uint32_t{S_IFREG | 0764});
}

TEST_F(AclTest, ChmodRewritesTheMaskOfTheStoredAcl) {
  Attr f = make_file(kRootIno, "f", 0600);
  ASSERT_TRUE(set(f.ino, kAclAccessXattr, named_user_acl()).is_ok());
  SetAttr s;
  s.valid = SetAttr::kMode;
  s.mode = 0710;
  ASSERT_TRUE(fs_->setattr(f.ino, s).is_ok());
  auto acl = parse_acl(stored(f.ino, kAclAccessXattr).data(), 44);
  ASSERT_TRUE(acl.is_ok());
  EXPECT_EQ(acl_mode_bits(*acl), 0710u);
  EXPECT_EQ((*acl)[1].perm, 6);  // the named user's entry is not the mask
  EXPECT_EQ((*acl)[3].perm, 1);
  crash_and_remount();
  EXPECT_EQ(stored(f.ino, kAclAccessXattr), acl_bytes(*acl));
}

TEST_F(AclTest, NewInodesInheritTheDefaultAclAndIgnoreTheUmask) {
  auto d = fs_->mkdir(kRootIno, "d", 0777, user());
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->mode, uint32_t{S_IFDIR | 0755}) << "no default ACL at the root: the umask applies";
  ASSERT_TRUE(set(d->ino, kAclDefaultXattr, named_user_acl()).is_ok());
  EXPECT_EQ(mode_of(d->ino), uint32_t{S_IFDIR | 0755}) << "a default ACL leaves the mode";

  Cred cred = user();
  cred.umask = 077;  // ignored under a default ACL
  auto f = fs_->create(d->ino, "f", 0666, O_RDWR, cred);
  ASSERT_TRUE(f.is_ok());
  EXPECT_EQ(f->mode, uint32_t{S_IFREG | 0664});
  Acl want = named_user_acl();
  want[0].perm = 6;
  EXPECT_EQ(stored(f->ino, kAclAccessXattr), acl_bytes(want));
  EXPECT_EQ(fs_->getxattr(f->ino, kAclDefaultXattr).status().code(), Code::kNoData);

  auto sub = fs_->mkdir(d->ino, "sub", 0777, cred);
  ASSERT_TRUE(sub.is_ok());
  EXPECT_EQ(sub->mode, uint32_t{S_IFDIR | 0764});
  EXPECT_EQ(stored(sub->ino, kAclDefaultXattr), acl_bytes(named_user_acl()));
  EXPECT_EQ(stored(sub->ino, kAclAccessXattr), acl_bytes(named_user_acl()));

  // A default ACL of the base entries only: no access ACL, the mode masked.
  ASSERT_TRUE(set(d->ino, kAclDefaultXattr,
                  {{T::kUserObj, 7, 0}, {T::kGroupObj, 0, 0}, {T::kOther, 0, 0}})
                  .is_ok());
  auto g = fs_->create(d->ino, "g", 0666, O_RDWR, cred);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(g->mode, uint32_t{S_IFREG | 0600});
  EXPECT_EQ(fs_->getxattr(g->ino, kAclAccessXattr).status().code(), Code::kNoData);
  // Symlinks take neither.
  auto l = fs_->symlink(d->ino, "l", "f", cred);
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(l->mode, uint32_t{S_IFLNK | 0777});
  EXPECT_TRUE(fs_->listxattr(l->ino)->empty());

  crash_and_remount();
  EXPECT_EQ(stored(f->ino, kAclAccessXattr), acl_bytes(want));
  EXPECT_EQ(stored(sub->ino, kAclDefaultXattr), acl_bytes(named_user_acl()));
}

}  // namespace
}  // namespace sealfs::testing_meta
