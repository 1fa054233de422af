// sealfs_extend racing the rest of the library, on a real mount, driven by
// libsealfs's named sync points (util/sync_point.h; builds with the meson
// option sync_points): the extending thread is held after the daemon's
// answer, before it maps the added extents, while
// - another thread (a break callback in a real program) unmaps the mapping:
//   the unmap waits for the extend, so the addresses and the map object
//   stay ours until it is done;
// - a truncate breaks the lease and its deadline revokes it: the added
//   range, whose blocks the acknowledged revoke lets the truncate free, is
//   never mapped after that (the extend fails with ENXIO);
// - a second sealfs_extend of the same mapping is refused (EBUSY).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "reserved_map_fixture.h"
#include "pattern.h"
#include "sealfs/sealfs.h"
#include "util/sync_point.h"

namespace sealfs::itest {
namespace {

// Holds the first thread that reaches a library sync point until open();
// later threads pass.
class Pause {
 public:
  explicit Pause(std::string name) : name_(std::move(name)) {
    sync_point::arm(name_, [this] {
      std::unique_lock lock(mu_);
      if (reached_) return;
      reached_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return open_; });
    });
  }
  ~Pause() {
    open();
    sync_point::disarm(name_);
  }
  Pause(const Pause&) = delete;
  Pause& operator=(const Pause&) = delete;
  bool wait_reached() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return reached_; });
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool reached_ = false;
  bool open_ = false;
};

class ExtendRaceTest : public ReservedMapFixture {
 protected:
  void TearDown() override {
    sync_point::disarm_all();
    ReservedMapFixture::TearDown();
  }
};

constexpr uint64_t kFile = 1 * kMiB;
constexpr uint64_t kReserve = 4 * kMiB;

TEST_F(ExtendRaceTest, UnmapWaitsForAnExtendOfTheMapping) {
  ASSERT_NO_FATAL_FAILURE(mount_with(10));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  ASSERT_NO_FATAL_FAILURE(map_here("f", kFile, kReserve));
  auto* base = static_cast<uint8_t*>(sealfs_map_addr(map_));
  Pause replied("client.extend.replied");
  std::mutex mu;
  std::condition_variable cv;
  bool unmap_waits = false, unmapped = false;
  int unmap_rc = 1;
  sync_point::arm("client.unmap.waits_for_extend", [&] {
    std::lock_guard lock(mu);
    unmap_waits = true;
    cv.notify_all();
  });
  int extended = 1;
  std::thread grower([&] { extended = sealfs_extend(map_, fd_, 2 * kMiB); });
  ASSERT_TRUE(replied.wait_reached());
  struct sealfs_map* m = std::exchange(map_, nullptr);
  std::thread unmapper([&] {
    const int r = sealfs_unmap(m);
    std::lock_guard lock(mu);
    unmap_rc = r;
    unmapped = true;
    cv.notify_all();
  });
  bool freed_early = false;
  {
    std::unique_lock lock(mu);
    cv.wait_for(lock, 10s, [&] { return unmap_waits || unmapped; });
    freed_early = unmapped;
  }
  // An unmap that did not wait gave the addresses back: another part of
  // the program may own them now (here: a pattern of ours), and the extend
  // must not map the file's blocks over it.
  void* other = MAP_FAILED;
  if (freed_early) {
    other = mmap(base, kReserve, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (other != MAP_FAILED) std::memset(other, 0x5a, kReserve);
  }
  replied.open();
  grower.join();
  unmapper.join();
  EXPECT_FALSE(freed_early) << "sealfs_unmap returned while sealfs_extend of the mapping ran";
  if (other != MAP_FAILED) {
    const auto* p = static_cast<const uint8_t*>(other);
    size_t changed = 0;
    for (size_t i = 0; i < kReserve; ++i) changed += p[i] != 0x5a;
    EXPECT_EQ(changed, 0u) << "the extend mapped over addresses the unmap had given back";
    munmap(other, kReserve);
  }
  EXPECT_EQ(extended, 0) << sealfs_last_error();
  EXPECT_EQ(unmap_rc, 0);
  // The unmap took everything, the added range too: the addresses are
  // free and the lease is gone (a truncate needs no break).
  void* p = mmap(base, kReserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                 -1, 0);
  EXPECT_EQ(p, static_cast<void*>(base));
  if (p != MAP_FAILED) munmap(p, kReserve);
  EXPECT_EQ(file_size("f"), 2 * kMiB);
  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  auto r = op.wait(15s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0) << std::strerror(r->err);
  EXPECT_LT(r->seconds, 5.0) << "the truncate waited for a break: the lease was not released";
}

TEST_F(ExtendRaceTest, ARevokeDuringExtendLeavesTheAddedRangeUnmapped) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1));  // a 1 s break, then the fence policy's REVOKE
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  ASSERT_NO_FATAL_FAILURE(map_here("f", kFile, kReserve));
  Pause replied("client.extend.replied");
  std::atomic<bool> blocks_freed{false}, mapped_after{false};
  sync_point::arm("client.extend.mapped", [&] {
    if (blocks_freed.load()) mapped_after = true;
  });
  int extended = 1;
  std::thread grower([&] { extended = sealfs_extend(map_, fd_, 2 * kMiB); });
  ASSERT_TRUE(replied.wait_reached());
  // The daemon has granted the added range and answered. A truncate breaks
  // the lease; we hold on; the deadline revokes it and the library fences
  // and acknowledges; the truncate then frees every block of the file, the
  // added range's included.
  TimedOp op([&] { return truncate(path("f").c_str(), 0); });
  auto r = op.wait(15s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0) << std::strerror(r->err);
  // The REVOKE fenced us (and, unless it came after the grace period and
  // the daemon quarantined the blocks instead, was acknowledged).
  for (int i = 0; i < 10000 && sealfs_map_state(map_) != 2; ++i) usleep(1000);
  ASSERT_EQ(sealfs_map_state(map_), 2);
  blocks_freed = true;
  replied.open();
  grower.join();
  EXPECT_FALSE(mapped_after) << "the added range was mapped after the revoke was acknowledged";
  EXPECT_EQ(extended, -ENXIO);
  EXPECT_EQ(sealfs_map_length(map_), kFile);
  EXPECT_EQ(file_size("f"), 0u);
}

TEST_F(ExtendRaceTest, ASecondExtendOfTheMappingIsRefusedWhileOneRuns) {
  ASSERT_NO_FATAL_FAILURE(mount_with(10));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  ASSERT_NO_FATAL_FAILURE(map_here("f", kFile, kReserve));
  auto* base = static_cast<uint8_t*>(sealfs_map_addr(map_));
  Pause replied("client.extend.replied");
  int first = 1;
  std::thread grower([&] { first = sealfs_extend(map_, fd_, 2 * kMiB); });
  ASSERT_TRUE(replied.wait_reached());
  EXPECT_EQ(sealfs_extend(map_, fd_, 3 * kMiB), -EBUSY) << sealfs_last_error();
  replied.open();
  grower.join();
  EXPECT_EQ(first, 0);
  EXPECT_EQ(sealfs_map_length(map_), 2 * kMiB);
  EXPECT_EQ(file_size("f"), 2 * kMiB);
  // Once it is done the mapping grows again, and all of it is the file.
  ASSERT_EQ(sealfs_extend(map_, fd_, 3 * kMiB), 0) << sealfs_last_error();
  fill_lease_pattern(base + kFile, 2 * kMiB, 4, kFile);
  ASSERT_EQ(sealfs_persist(map_, base + kFile, 2 * kMiB), 0) << sealfs_last_error();
  EXPECT_TRUE(file_has_pattern("f", 2 * kMiB, 4, kFile));
  EXPECT_TRUE(file_has_pattern("f", kFile, 1));
}

}  // namespace
}  // namespace sealfs::itest
