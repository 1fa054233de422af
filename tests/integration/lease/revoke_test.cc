// Holders that never let go, under each revoke policy: fence (SIGBUS on
// the next access), kill (SIGKILL), quarantine (the mapping stays; its
// blocks are never given to another file while the holder lives).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <string>

#include "lease_fixture.h"
#include "sealfs/sealfs.h"

namespace sealfs::itest {
namespace {

constexpr uint64_t kFile = 1 * kMiB;
constexpr uint64_t kFileBlocks = kFile / 4096;

class RevokeTest : public LeaseFixture {
 protected:
  // truncate(f, 0) against a holder that does not release; returns the
  // time it took.
  double truncate_against_stubborn_holder() {
    TimedOp op([&] { return truncate(path("f").c_str(), 0); });
    auto r = op.wait(15s);
    if (!r) {
      ADD_FAILURE() << "truncate never finished";
      return 0;
    }
    EXPECT_EQ(r->rc, 0) << std::strerror(r->err);
    EXPECT_EQ(file_size("f"), 0u);
    return r->seconds;
  }

  // Whether the daemon log has a line at `level` that contains `text`.
  bool logged_at(const std::string& level, const std::string& text) const {
    std::istringstream lines(read_file(log_path()));
    for (std::string line; std::getline(lines, line);) {
      if (line.find(" " + level + " ") != std::string::npos &&
          line.find(text) != std::string::npos) {
        return true;
      }
    }
    return false;
  }
};

// Default policy: at the deadline the library replaces the range; the
// holder's next access raises SIGBUS. The library acknowledged, so the
// blocks are free again without waiting for the holder to die.
TEST_F(RevokeTest, FenceMakesTheNextAccessRaiseSigbus) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  const uint64_t free_before = free_blocks();
  double seconds = truncate_against_stubborn_holder();
  EXPECT_GE(seconds, 0.95);
  EXPECT_LT(seconds, 3.0);
  auto line = h.expect("break ", 1s);
  ASSERT_TRUE(line) << h.transcript();
  EXPECT_EQ(break_reason(*line), SEALFS_BREAK_TRUNCATE);
  EXPECT_TRUE(wait_free_blocks(free_before + kFileBlocks, 5s)) << free_blocks();
  h.send("touch 0");
  EXPECT_TRUE(h.expect("sigbus", 5s)) << h.transcript();
  auto status = h.wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 77) << *status;
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
  // A revocation is logged at warning level (the default level shows it),
  // a fence as a kill is.
  EXPECT_TRUE(logged_at("warning", "lease: fencing holder pid " + std::to_string(h.pid())))
      << read_file(log_path());
}

// A fenced holder that cannot acknowledge (stopped): the breaker still
// finishes at the deadline, and the blocks stay out of the free space
// until the holder is gone.
TEST_F(RevokeTest, FenceOfStoppedHolderQuarantinesUntilItDies) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  ASSERT_TRUE(h.stop());
  const uint64_t free_before = free_blocks();
  double seconds = truncate_against_stubborn_holder();
  EXPECT_GE(seconds, 0.95);
  EXPECT_LT(seconds, 3.0);
  EXPECT_LT(free_blocks(), free_before + kFileBlocks) << "blocks a stopped holder maps were freed";
  h.signal(SIGKILL);
  ASSERT_TRUE(h.wait_exit(5s));
  EXPECT_TRUE(wait_free_blocks(free_before + kFileBlocks, 5s)) << free_blocks();
}

TEST_F(RevokeTest, KillPolicyKillsTheHolder) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1, "revoke=kill"));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  const uint64_t free_before = free_blocks();
  double seconds = truncate_against_stubborn_holder();
  EXPECT_GE(seconds, 0.95);
  EXPECT_LT(seconds, 3.0);
  auto status = h.wait_exit(5s);
  ASSERT_TRUE(status) << "the holder is still alive";
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << *status;
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
  EXPECT_TRUE(wait_free_blocks(free_before + kFileBlocks, 5s)) << free_blocks();
  EXPECT_TRUE(logged_at("warning", "lease: killing holder pid " + std::to_string(h.pid())))
      << read_file(log_path());
}

// The policy can be chosen per grant: a kill lease on a fence mount.
TEST_F(RevokeTest, PerGrantKillPolicy) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile, "rw", SEALFS_MAP_POLICY_KILL).rc, 0);
  double seconds = truncate_against_stubborn_holder();
  EXPECT_GE(seconds, 0.95);
  auto status = h.wait_exit(5s);
  ASSERT_TRUE(status) << "the holder is still alive";
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << *status;
}

// The break time can be chosen per grant: 1 s on a 5 s mount.
TEST_F(RevokeTest, PerGrantBreakTime) {
  ASSERT_NO_FATAL_FAILURE(mount_with(5));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile, "rw", 0, "rw", 1000).rc, 0);
  double seconds = truncate_against_stubborn_holder();
  EXPECT_GE(seconds, 0.95);
  EXPECT_LT(seconds, 3.0) << "the per-grant break time was ignored";
  auto line = h.expect("break ", 1s);
  ASSERT_TRUE(line) << h.transcript();
  EXPECT_LE(std::stol(line->substr(line->rfind(' ') + 1)), 1000) << *line;
}

// The quarantine proof: a stopped holder is revoked by truncate; its blocks
// leave the file but not the holder. Fill every free block of the
// filesystem with a known pattern; resume the holder and let it scribble
// over its stale mapping; the new file must be byte-identical. Once the
// holder dies, the blocks come back.
TEST_F(RevokeTest, QuarantinedHolderScribblesNeverReachAnotherFile) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1, "revoke=quarantine"));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  ASSERT_TRUE(h.stop());
  const uint64_t free_before = free_blocks();
  double seconds = truncate_against_stubborn_holder();
  EXPECT_GE(seconds, 0.95);
  EXPECT_LT(seconds, 3.0);
  const uint64_t free_after = free_blocks();
  EXPECT_LT(free_after, free_before + kFileBlocks)
      << "the quarantined blocks were returned to free space";
  EXPECT_TRUE(logged_at("warning", "lease: quarantining the blocks of holder pid " +
                                       std::to_string(h.pid())))
      << read_file(log_path());

  const uint64_t filled = fill_filesystem("g", 2);
  ASSERT_GT(filled, 0u);
  EXPECT_LT(free_blocks(), 16u) << "the filesystem is not full";

  h.signal(SIGCONT);
  auto line = h.expect("break ", 5s);
  ASSERT_TRUE(line) << h.transcript();
  EXPECT_EQ(break_reason(*line), SEALFS_BREAK_TRUNCATE);
  h.send("fill 0 3");
  ASSERT_EQ(h.expect_any({"filled 0", "sigbus"}, 10s), "filled 0")
      << "quarantine must leave the mapping alone; " << h.transcript();
  EXPECT_TRUE(file_has_pattern("g", filled, 2)) << "a revoked holder's stores reached another file";
  EXPECT_EQ(file_size("f"), 0u);

  const uint64_t free_full = free_blocks();
  h.signal(SIGKILL);
  ASSERT_TRUE(h.wait_exit(5s));
  EXPECT_TRUE(wait_free_blocks(free_full + kFileBlocks, 5s))
      << "quarantined blocks not freed after the holder died: " << free_blocks();
  EXPECT_TRUE(file_has_pattern("g", filled, 2));
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
}

}  // namespace
}  // namespace sealfs::itest
