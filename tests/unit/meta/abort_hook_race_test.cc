// A transaction that fails after its prepare hooks ran must restore the
// state those hooks changed (the staged superblock, the orphan-list links)
// before any other transaction can stage from it, i.e. under the journal
// mutex. Restored later, it overwrites what a transaction committed in
// between: here, the orphan-list link of an unlinked open file, which then
// leaks at the next mount.
#include <fcntl.h>

#include <vector>

#include "meta/filesystem_impl.h"
#include "meta/meta_txn.h"
#include "meta_fixture.h"
#include "sealfs/format.h"

namespace sealfs::testing_meta {
namespace {

using format::kRootIno;

class AbortHookRaceTest : public MetaTest {
 protected:
  void SetUp() override { format(); }
  FilesystemImpl& impl() { return static_cast<FilesystemImpl&>(*fs_); }
};

TEST_F(AbortHookRaceTest, AFailedCommitDoesNotUndoAnOrphanLinkCommittedAfterIt) {
  Attr first = make_file(kRootIno, "first");
  Attr second = make_file(kRootIno, "second");

  // T1 edits the superblock in its prepare hook, then fails the journal's
  // size check (the one refusal that leaves the region usable).
  MetaTxn t1(impl());
  t1.edit_superblock([](Superblock&) {});
  // 8 MiB at the end of the data area: more than the 2 MiB log can take.
  const uint64_t too_big = 8ull << 20;
  const uint64_t at = fs_->region().size() - too_big;
  t1.txn().on_prepare([at](Transaction& t) {
    std::vector<std::byte> bytes(too_big);
    t.write(at, bytes.data(), bytes.size());
  });
  // An abort hook registered before the commit runs after the journal has
  // let go of its mutex (it may take caller locks): another thread's
  // transaction can commit there, as this one does.
  bool unlinked = false;
  t1.txn().on_abort([&] { unlinked = fs_->unlink(kRootIno, "first").is_ok(); });
  EXPECT_EQ(t1.commit().code(), Code::kNoSpace);
  ASSERT_TRUE(unlinked);

  // The next superblock write must still carry `first` on the orphan list.
  ASSERT_TRUE(fs_->unlink(kRootIno, "second").is_ok());
  crash_and_remount();
  EXPECT_EQ(stats_.orphans_freed, 2u);
  EXPECT_EQ(fs_->getattr(first.ino).status().code(), Code::kStale);
  EXPECT_EQ(fs_->getattr(second.ino).status().code(), Code::kStale);
}

}  // namespace
}  // namespace sealfs::testing_meta
