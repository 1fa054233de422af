// The orphan list is edited under the journal mutex, which every metadata
// commit waits for: freeing an orphan must cost a walk of the list, no more.
// (A version that copied every visited slot into a linearly searched list
// took 7.5 s for these 3,000 frees, 80 ms before and after.)
#include <chrono>
#include <string>
#include <vector>

#include "meta_fixture.h"

namespace sealfs::testing_meta {
namespace {

class OrphanListCostTest : public MetaTest {
 protected:
  void SetUp() override { format(256ull << 20, 16384); }
};

TEST_F(OrphanListCostTest, FreeingOrphansOldestFirstIsLinearInTheList) {
  constexpr int kFiles = 3000;
  const uint64_t free_inodes = fs_->statfs().free_inodes;
  std::vector<Attr> files;
  for (int i = 0; i < kFiles; ++i) {
    files.push_back(make_file(format::kRootIno, "o" + std::to_string(i)));
    ASSERT_TRUE(fs_->unlink(format::kRootIno, "o" + std::to_string(i)).is_ok());
  }
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kFiles; ++i) {  // the oldest orphan is the list's tail
    fs_->release(files[i].ino);
    fs_->forget(files[i].ino, 1);
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  EXPECT_LT(ms, 2000) << "freeing " << kFiles << " orphans oldest first";
  clean_remount();
  EXPECT_EQ(stats_.orphans_freed, 0u);
  EXPECT_EQ(fs_->statfs().free_inodes, free_inodes);
}

}  // namespace
}  // namespace sealfs::testing_meta
