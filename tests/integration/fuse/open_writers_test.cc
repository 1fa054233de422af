// OpenWriters: the per-inode count of handles open for writing that decides
// whether an open keeps the page cache (src/fuse/open_writers.h).
#include "fuse/open_writers.h"

#include <fcntl.h>
#include <gtest/gtest.h>

namespace sealfs::fuse {
namespace {

TEST(OpenWritersTest, CountsOnlyOtherHandlesThatCanWrite) {
  OpenWriters w;
  EXPECT_EQ(w.opened(7, O_RDONLY), 0u);
  EXPECT_EQ(w.opened(7, O_WRONLY | O_CREAT), 0u);  // itself is not "other"
  EXPECT_EQ(w.opened(7, O_RDONLY), 1u);
  EXPECT_EQ(w.opened(7, O_RDWR | O_APPEND), 1u);
  EXPECT_EQ(w.opened(7, O_RDONLY), 2u);
  EXPECT_EQ(w.opened(8, O_RDONLY), 0u) << "another inode has its own count";
}

TEST(OpenWritersTest, AReleaseTakesBackWhatItsOpenCounted) {
  OpenWriters w;
  w.opened(7, O_RDWR);
  w.opened(7, O_WRONLY);
  w.released(7, O_RDONLY);  // a reader's release changes nothing
  EXPECT_EQ(w.opened(7, O_RDONLY), 2u);
  w.released(7, O_RDWR);
  EXPECT_EQ(w.opened(7, O_RDONLY), 1u);
  w.released(7, O_WRONLY);
  EXPECT_EQ(w.opened(7, O_RDONLY), 0u);
  w.released(7, O_WRONLY);  // nothing counted: stays at zero
  EXPECT_EQ(w.opened(7, O_RDONLY), 0u);
}

}  // namespace
}  // namespace sealfs::fuse
