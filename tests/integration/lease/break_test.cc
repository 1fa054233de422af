// Every lease breaker delivers exactly one break to the holder and waits:
// for the holder's release (cooperative), or for the deadline (a holder
// that never lets go). In-place writes inside EOF do not break, unless
// -o strict_write_break.
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "lease_fixture.h"
#include "pattern.h"
#include "sealfs/sealfs.h"

namespace sealfs::itest {
namespace {

constexpr uint64_t kFile = 1 * kMiB;

int with_fd(const std::string& p, int flags, const std::function<int(int)>& op) {
  int fd = open(p.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = op(fd);
  int err = errno;
  close(fd);
  errno = err;
  return rc;
}

int write_at(int fd, uint64_t offset, size_t length, uint64_t seed) {
  std::vector<uint8_t> buf(length);
  fill_lease_pattern(buf.data(), length, seed, offset);
  ssize_t n = pwrite(fd, buf.data(), length, static_cast<off_t>(offset));
  if (n < 0) return -1;
  if (static_cast<size_t>(n) != length) {
    errno = EIO;
    return -1;
  }
  return 0;
}

struct Breaker {
  const char* name;
  int reason;  // SEALFS_BREAK_*
  // Runs the breaking operation on "f" (dir: the mountpoint).
  std::function<int(const std::string& dir)> run;
};

std::string f_of(const std::string& dir) { return dir + "/f"; }

std::vector<Breaker> breakers() {
  return {
      {"TruncateDown", SEALFS_BREAK_TRUNCATE,
       [](const std::string& d) { return truncate(f_of(d).c_str(), 512 * kKiB); }},
      {"TruncateUp", SEALFS_BREAK_TRUNCATE,
       [](const std::string& d) { return truncate(f_of(d).c_str(), 3 * kMiB); }},
      {"OpenTrunc", SEALFS_BREAK_TRUNCATE,
       [](const std::string& d) {
         return with_fd(f_of(d), O_WRONLY | O_TRUNC, [](int) { return 0; });
       }},
      {"FallocateExtend", SEALFS_BREAK_FALLOCATE,
       [](const std::string& d) {
         return with_fd(f_of(d), O_RDWR, [](int fd) {
           return fallocate(fd, 0, static_cast<off_t>(kFile), static_cast<off_t>(kFile));
         });
       }},
      {"FallocateKeepSize", SEALFS_BREAK_FALLOCATE,
       [](const std::string& d) {
         return with_fd(f_of(d), O_RDWR, [](int fd) {
           return fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(kFile),
                            static_cast<off_t>(kFile));
         });
       }},
      {"PunchHole", SEALFS_BREAK_FALLOCATE,
       [](const std::string& d) {
         return with_fd(f_of(d), O_RDWR, [](int fd) {
           return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 * 1024, 64 * 1024);
         });
       }},
      {"ZeroRange", SEALFS_BREAK_FALLOCATE,
       [](const std::string& d) {
         return with_fd(f_of(d), O_RDWR, [](int fd) {
           return fallocate(fd, FALLOC_FL_ZERO_RANGE, 64 * 1024, 64 * 1024);
         });
       }},
      {"ExtendingWrite", SEALFS_BREAK_WRITE,
       [](const std::string& d) {
         return with_fd(f_of(d), O_RDWR, [](int fd) { return write_at(fd, kFile, 4096, 5); });
       }},
      {"RenameOver", SEALFS_BREAK_RENAME,
       [](const std::string& d) { return rename((d + "/other").c_str(), f_of(d).c_str()); }},
  };
}

// What each breaker must leave behind, checked after it returned.
void check_result(LeaseFixture& t, const std::string& name) {
  if (name == "TruncateDown") {
    EXPECT_EQ(t.file_size("f"), 512 * kKiB);
    EXPECT_TRUE(t.file_has_pattern("f", 512 * kKiB, 1));
  } else if (name == "TruncateUp") {
    EXPECT_EQ(t.file_size("f"), 3 * kMiB);
    EXPECT_TRUE(t.file_has_pattern("f", kFile, 1));
    EXPECT_TRUE(t.file_is_zero("f", kFile, 2 * kMiB));
  } else if (name == "OpenTrunc") {
    EXPECT_EQ(t.file_size("f"), 0u);
  } else if (name == "FallocateExtend") {
    EXPECT_EQ(t.file_size("f"), 2 * kMiB);
    EXPECT_TRUE(t.file_has_pattern("f", kFile, 1));
    EXPECT_TRUE(t.file_is_zero("f", kFile, kFile));
  } else if (name == "FallocateKeepSize") {
    EXPECT_EQ(t.file_size("f"), kFile);
    EXPECT_TRUE(t.file_has_pattern("f", kFile, 1));
  } else if (name == "PunchHole" || name == "ZeroRange") {
    EXPECT_EQ(t.file_size("f"), kFile);
    EXPECT_TRUE(t.file_has_pattern("f", 64 * kKiB, 1));
    EXPECT_TRUE(t.file_is_zero("f", 64 * kKiB, 64 * kKiB));
    EXPECT_TRUE(t.file_has_pattern("f", kFile - 128 * kKiB, 1, 128 * kKiB));
  } else if (name == "ExtendingWrite") {
    EXPECT_EQ(t.file_size("f"), kFile + 4096);
    EXPECT_TRUE(t.file_has_pattern("f", kFile, 1));
    EXPECT_TRUE(t.file_has_pattern("f", 4096, 5, kFile));
  } else if (name == "RenameOver") {
    EXPECT_EQ(t.file_size("f"), 8192u);
    EXPECT_TRUE(t.file_has_pattern("f", 8192, 2));
  }
}

class BreakTest : public LeaseFixture, public ::testing::WithParamInterface<Breaker> {
 protected:
  // Mounts, writes "f" (and "other" for rename), maps "f" in a holder.
  HolderProcess& setup(unsigned break_time, bool coop) {
    EXPECT_NO_FATAL_FAILURE(mount_with(break_time));
    EXPECT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
    EXPECT_NO_FATAL_FAILURE(make_file("other", 8192, 2));
    HolderProcess& h = holder(coop);
    MapReply r = h.map(path("f"), 0, kFile);
    EXPECT_EQ(r.rc, 0) << r.text;
    return h;
  }
};

// The holder announces the break and holds on until told: the breaker must
// still be waiting, and returns promptly once the holder unmaps.
TEST_P(BreakTest, WaitsForTheHolderToRelease) {
  const Breaker& b = GetParam();
  HolderProcess& h = setup(2, false);
  ASSERT_FALSE(HasFailure());
  TimedOp op([&] { return b.run(mountpoint()); });
  auto line = h.expect("break ", 5s);
  ASSERT_TRUE(line) << b.name << " delivered no break; " << h.transcript();
  EXPECT_EQ(break_reason(*line), b.reason) << *line;
  // The deadline is lease_break_time (2 s) after the break started.
  const long ms_left = std::stol(line->substr(line->rfind(' ') + 1));
  EXPECT_GT(ms_left, 1000) << *line;
  EXPECT_LE(ms_left, 2000) << *line;
  // Proving a negative: the breaker must not finish while the lease is held.
  EXPECT_FALSE(op.wait(300ms)) << b.name << " returned before the holder released";
  auto released_at = std::chrono::steady_clock::now();
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0 0"));
  auto r = op.wait(10s);
  ASSERT_TRUE(r) << b.name << " did not return after the release";
  double after_release =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - released_at).count();
  EXPECT_EQ(r->rc, 0) << b.name << ": " << std::strerror(r->err);
  EXPECT_LT(after_release, 1.0) << b.name << " waited past the release";
  EXPECT_LT(r->seconds, 1.9) << b.name << " waited for the deadline despite the release";
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
  check_result(*this, b.name);
}

// A holder that unmaps as soon as the break arrives lets the breaker
// finish at once.
TEST_P(BreakTest, CooperativeHolderLetsBreakerFinishAtOnce) {
  const Breaker& b = GetParam();
  HolderProcess& h = setup(2, true);
  ASSERT_FALSE(HasFailure());
  TimedOp op([&] { return b.run(mountpoint()); });
  auto r = op.wait(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0) << b.name << ": " << std::strerror(r->err);
  EXPECT_LT(r->seconds, 1.0) << b.name;
  ASSERT_TRUE(h.expect("released ", 1s)) << h.transcript();
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
  check_result(*this, b.name);
}

// A holder that never lets go holds the breaker until the deadline, not
// longer (lease_break_time=1).
TEST_P(BreakTest, StubbornHolderHoldsBreakerUntilTheDeadline) {
  const Breaker& b = GetParam();
  HolderProcess& h = setup(1, false);
  ASSERT_FALSE(HasFailure());
  TimedOp op([&] { return b.run(mountpoint()); });
  auto line = h.expect("break ", 5s);
  ASSERT_TRUE(line) << h.transcript();
  EXPECT_EQ(break_reason(*line), b.reason) << *line;
  auto r = op.wait(10s);
  ASSERT_TRUE(r) << b.name << " never finished";
  EXPECT_EQ(r->rc, 0) << b.name << ": " << std::strerror(r->err);
  EXPECT_GE(r->seconds, 0.95) << b.name << " did not wait for the deadline";
  EXPECT_LT(r->seconds, 3.0) << b.name << " waited far past the deadline";
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
  check_result(*this, b.name);
}

INSTANTIATE_TEST_SUITE_P(Breakers, BreakTest, ::testing::ValuesIn(breakers()),
                         [](const auto& info) { return std::string(info.param.name); });

class BreakMiscTest : public LeaseFixture {};

// Unlink of the leased file, then the last close: the final free of the
// inode breaks the lease; its blocks come back only after the release.
TEST_F(BreakMiscTest, UnlinkAndLastCloseBreaks) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  int fd = open(path("f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(path("f").c_str()), 0) << std::strerror(errno);
  const uint64_t free_before = free_blocks();
  ASSERT_EQ(close(fd), 0);
  auto line = h.expect("break ", 5s);
  ASSERT_TRUE(line) << "unlink + last close delivered no break; " << h.transcript();
  EXPECT_EQ(break_reason(*line), SEALFS_BREAK_UNLINK) << *line;
  // The holder still maps the blocks: they are not free yet.
  EXPECT_LT(free_blocks(), free_before + kFile / 4096);
  h.send("check 0 0 1048576 1");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0 0"));
  EXPECT_TRUE(wait_free_blocks(free_before + kFile / 4096, 5s))
      << "the unlinked file's blocks did not come back: " << free_blocks() << " < "
      << free_before + kFile / 4096;
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
}

// Unlink with no descriptor open: the inode is freed once the kernel lets
// go of it; a holder that never releases is fenced at the deadline (the
// default policy), the library acknowledges, and the blocks are freed.
TEST_F(BreakMiscTest, UnlinkOfStubbornHoldersFileFreesAtTheDeadline) {
  ASSERT_NO_FATAL_FAILURE(mount_with(1));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  const uint64_t free_before = free_blocks();
  auto unlinked_at = std::chrono::steady_clock::now();
  TimedOp op([&] { return unlink(path("f").c_str()); });
  auto line = h.expect("break ", 5s);
  ASSERT_TRUE(line) << h.transcript();
  EXPECT_EQ(break_reason(*line), SEALFS_BREAK_UNLINK) << *line;
  auto r = op.wait(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0) << std::strerror(r->err);
  EXPECT_TRUE(wait_free_blocks(free_before + kFile / 4096, 5s)) << free_blocks();
  double freed_after =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - unlinked_at).count();
  EXPECT_GE(freed_after, 0.95) << "blocks freed before the deadline of an unreleased lease";
  h.send("touch 0");
  EXPECT_TRUE(h.expect("sigbus", 5s)) << h.transcript();
  ASSERT_TRUE(h.wait_exit(5s));
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
}

// Leases are per file: changing another file breaks nothing.
TEST_F(BreakMiscTest, OtherFilesDoNotBreak) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  ASSERT_NO_FATAL_FAILURE(make_file("g", kFile, 2));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  TimedOp op([&] {
    if (truncate(path("g").c_str(), 4096) != 0) return -1;
    if (with_fd(path("g"), O_RDWR, [](int fd) { return write_at(fd, kFile, 4096, 3); }) != 0) {
      return -1;
    }
    return unlink(path("g").c_str());
  });
  auto r = op.wait(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0) << std::strerror(r->err);
  EXPECT_LT(r->seconds, 1.0);
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 0) << h.transcript();
}

TEST_F(BreakMiscTest, InPlaceWriteInsideEofDoesNotBreak) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  TimedOp op([&] {
    return with_fd(path("f"), O_RDWR, [](int fd) {
      if (write_at(fd, 8192, 8192, 6) != 0) return -1;
      return write_at(fd, kFile - 100, 100, 6);  // up to EOF, not past it
    });
  });
  auto r = op.wait(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0) << std::strerror(r->err);
  EXPECT_LT(r->seconds, 1.0);
  // Proving a negative: no break arrives.
  EXPECT_FALSE(h.expect("break ", 300ms)) << h.transcript();
  h.send("check 0 8192 8192 6");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  h.send("check 0 1048476 100 6");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  EXPECT_EQ(file_size("f"), kFile);
  EXPECT_EQ(h.count("break "), 0) << h.transcript();
}

// A truncate to the size the file already has changes no block and no
// byte: no break (SQLite does one at each checkpoint), but the times move
// as for any truncate.
TEST_F(BreakMiscTest, TruncateToTheSameSizeDoesNotBreak) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  struct timespec old[2] = {{0, UTIME_OMIT}, {time(nullptr) - 3600, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path("f").c_str(), old, 0), 0);
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  TimedOp op([&] { return truncate(path("f").c_str(), kFile) == 0 ? 0 : -1; });
  auto r = op.wait(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0) << std::strerror(r->err);
  EXPECT_LT(r->seconds, 1.0);
  EXPECT_FALSE(h.expect("break ", 300ms)) << h.transcript();
  struct stat st;
  ASSERT_EQ(stat(path("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(kFile));
  EXPECT_GT(st.st_mtime, time(nullptr) - 60) << "the truncate did not move mtime";
  h.send("check 0 0 " + std::to_string(kFile) + " 1");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  // One byte shorter is a truncate down: it breaks.
  TimedOp shorter([&] { return truncate(path("f").c_str(), kFile - 1) == 0 ? 0 : -1; });
  EXPECT_TRUE(h.expect("break ", 10s)) << h.transcript();
}

TEST_F(BreakMiscTest, StrictWriteBreakMakesInPlaceWritesBreak) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "strict_write_break"));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder();
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  TimedOp op([&] {
    return with_fd(path("f"), O_RDWR, [](int fd) { return write_at(fd, 8192, 4096, 6); });
  });
  auto line = h.expect("break ", 5s);
  ASSERT_TRUE(line) << h.transcript();
  EXPECT_EQ(break_reason(*line), SEALFS_BREAK_WRITE) << *line;
  EXPECT_FALSE(op.wait(300ms)) << "the write returned before the holder released";
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0 0"));
  auto r = op.wait(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rc, 0) << std::strerror(r->err);
  EXPECT_TRUE(file_has_pattern("f", 4096, 6, 8192));
  EXPECT_TRUE(file_has_pattern("f", 8192, 1));
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), 1) << h.transcript();
}

// The kernel refuses COLLAPSE_RANGE and INSERT_RANGE before FUSE sees them
// (EOPNOTSUPP): then nothing may break. Should a kernel forward them, they
// are breakers like every other mode.
TEST_F(BreakMiscTest, CollapseAndInsertRange) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(true);
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  int expected_breaks = 0;
  for (int mode : {FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE}) {
    TimedOp op([&] {
      return with_fd(path("f"), O_RDWR, [mode](int fd) { return fallocate(fd, mode, 0, 65536); });
    });
    auto r = op.wait(10s);
    ASSERT_TRUE(r);
    if (r->rc != 0) {
      EXPECT_EQ(r->err, EOPNOTSUPP) << "mode " << mode;
      continue;
    }
    ++expected_breaks;
    ASSERT_TRUE(h.expect("released ", 5s)) << h.transcript();
    if (h.map(path("f"), 0, 65536).rc != 0) break;
  }
  ASSERT_TRUE(h.sync());
  EXPECT_EQ(h.count("break "), expected_breaks) << h.transcript();
  if (expected_breaks == 0) {
    h.send("check 0 0 1048576 1");
    EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  }
}

}  // namespace
}  // namespace sealfs::itest
