// Page-cache coherence with concurrent writers (issue 14, item 6): a process
// that takes a region lock, writes and reads its range back must read its own
// bytes, whatever other processes open, read or write meanwhile in the same
// pages (docs/daemon.md "Caching and coherence").
//
// Why it could fail: a write-through write(2) copies its bytes into the
// kernel's page cache and unlocks the page before the WRITE reaches the
// daemon. Anything that drops the inode's cached pages in that window (an
// open without keep_cache; a read that sees a new mtime under
// auto_inval_data) lets another reader fetch the page from the daemon
// before the write lands, and the page cache then holds the old bytes for a
// range whose write(2) has returned. The first tests hold a write at the
// daemon's "fuse.write.received" sync point to make that window certain;
// the last runs the pattern from the issue at full speed.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "fs_helpers.h"
#include "mount_fixture.h"
#include "sealfs/sealfs.h"

namespace sealfs::itest {
namespace {

using namespace std::chrono_literals;

// Ends in the middle of its third page: the last page is partial.
constexpr off_t kFileSize = 2 * 4096 + 1808;
constexpr uint64_t kOldSeed = 1;
constexpr uint64_t kNewSeed = 2;
constexpr const char* kWritePoint = "fuse.write.received";

bool lock_range(int fd, short type, off_t start, off_t length) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = length;
  while (fcntl(fd, F_SETLKW, &fl) != 0) {
    if (errno != EINTR) return false;
  }
  return true;
}

// A forked process the test walks through a script: the child waits for a
// go-ahead byte before each step it is told to wait for and reports the end
// of each step with one byte. It ends with _exit: 0 for success, otherwise
// a failure it has described on stderr.
class Stepper {
 public:
  explicit Stepper(const std::function<void(Stepper&)>& body) {
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe: " << std::strerror(errno);
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      close(to_child[1]);
      close(from_child[0]);
      in_ = to_child[0];
      out_ = from_child[1];
      body(*this);
      _exit(0);
    }
    close(to_child[0]);
    close(from_child[1]);
    out_ = to_child[1];
    in_ = from_child[0];
    if (pid_ < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
  }
  ~Stepper() {
    if (in_ >= 0) close(in_);
    if (out_ >= 0) close(out_);
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  Stepper(const Stepper&) = delete;
  Stepper& operator=(const Stepper&) = delete;

  // Test side.
  void go() { EXPECT_EQ(write(out_, "g", 1), 1); }
  bool step_done(std::chrono::milliseconds timeout) {
    pollfd p{in_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
    char c;
    return read(in_, &c, 1) == 1;
  }
  // The raw wait status, or nullopt if the child did not exit in time.
  std::optional<int> finish(std::chrono::milliseconds timeout) {
    auto status = wait_child(pid_, timeout);
    if (status) reaped_ = true;
    return status;
  }

  // Child side.
  void await_go() {
    char c;
    if (read(in_, &c, 1) != 1) _exit(3);  // the test went away
  }
  void report_done() {
    if (write(out_, "d", 1) != 1) _exit(3);
  }
  [[noreturn]] static void fail(const std::string& what) {
    std::fprintf(stderr, "%s: %s\n", what.c_str(), std::strerror(errno));
    _exit(2);
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  bool reaped_ = false;
};

bool exited_ok(const std::optional<int>& status) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

// Reads [off, off+len) and compares it with pattern(seed); a mismatch exits
// the child with status 1, saying where the first wrong byte is.
void expect_pattern(int fd, off_t off, size_t len, uint64_t seed, const char* who) {
  std::vector<uint8_t> got(len);
  ssize_t n = pread_all(fd, got.data(), len, off);
  if (n != static_cast<ssize_t>(len)) Stepper::fail(std::string(who) + ": short read");
  auto want = pattern(seed, static_cast<uint64_t>(off), len);
  for (size_t i = 0; i < len; ++i) {
    if (got[i] != want[i]) {
      std::fprintf(stderr,
                   "%s: stale byte at %lld (page %lld, +%lld), file size %lld: got 0x%02x, "
                   "want 0x%02x\n",
                   who, static_cast<long long>(off) + static_cast<long long>(i),
                   (static_cast<long long>(off) + static_cast<long long>(i)) / 4096,
                   (static_cast<long long>(off) + static_cast<long long>(i)) % 4096,
                   static_cast<long long>(lseek(fd, 0, SEEK_END)), got[i], want[i]);
      _exit(1);
    }
  }
}

struct HeldWrite {
  const char* name;
  off_t offset;
  size_t length;
};

void PrintTo(const HeldWrite& w, std::ostream* os) { *os << w.name; }

// Both inside the last, partial page; the second crosses the end of file.
constexpr HeldWrite kOverwrite{"overwrite", 9000, 500};
constexpr HeldWrite kExtendingWrite{"extending", 9800, 800};
// Another process's range: the same page, not overlapping either write.
constexpr off_t kOtherOffset = 8192;
constexpr size_t kOtherLength = 100;

class CoherenceTest : public MountFixture {
 protected:
  void TearDown() override {
    unsetenv("SEALFS_TEST_SYNC_DIR");
    unsetenv("SEALFS_TEST_SYNC_POINTS");
    MountFixture::TearDown();
  }

  // The file, written in a mount of its own, then a mount whose `nth` WRITE
  // request stops at kWritePoint until the test lets it go.
  void mount_with_held_write(int nth) {
    ASSERT_NO_FATAL_FAILURE(format_and_mount());
    auto bytes = pattern(kOldSeed, 0, kFileSize);
    write_file(path("f"), std::string(bytes.begin(), bytes.end()));
    ASSERT_NO_FATAL_FAILURE(unmount());
    sync_dir_ = dir() + "/sync";
    ASSERT_EQ(mkdir(sync_dir_.c_str(), 0755), 0) << std::strerror(errno);
    setenv("SEALFS_TEST_SYNC_DIR", sync_dir_.c_str(), 1);
    setenv("SEALFS_TEST_SYNC_POINTS", (std::string(kWritePoint) + "@" + std::to_string(nth)).c_str(),
           1);
    ASSERT_NO_FATAL_FAILURE(mount());
    unsetenv("SEALFS_TEST_SYNC_DIR");
    unsetenv("SEALFS_TEST_SYNC_POINTS");
  }

  bool write_is_held() {
    const std::string reached = sync_dir_ + "/" + kWritePoint + ".reached";
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (access(reached.c_str(), F_OK) != 0) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      usleep(1000);
    }
    return true;
  }
  void release_write() {
    const std::string go = sync_dir_ + "/" + kWritePoint + ".go";
    int fd = open(go.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    close(fd);
  }

  // The writer: caches the whole file (its last page up to date), writes
  // `earlier` first when given (a write that completes), then on the go
  // writes `held` under its lock with O_SYNC, and on the next go reads it
  // back under the same lock.
  Stepper writer(const HeldWrite& held, std::optional<HeldWrite> earlier) {
    const std::string file = path("f");
    return Stepper([file, held, earlier](Stepper& s) {
      int fd = open(file.c_str(), O_RDWR | O_SYNC | O_CLOEXEC);
      if (fd < 0) Stepper::fail("writer: open");
      std::vector<char> all(kFileSize);
      if (pread_all(fd, all.data(), all.size(), 0) != kFileSize) Stepper::fail("writer: prime");
      if (earlier) {
        auto bytes = pattern(kNewSeed, static_cast<uint64_t>(earlier->offset), earlier->length);
        if (!lock_range(fd, F_WRLCK, earlier->offset, static_cast<off_t>(earlier->length)) ||
            !pwrite_all(fd, bytes.data(), bytes.size(), earlier->offset) ||
            !lock_range(fd, F_UNLCK, earlier->offset, static_cast<off_t>(earlier->length))) {
          Stepper::fail("writer: earlier write");
        }
      }
      s.report_done();
      s.await_go();
      auto bytes = pattern(kNewSeed, static_cast<uint64_t>(held.offset), held.length);
      if (!lock_range(fd, F_WRLCK, held.offset, static_cast<off_t>(held.length))) {
        Stepper::fail("writer: lock");
      }
      if (!pwrite_all(fd, bytes.data(), bytes.size(), held.offset)) Stepper::fail("writer: write");
      s.report_done();
      s.await_go();
      expect_pattern(fd, held.offset, held.length, kNewSeed, "writer reading its own write");
      lock_range(fd, F_UNLCK, held.offset, static_cast<off_t>(held.length));
      close(fd);
    });
  }

  // After the held write has returned: another process changes the file's
  // metadata (a chmod to the same mode). Its reply brings the file's new
  // mtime into the kernel without dropping any page, as a concurrent stat
  // racing the writer's own read can; nothing then corrects a stale page.
  void change_metadata() {
    ASSERT_EQ(chmod(path("f").c_str(), 0644), 0) << std::strerror(errno);
  }

  void expect_writer_reads_its_write(Stepper& w) {
    w.go();
    auto status = w.finish(10s);
    EXPECT_TRUE(exited_ok(status)) << "the writer read stale bytes right after its own write "
                                      "returned (its stderr, above, says where)";
  }

  std::string sync_dir_;
};

class HeldWriteTest : public CoherenceTest,
                      public ::testing::WithParamInterface<HeldWrite> {};

// Another process opens the file while the write is on its way to the daemon
// and reads its own range of the same page.
TEST_P(HeldWriteTest, AnOpenMidWriteLeavesTheWritersBytesInTheCache) {
  const HeldWrite held = GetParam();
  ASSERT_NO_FATAL_FAILURE(mount_with_held_write(1));
  Stepper w = writer(held, std::nullopt);
  ASSERT_TRUE(w.step_done(10s)) << "the writer did not start";
  w.go();
  ASSERT_TRUE(write_is_held()) << "the write never reached " << kWritePoint;
  const std::string file = path("f");
  Stepper reader([file](Stepper&) {
    int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Stepper::fail("reader: open");
    if (!lock_range(fd, F_RDLCK, kOtherOffset, kOtherLength)) Stepper::fail("reader: lock");
    expect_pattern(fd, kOtherOffset, kOtherLength, kOldSeed, "reader");
  });
  auto read_status = reader.finish(10s);
  ASSERT_NO_FATAL_FAILURE(release_write());
  ASSERT_TRUE(exited_ok(read_status)) << "the other process's open and read failed or hung";
  ASSERT_TRUE(w.step_done(10s)) << "the write did not return";
  ASSERT_NO_FATAL_FAILURE(change_metadata());
  expect_writer_reads_its_write(w);
}

// Another process that had the file open reads its own range of the same
// page while the write is on its way; an earlier write by the writer has
// changed the file's mtime since the kernel last asked for it. (While an
// extending write is on its way the kernel ignores attribute replies, so
// the extending variant held even with auto_inval_data.)
TEST_P(HeldWriteTest, AReadMidWriteAfterAnEarlierWriteLeavesTheWritersBytes) {
  const HeldWrite held = GetParam();
  ASSERT_NO_FATAL_FAILURE(mount_with_held_write(2));
  const std::string file = path("f");
  Stepper reader([file](Stepper& s) {
    int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Stepper::fail("reader: open");
    s.report_done();
    s.await_go();
    if (!lock_range(fd, F_RDLCK, kOtherOffset, kOtherLength)) Stepper::fail("reader: lock");
    expect_pattern(fd, kOtherOffset, kOtherLength, kOldSeed, "reader");
    lock_range(fd, F_UNLCK, kOtherOffset, kOtherLength);
    s.report_done();
    s.await_go();
  });
  ASSERT_TRUE(reader.step_done(10s)) << "the reader did not open the file";
  Stepper w = writer(held, HeldWrite{"earlier", 100, 100});
  ASSERT_TRUE(w.step_done(10s)) << "the writer did not start";
  w.go();
  ASSERT_TRUE(write_is_held()) << "the second write never reached " << kWritePoint;
  reader.go();
  bool read_done = reader.step_done(10s);
  ASSERT_NO_FATAL_FAILURE(release_write());
  ASSERT_TRUE(read_done) << "the other process's read failed or hung";
  ASSERT_TRUE(w.step_done(10s)) << "the write did not return";
  ASSERT_NO_FATAL_FAILURE(change_metadata());
  expect_writer_reads_its_write(w);
  reader.go();
  EXPECT_TRUE(exited_ok(reader.finish(10s)));
}

// The same open mid-write, for a file whose only leases were exclusive
// (SEALFS_MAP_EXCLUSIVE, libsealfs-preload's) and a reader that maps the
// page through the mount. The writer, whose descriptor predates the lease
// and so writes through the page cache, mapped the file exclusively and let
// go first, as a program under sealfs-run does before another process
// opens the file. A file that had any lease used to lose its cached pages
// at every open: here the reader then cached the page without the held
// write, and the writer read its own write back stale (LMDB lost commits
// that way beside a `cat` loop).
TEST_P(HeldWriteTest, AnOpenMidWriteOfAFileThatHadOnlyExclusiveLeasesKeepsTheWrite) {
  const HeldWrite held = GetParam();
  ASSERT_NO_FATAL_FAILURE(mount_with_held_write(1));
  const std::string file = path("f");
  Stepper w([file, held](Stepper& s) {
    int fd = open(file.c_str(), O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0) Stepper::fail("writer: open");
    struct sealfs_map* m = nullptr;
    if (int rc = sealfs_map(fd, 0, 4096, PROT_READ, SEALFS_MAP_EXCLUSIVE, &m); rc != 0) {
      errno = -rc;
      Stepper::fail(std::string("writer: sealfs_map: ") + sealfs_last_error());
    }
    sealfs_unmap(m);
    std::vector<char> all(kFileSize);
    if (pread_all(fd, all.data(), all.size(), 0) != kFileSize) Stepper::fail("writer: prime");
    s.report_done();
    s.await_go();
    auto bytes = pattern(kNewSeed, static_cast<uint64_t>(held.offset), held.length);
    if (!pwrite_all(fd, bytes.data(), bytes.size(), held.offset)) Stepper::fail("writer: write");
    s.report_done();
    s.await_go();
    expect_pattern(fd, held.offset, held.length, kNewSeed, "writer reading its own write");
    close(fd);
  });
  ASSERT_TRUE(w.step_done(10s)) << "the writer did not start (its stderr says why)";
  w.go();
  ASSERT_TRUE(write_is_held()) << "the write never reached " << kWritePoint;
  Stepper reader([file](Stepper&) {
    int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Stepper::fail("reader: open");
    void* p = mmap(nullptr, kFileSize, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) Stepper::fail("reader: mmap");
    // Faults the page in from the daemon, which has not got the write yet.
    auto want = pattern(kOldSeed, kOtherOffset, kOtherLength);
    if (memcmp(static_cast<char*>(p) + kOtherOffset, want.data(), kOtherLength) != 0) {
      Stepper::fail("reader: its own range differs");
    }
    munmap(p, kFileSize);
    close(fd);
  });
  auto read_status = reader.finish(10s);
  ASSERT_NO_FATAL_FAILURE(release_write());
  ASSERT_TRUE(exited_ok(read_status)) << "the other process's open and read failed or hung";
  ASSERT_TRUE(w.step_done(10s)) << "the write did not return";
  expect_writer_reads_its_write(w);
}

INSTANTIATE_TEST_SUITE_P(LastPartialPage, HeldWriteTest,
                         ::testing::Values(kOverwrite, kExtendingWrite),
                         [](const ::testing::TestParamInfo<HeldWrite>& info) {
                           return std::string(info.param.name);
                         });

// The pattern of the issue at full speed: writers that each lock a random
// range of a small file (most of it on the same few pages, often across the
// end of file), write it (with and without O_SYNC), read it back under the
// lock and compare; a reader that reopens the file and reads random ranges
// under read locks. Every write takes a sequence number under its lock, so
// that afterwards the expected content can be rebuilt; it is compared with
// the file through the mount and again after a remount (the media).
struct Logged {
  uint64_t seq;
  int64_t offset;
  uint32_t length;
  uint32_t writer;
};
constexpr int kWriters = 3;
constexpr int kMaxLogged = 1 << 16;
constexpr auto kStressTime = 3s;

struct SharedLog {
  std::atomic<uint64_t> next{0};
  std::atomic<uint32_t> stop{0};
  Logged entries[kMaxLogged];
};

uint64_t seed_of(uint64_t seq) { return 1000 + seq; }

[[noreturn]] void stress_writer(const std::string& file, int id, SharedLog* log) {
  int fd = open(file.c_str(), O_RDWR | O_CLOEXEC | (id == kWriters - 1 ? 0 : O_SYNC));
  if (fd < 0) Stepper::fail("writer: open");
  std::mt19937 rng(static_cast<uint32_t>(id) * 7919u + 17u);
  while (log->stop.load() == 0) {
    const off_t size = lseek(fd, 0, SEEK_END);
    const off_t offset = static_cast<off_t>(rng() % static_cast<uint32_t>(size + 96));
    const size_t length = 1 + rng() % 700;
    if (!lock_range(fd, F_WRLCK, offset, static_cast<off_t>(length))) Stepper::fail("lock");
    const uint64_t seq = log->next.fetch_add(1);
    if (seq >= kMaxLogged) {
      lock_range(fd, F_UNLCK, offset, static_cast<off_t>(length));
      break;
    }
    auto bytes = pattern(seed_of(seq), static_cast<uint64_t>(offset), length);
    if (!pwrite_all(fd, bytes.data(), length, offset)) Stepper::fail("write");
    log->entries[seq] = {seq, offset, static_cast<uint32_t>(length), static_cast<uint32_t>(id)};
    expect_pattern(fd, offset, length, seed_of(seq), "writer reading its own write");
    lock_range(fd, F_UNLCK, offset, static_cast<off_t>(length));
  }
  close(fd);
  _exit(0);
}

[[noreturn]] void stress_reader(const std::string& file, SharedLog* log) {
  std::mt19937 rng(4242);
  std::vector<char> buf(4096);
  int fd = -1;
  for (uint64_t i = 0; log->stop.load() == 0; ++i) {
    if (i % 8 == 0) {
      if (fd >= 0) close(fd);
      fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) Stepper::fail("reader: open");
    }
    const off_t size = lseek(fd, 0, SEEK_END);
    const off_t offset = static_cast<off_t>(rng() % static_cast<uint32_t>(size));
    const size_t length = 1 + rng() % buf.size();
    if (!lock_range(fd, F_RDLCK, offset, static_cast<off_t>(length))) Stepper::fail("lock");
    if (pread(fd, buf.data(), length, offset) < 0) Stepper::fail("reader: read");
    lock_range(fd, F_UNLCK, offset, static_cast<off_t>(length));
  }
  _exit(0);
}

class ConcurrentWritersTest : public CoherenceTest,
                              public ::testing::WithParamInterface<const char*> {};

TEST_P(ConcurrentWritersTest, LockedWritersReadBackExactly) {
  MountConfig config;
  config.options = GetParam();
  ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
  const std::string file = path("f");
  auto initial = pattern(kOldSeed, 0, kFileSize);
  write_file(file, std::string(initial.begin(), initial.end()));

  void* shared = mmap(nullptr, sizeof(SharedLog), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED) << std::strerror(errno);
  auto* log = new (shared) SharedLog;
  std::vector<pid_t> children;
  for (int id = 0; id < kWriters; ++id) {
    pid_t pid = fork();
    if (pid == 0) stress_writer(file, id, log);
    children.push_back(pid);
  }
  pid_t reader = fork();
  if (reader == 0) stress_reader(file, log);
  children.push_back(reader);
  // The writers stop early if the log fills up.
  auto deadline = std::chrono::steady_clock::now() + kStressTime;
  while (std::chrono::steady_clock::now() < deadline && log->next.load() < kMaxLogged) {
    usleep(10000);
  }
  log->stop.store(1);
  for (pid_t pid : children) {
    auto status = wait_child(pid, 30s);
    EXPECT_TRUE(exited_ok(status)) << "a writer read stale bytes after its own write, or a "
                                      "child failed (its stderr, above, says where)";
    if (!status) kill(pid, SIGKILL);
  }
  const uint64_t writes = std::min<uint64_t>(log->next.load(), kMaxLogged);
  EXPECT_GT(writes, 100u) << "too few writes to mean anything";

  // Replayed in sequence order: overlapping writes held overlapping locks,
  // so that is the order they reached the file in.
  std::vector<uint8_t> expected(initial.begin(), initial.end());
  for (uint64_t seq = 0; seq < writes; ++seq) {
    const Logged& e = log->entries[seq];
    ASSERT_EQ(e.seq, seq) << "a write was numbered but not logged";
    const size_t end = static_cast<size_t>(e.offset) + e.length;
    if (expected.size() < end) expected.resize(end, 0);
    auto bytes = pattern(seed_of(seq), static_cast<uint64_t>(e.offset), e.length);
    std::copy(bytes.begin(), bytes.end(), expected.begin() + e.offset);
  }
  munmap(shared, sizeof(SharedLog));
  auto matches = [&](const std::string& content, const char* where) {
    ASSERT_EQ(content.size(), expected.size()) << where;
    for (size_t i = 0; i < content.size(); ++i) {
      ASSERT_EQ(static_cast<uint8_t>(content[i]), expected[i])
          << where << ": first wrong byte at " << i << " of " << content.size();
    }
  };
  matches(read_file(file), "through the mount");
  ASSERT_NO_FATAL_FAILURE(remount());
  matches(read_file(file), "after a remount");
}

INSTANTIATE_TEST_SUITE_P(Mounts, ConcurrentWritersTest,
                         ::testing::Values("", "writeback_cache"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(*info.param == '\0' ? "WriteThrough"
                                                                  : "WritebackCache");
                         });

}  // namespace
}  // namespace sealfs::itest
