// libsealfs-preload with real databases: LMDB (both map modes, mdb_load /
// mdb_dump) and SQLite (DELETE and WAL journals) run under sealfs-run on a
// real mount. Each test proves the direct path was taken: the program's
// map is backed by the region file in /proc/self/maps (what the kernel
// says, not the library), and the library's debug log counts direct maps.
// Breaks (fallocate, truncate from another process during a load) and
// kill -9 of the program or of the daemon must leave every committed
// transaction in place.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "mount_fixture.h"
#include "program.h"
#include "write_tracking_probe.h"

namespace sealfs::itest {
namespace {

using namespace std::chrono_literals;

std::string env_or_die(const char* name) {
  const char* v = getenv(name);
  return v != nullptr ? v : "";
}

class PreloadTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped()) return;
    MountConfig config;
    config.region_size = 256ull << 20;
    ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
    debug_log_ = dir() + "/preload.log";
  }

  // The environment of a program run under sealfs-run.
  std::vector<std::string> preload_env() const {
    return {"SEALFS_PRELOAD_LIBRARY=" + env_or_die("SEALFS_PRELOAD_LIBRARY"),
            "SEALFS_PRELOAD_DEBUG=" + debug_log_};
  }
  // The same for programs that share their files with other processes, with
  // a debug log of their own (shared_debug_text()).
  std::vector<std::string> shared_env() const {
    return {"SEALFS_PRELOAD_LIBRARY=" + env_or_die("SEALFS_PRELOAD_LIBRARY"),
            "SEALFS_PRELOAD_DEBUG=" + debug_log_ + ".shared"};
  }
  std::string shared_debug_text() const { return read_file(debug_log_ + ".shared"); }
  // Runs each program (under sealfs-run, the default environment) at once
  // and waits for all; their outputs, and whether all exited 0.
  bool run_together(const std::vector<std::vector<std::string>>& programs,
                    std::vector<std::string>* outputs) {
    std::vector<std::unique_ptr<Program>> running;
    for (const auto& argv : programs) running.push_back(std::make_unique<Program>(under_run(argv), shared_env()));
    bool all = true;
    for (auto& p : running) {
      const auto status = p->wait(std::chrono::seconds(120));
      all = all && status.has_value() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
      outputs->push_back(p->output());
    }
    return all;
  }
  std::vector<std::string> under_run(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), env_or_die("SEALFS_RUN"));
    return argv;
  }
  // Runs to completion; output (stdout and stderr) and exit status.
  int run(const std::vector<std::string>& argv, std::string* output, bool preload = true) {
    return run_command(preload ? under_run(argv) : argv, output, std::nullopt, 0,
                       preload ? preload_env() : std::vector<std::string>{});
  }
  std::string debug_text() const { return read_file(debug_log_); }
  size_t debug_count(const std::string& needle) const {
    const std::string text = debug_text();
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  }
  std::string region_name() const { return region_path().substr(region_path().rfind('/') + 1); }

  // "ok C" from a verify run, or -1 (with the output in the failure).
  long long verify(const std::vector<std::string>& argv, bool preload = true) {
    std::string output;
    const int rc = run(argv, &output, preload);
    EXPECT_EQ(rc, 0) << output;
    const size_t at = output.find("ok ");
    if (rc != 0 || at == std::string::npos) return -1;
    return std::atoll(output.c_str() + at + 3);
  }

  std::string debug_log_;
};

// The same on a region file that is persisted with msync(2) (page
// granularity), as an ordinary file on a disk is used.
class PreloadOnDiskTest : public PreloadTest {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped()) return;
    MountConfig config;
    config.region_size = 256ull << 20;
    config.on_disk = true;
    ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
    debug_log_ = dir() + "/preload.log";
  }
};

const std::string kLmdb = env_or_die("LMDB_WORKLOAD");
const std::string kSqlite = env_or_die("SQLITE_WORKLOAD");
const std::string kBehaviour = env_or_die("PRELOAD_BEHAVIOUR");

TEST_F(PreloadTest, LmdbWritemapAndDefaultModeOnDirectMappings) {
  for (const std::string mode : {"writemap", "default"}) {
    SCOPED_TRACE(mode);
    const std::string env_dir = path("lmdb-" + mode);
    ASSERT_EQ(mkdir(env_dir.c_str(), 0755), 0);
    std::string output;
    ASSERT_EQ(run({kLmdb, "load", env_dir, mode, "150", region_name()}, &output), 0) << output;
    EXPECT_NE(output.find("committed 149"), std::string::npos) << output;
    // After the first commit the kernel shows the lock file and the data
    // map on the region. The writable map is direct whole from the start
    // (LMDB extends the file to the map size), so no page of data.mdb is
    // mapped through the mount; the read-only one of the default mode is
    // direct over what the file has and ordinary past its end.
    const size_t at = output.find("mapped region=");
    ASSERT_NE(at, std::string::npos) << output;
    int region = 0, data = 0;
    ASSERT_EQ(sscanf(output.c_str() + at, "mapped region=%d data=%d", &region, &data), 2);
    EXPECT_GE(region, 2) << output;
    EXPECT_EQ(data, mode == "writemap" ? 0 : 1) << output;
    // Read back under sealfs-run: the existing environment is mapped
    // directly at once; and without it, through the mount: same data.
    EXPECT_EQ(verify({kLmdb, "verify", env_dir, "150"}), 150);
    EXPECT_EQ(verify({kLmdb, "verify", env_dir, "150"}, /*preload=*/false), 150);
    std::string direct_dump, fuse_dump;
    ASSERT_EQ(run({"mdb_dump", env_dir}, &direct_dump), 0) << direct_dump;
    ASSERT_EQ(run({"mdb_dump", env_dir}, &fuse_dump, false), 0) << fuse_dump;
    EXPECT_GT(direct_dump.size(), 150u * 16 * 200);
    EXPECT_TRUE(direct_dump == fuse_dump) << "mdb_dump differs with and without sealfs-run";
  }
  // The default mode grows the file by write(2): each growth breaks the
  // read-only lease, the range goes back to the file, and the next
  // fdatasync maps what exists again.
  EXPECT_GT(debug_count("direct again"), 0u) << debug_text();
  EXPECT_GT(debug_count(", break: write)"), 0u) << debug_text();
  EXPECT_GT(debug_count("sealfs-preload"), 0u);
  EXPECT_EQ(debug_count("stats direct=0 "), 0u) << debug_text();
}

// LMDB with MDB_WRITEMAP msyncs its whole map (32 MiB here) at every
// commit: the library's persists flush the pages each commit wrote, where
// the kernel can track them (docs/protocol.md "Persisting only what was
// written"), and every line of the map at every commit where it cannot.
TEST_F(PreloadTest, LmdbWritemapCommitsFlushWhatTheyWrote) {
  const std::string env_dir = path("lmdb");
  ASSERT_EQ(mkdir(env_dir.c_str(), 0755), 0);
  std::string output;
  ASSERT_EQ(run({kLmdb, "load", env_dir, "writemap", "100", region_name()}, &output), 0) << output;
  EXPECT_NE(output.find("committed 99"), std::string::npos) << output;
  const std::string text = debug_text();
  const size_t at = text.find("flushed_lines=");
  ASSERT_NE(at, std::string::npos) << text;
  unsigned long long lines = 0, scanned = 0, whole = 0;
  ASSERT_EQ(sscanf(text.c_str() + at, "flushed_lines=%llu scanned=%llu whole=%llu", &lines,
                   &scanned, &whole),
            3)
      << text;
  constexpr unsigned long long kMapLines = (32ull << 20) / 64;
  if (kernel_tracks_shmem_writes()) {
    EXPECT_GE(scanned, 100u) << text;
    // The first persist writes the whole map back (too small to be
    // write-protected when mapped), the hundred commits after it a few
    // pages each.
    EXPECT_LT(lines, kMapLines + kMapLines / 2) << text;
  } else {
    EXPECT_EQ(scanned, 0u) << text;
    EXPECT_GE(lines, 100 * kMapLines) << text;
  }
  EXPECT_EQ(verify({kLmdb, "verify", env_dir, "100"}, /*preload=*/false), 100);
}

TEST_F(PreloadTest, MdbLoadAndMdbDumpRoundTrip) {
  const std::string env_dir = path("loaded");
  ASSERT_EQ(mkdir(env_dir.c_str(), 0755), 0);
  // A dump of 3000 records written by the test itself.
  std::ostringstream data;
  for (int i = 0; i < 3000; ++i) {
    char key[32], value[512];
    snprintf(key, sizeof(key), "key-%06d", i);
    std::string v;
    for (int j = 0; j < 40 + i % 100; ++j) v += static_cast<char>('a' + (i * 7 + j) % 26);
    snprintf(value, sizeof(value), "%s", v.c_str());
    auto hex = [](const std::string& s) {
      static const char* digits = "0123456789abcdef";
      std::string out;
      for (unsigned char c : s) {
        out += digits[c >> 4];
        out += digits[c & 15];
      }
      return out;
    };
    data << " " << hex(key) << "\n " << hex(value) << "\n";
  }
  const std::string header = "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n";
  const std::string input = dir() + "/in.dump";
  write_file(input, header + data.str() + "DATA=END\n");
  std::string output;
  ASSERT_EQ(run({"mdb_load", "-f", input, env_dir}, &output), 0) << output;
  ASSERT_EQ(run({"mdb_dump", env_dir}, &output), 0) << output;
  const size_t start = output.find("HEADER=END\n");
  ASSERT_NE(start, std::string::npos) << output;
  EXPECT_TRUE(output.substr(start + 11) == data.str() + "DATA=END\n") << "dump differs";
  // mdb_dump opened an existing environment: its read-only map was direct.
  EXPECT_GT(debug_count("direct "), 0u) << debug_text();
}

TEST_F(PreloadTest, SqliteDeleteAndWalWithLargeMmap) {
  for (const std::string mode : {"delete", "wal"}) {
    SCOPED_TRACE(mode);
    const std::string db = path("sqlite-" + mode + ".db");
    std::string output;
    ASSERT_EQ(run({kSqlite, "load", db, mode, "120", region_name()}, &output), 0) << output;
    EXPECT_NE(output.find("committed 119"), std::string::npos) << output;
    // SQLite reads through its map: the kernel shows it on the region.
    const size_t at = output.find("mapped region=");
    ASSERT_NE(at, std::string::npos) << output;
    EXPECT_GT(std::atoi(output.c_str() + at + 14), 0) << output;
    EXPECT_EQ(verify({kSqlite, "verify", db, "120"}), 120);
    EXPECT_EQ(verify({kSqlite, "verify", db, "120"}, /*preload=*/false), 120);
  }
  EXPECT_GT(debug_count("direct "), 0u) << debug_text();
}

// The program's own write(2) breaks its own lease while the write holds a
// page of the file locked in the kernel (SQLite extends its WAL index, -shm,
// by writing into it while it maps its start): the fallback must not wait
// for that page (an open(2) or mmap(2) of the file would, until the break
// deadline, and the program would then die of SIGBUS).
TEST_F(PreloadTest, SqliteWalIndexGrowingUnderItsOwnMapping) {
  const std::string db = path("big.db");
  std::string output;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(run({kSqlite, "bigtxn", db, "70000"}, &output), 0) << output;
  EXPECT_NE(output.find("ok 70000"), std::string::npos) << output;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s) << "a break waited for its deadline";
  EXPECT_GT(debug_count(", break: write)"), 0u) << debug_text();
  // And through the mount, by the sqlite3 shell.
  output.clear();
  ASSERT_EQ(run({"sqlite3", db, "PRAGMA integrity_check; SELECT count(*) FROM t;"}, &output,
                /*preload=*/false),
            0)
      << output;
  EXPECT_EQ(output, "ok\n70000\n");
}

// Another process changes the database file's layout while the program
// runs on a direct mapping: the range goes back to the file in place and
// the program goes on; every transaction is there at the end.
TEST_F(PreloadTest, BreakDuringLoadKeepsTheDatabaseWorking) {
  struct Case {
    std::string name;
    std::vector<std::string> load;
    std::string file;  // what the breaker changes
    bool truncate;     // else fallocate past EOF
    std::vector<std::string> verify;
  };
  const std::string lmdb_dir = path("lmdb-break"), db = path("break.db");
  ASSERT_EQ(mkdir(lmdb_dir.c_str(), 0755), 0);
  const std::vector<Case> cases = {
      // Three reader threads read the map all along, across the break.
      {"lmdb writemap, truncate", {kLmdb, "load", lmdb_dir, "writemap", "600", region_name(), "3"},
       lmdb_dir + "/data.mdb", true, {kLmdb, "verify", lmdb_dir, "600"}},
      {"sqlite delete, fallocate", {kSqlite, "load", db, "delete", "400", region_name()}, db,
       false, {kSqlite, "verify", db, "400"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    // truncate(2) by path opens nothing: the truncate itself breaks the
    // lease. fallocate needs a descriptor, and this process's open of the
    // file already breaks the program's exclusive leases (docs/preload.md
    // "One process or several").
    const std::string reason =
        c.truncate ? ", break: truncate)" : ", break: another process opened the file)";
    const size_t breaks_before = debug_count(reason);
    Program program(under_run(c.load), preload_env());
    ASSERT_TRUE(program.expect("committed 40", 30s)) << program.output();
    struct stat st;
    ASSERT_EQ(stat(c.file.c_str(), &st), 0);
    if (c.truncate) {
      ASSERT_EQ(truncate(c.file.c_str(), st.st_size + (1 << 20)), 0) << strerror(errno);
    } else {
      const int fd = open(c.file.c_str(), O_RDWR);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, st.st_size, 1 << 20), 0) << strerror(errno);
      close(fd);
    }
    // The breaker got its answer while the program was still running: the
    // program let the lease go (without the fallback the daemon would have
    // waited for its exit or for lease_break_time, 45 s).
    const long long total = std::atoll(c.verify.back().c_str());
    EXPECT_LT(program.last_committed(), total - 1) << "the break waited for the program's end";
    const auto status = program.wait(120s);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << program.output();
    if (c.load.size() == 7) {
      const size_t at = program.output().find("readers bad=0 reads=");
      ASSERT_NE(at, std::string::npos) << program.output();
      EXPECT_GT(std::atol(program.output().c_str() + at + 20), 1000) << program.output();
    }
    // The test's own truncate or open broke the program's lease.
    EXPECT_GT(debug_count(reason), breaks_before) << debug_text();
    EXPECT_EQ(verify(c.verify), total);
  }
}

// kill -9 of the program, then of the daemon, in the middle of a load:
// after a remount every transaction the program saw committed is there.
TEST_F(PreloadTest, KillNineOfProgramAndDaemonKeepsCommittedTransactions) {
  struct Case {
    std::string name;
    std::vector<std::string> load;
    std::vector<std::string> verify;
  };
  // A database of its own for each run: a load starts again from the first
  // transaction and would rewrite what an earlier run committed.
  auto make_case = [&](bool lmdb, const std::string& suffix) {
    if (lmdb) {
      const std::string dir = path("lmdb-kill-" + suffix);
      EXPECT_EQ(mkdir(dir.c_str(), 0755), 0);
      return Case{"lmdb writemap", {kLmdb, "load", dir, "writemap", "1000000", region_name()},
                  {kLmdb, "verify", dir, "1000000"}};
    }
    const std::string db = path("kill-" + suffix + ".db");
    return Case{"sqlite wal", {kSqlite, "load", db, "wal", "1000000", region_name()},
                {kSqlite, "verify", db, "1000000"}};
  };
  for (const bool lmdb : {true, false}) {
    for (const bool daemon : {false, true}) {
      const Case c = make_case(lmdb, daemon ? "daemon" : "program");
      SCOPED_TRACE(c.name + (daemon ? ", daemon killed" : ", program killed"));
      Program program(under_run(c.load), preload_env());
      // The database runs on the region: the kernel says so.
      const auto mapped = program.expect("mapped region=", 60s);
      ASSERT_TRUE(mapped) << program.output();
      EXPECT_GT(std::atoi(mapped->c_str() + 14), 0) << *mapped;
      ASSERT_TRUE(program.expect("committed 60", 60s)) << program.output();
      if (daemon) {
        kill_daemon();
      } else {
        program.kill9();
      }
      // The daemon's death fences the direct pages: the program dies of
      // SIGBUS or of an I/O error, or is already dead.
      program.kill9();
      ASSERT_TRUE(program.wait(30s).has_value());
      const long long committed = program.last_committed();
      ASSERT_GE(committed, 60);
      if (daemon) {
        ASSERT_NO_FATAL_FAILURE(mount());
      }
      EXPECT_GE(verify(c.verify), committed + 1);
    }
  }
}

// fork: the child of a process with a direct mapping (MADV_DONTFORK) finds
// the file at the same addresses, through the mount.
TEST_F(PreloadTest, ForkedChildReadsTheFileWhereTheParentMapsItDirectly) {
  std::string data;
  for (int i = 0; i < 300000; ++i) data += static_cast<char>('A' + (i * 31 + i / 4096) % 26);
  write_file(path("forked"), data);
  std::string output;
  EXPECT_EQ(run({kBehaviour, "fork", path("forked"), region_name()}, &output), 0) << output;
  EXPECT_NE(output.find("mapped region=1"), std::string::npos) << output;
  EXPECT_NE(output.find("child ok"), std::string::npos) << output;
}

// fork: the child maps the file through an open of its own, which breaks
// the parent's exclusive lease, so the parent's stores after the fork reach
// the page cache the child sees. Through the inherited descriptor the
// daemon saw no second process: the parent stored into the region while
// the child kept the pages it had read.
TEST_F(PreloadTest, AForkedChildSeesTheParentsStoresAfterTheFork) {
  write_file(path("fork-store"), std::string(64 * 4096, 'a'));
  std::string output;
  EXPECT_EQ(run({kBehaviour, "fork-store", path("fork-store"), region_name()}, &output), 0)
      << output << debug_text();
  EXPECT_NE(output.find("mapped region=1"), std::string::npos) << output;
  EXPECT_NE(output.find("child saw the stores"), std::string::npos) << output;
  EXPECT_GT(debug_count("break: another process opened the file"), 0u) << debug_text();
}

// Signals: libsealfs's threads block every signal, so a process-directed
// signal that the program blocks in its own thread to sigwait() for is not
// taken (and its default action run) on one of them.
TEST_F(PreloadTest, SignalTheProgramWaitsForIsNotTakenByTheLibrary) {
  write_file(path("signalled"), std::string(65536, 's'));
  std::string output;
  EXPECT_EQ(run({kBehaviour, "signal", path("signalled")}, &output), 0) << output;
  EXPECT_NE(output.find("signal ok"), std::string::npos) << output;
  EXPECT_GT(debug_count("direct "), 0u) << debug_text();
}

// pread and pwrite inside a file's size go through a window (the library's
// own direct mapping): the stats count them, every write reads back in the
// program, and the bytes are the file's through the mount and after a
// remount.
unsigned char window_byte(int i, int k) { return static_cast<unsigned char>((i * 31 + k * 7 + 1) % 251); }

std::string window_block(int i) {
  std::string block(4096, '\0');
  for (int k = 0; k < 4096; ++k) block[k] = static_cast<char>(window_byte(i, k));
  return block;
}

size_t stat_value(const std::string& text, const std::string& name) {
  const size_t at = text.rfind(" " + name + "=");
  return at == std::string::npos ? 0 : std::strtoull(text.c_str() + at + name.size() + 2, nullptr, 10);
}

TEST_F(PreloadTest, PreadAndPwriteInsideTheFileGoThroughAWindow) {
  const int blocks = 256;
  std::string want(blocks * 4096, 'w');
  write_file(path("windowed"), want);
  std::string output;
  ASSERT_EQ(run({kBehaviour, "window", path("windowed")}, &output), 0) << output;
  EXPECT_NE(output.find("window ok"), std::string::npos) << output;
  for (int i = 0; i < 64; ++i) want.replace(size_t(i * 37 % blocks) * 4096, 4096, window_block(i));
  want.replace(4096, 4096, window_block(64));
  EXPECT_TRUE(read_file(path("windowed")) == want) << "the file through the mount differs";
  // Every write but the first few (before the window) and all their reads.
  const std::string log = debug_text();
  EXPECT_GE(stat_value(log, "window_writes"), 60u) << log;
  EXPECT_GE(stat_value(log, "window_reads"), 60u) << log;
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_TRUE(read_file(path("windowed")) == want) << "the file after a remount differs";
}

// A sparse file gets no window (a window never allocates), and the debug
// log says so in the terms of a program under sealfs-run (it passed on
// libsealfs's advice to use SEALFS_MAP_ALLOCATE, which such a program
// cannot follow); the calls still land, through the mount.
TEST_F(PreloadTest, ASparseFileGetsNoWindowAndTheLogSaysWhy) {
  const int fd = open(path("sparse").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 64 * 4096), 0);  // all hole
  close(fd);
  std::string output;
  ASSERT_EQ(run({kBehaviour, "window", path("sparse")}, &output), 0) << output;
  EXPECT_NE(output.find("window ok"), std::string::npos) << output;
  EXPECT_GT(debug_count("a window never allocates"), 0u) << debug_text();
  EXPECT_EQ(debug_count("SEALFS_MAP_ALLOCATE"), 0u) << debug_text();
}

// A truncate from another process breaks the window's lease: the library
// lets it go at once (the truncate does not wait for lease_break_time, and
// the program gets no SIGBUS), and the program's writes after it, inside
// and past the new size, land.
TEST_F(PreloadTest, AWindowGoesAtABreakAndTheWritesAfterItLand) {
  const int blocks = 64;
  write_file(path("broken"), std::string(blocks * 4096, 'b'));
  Program program(under_run({kBehaviour, "window-break", path("broken")}), preload_env());
  ASSERT_TRUE(program.expect("window made", 30s)) << program.output();
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(truncate(path("broken").c_str(), blocks / 2 * 4096), 0) << strerror(errno);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 20s) << "the truncate waited for the break time";
  const auto status = program.wait(60s);
  ASSERT_TRUE(status.has_value()) << program.output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << program.output();
  EXPECT_NE(program.output().find("after break ok"), std::string::npos) << program.output();
  EXPECT_GT(debug_count("goes (break)"), 0u) << debug_text();
  std::string want;
  for (int b = 0; b < blocks; ++b) want += window_block(100 + b);
  EXPECT_TRUE(read_file(path("broken")) == want) << "the file through the mount differs";
}

// Where the program maps the file through the page cache (its direct
// mapping went back to the file at a break), pwrite goes through the mount
// too: a window's store would leave the cached page old.
TEST_F(PreloadTest, WritesUnderAnOrdinaryMappingOfTheProgramSkipTheWindow) {
  write_file(path("mapped"), std::string(64 * 4096, 'm'));
  std::string output;
  EXPECT_EQ(run({kBehaviour, "window-mapped", path("mapped")}, &output), 0) << output;
  EXPECT_NE(output.find("mapping sees the writes"), std::string::npos) << output;
  EXPECT_GT(debug_count("window for inode"), 0u) << debug_text();
}

// A mapping the program keeps through the page cache after the library let
// it go (an mprotect) is not written behind its back by a window, nor read
// past: a store through it shows in pread, a pwrite shows in it.
TEST_F(PreloadTest, AMappingTheLibraryLetGoKeepsWindowsOffTheFile) {
  write_file(path("protected"), std::string(64 * 4096, 'A'));
  std::string output;
  EXPECT_EQ(run({kBehaviour, "window-mprotect", path("protected")}, &output), 0) << output;
  EXPECT_NE(output.find("mprotect ok"), std::string::npos) << output;
  EXPECT_GT(debug_count("mapped through the page cache"), 0u) << debug_text();
}

// read(2) of a page the descriptor cached, after a pwrite through the
// window, shows the new bytes.
TEST_F(PreloadTest, ReadAfterAWindowWriteShowsTheNewBytes) {
  write_file(path("reread"), std::string(64 * 4096, 'r'));
  std::string output;
  EXPECT_EQ(run({kBehaviour, "window-read", path("reread")}, &output), 0) << output;
  EXPECT_NE(output.find("read ok"), std::string::npos) << output;
  EXPECT_GT(stat_value(debug_text(), "window_writes"), 0u) << debug_text();
}

// A program that only reads (through a descriptor open for both, as
// databases open theirs) gets a read-only window, whose end moves no
// times: mtime stays what it was.
TEST_F(PreloadTest, AReaderDoesNotMoveTheFilesTimes) {
  write_file(path("read-only"), std::string(64 * 4096, 'o'));
  struct timespec old[2] = {{0, UTIME_OMIT}, {time(nullptr) - 3600, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path("read-only").c_str(), old, 0), 0);
  std::string output;
  EXPECT_EQ(run({kBehaviour, "window-reader", path("read-only")}, &output), 0) << output;
  EXPECT_NE(output.find("reader ok"), std::string::npos) << output;
  EXPECT_GT(stat_value(debug_text(), "window_reads"), 0u) << debug_text();
  usleep(300'000);  // the daemon stamps after the holder's connection closes
  struct stat st;
  ASSERT_EQ(stat(path("read-only").c_str(), &st), 0);
  EXPECT_LT(st.st_mtime, time(nullptr) - 3000) << "a reader moved mtime";
}

// fork: the child has no window (its pages are not inherited); its pwrite
// goes through the mount, and the parent's window reads it.
TEST_F(PreloadTest, AChildAfterForkWritesThroughTheMount) {
  write_file(path("forked-window"), std::string(64 * 4096, 'f'));
  std::string output;
  EXPECT_EQ(run({kBehaviour, "window-fork", path("forked-window")}, &output), 0) << output;
  EXPECT_NE(output.find("fork ok"), std::string::npos) << output;
  EXPECT_GT(debug_count("window for inode"), 0u) << debug_text();
}

// An fdatasync after pwrites that all went through a writable window is
// answered by the library: the stores were persisted as they were made and
// the mount keeps no written data back. Proof: the daemon is stopped
// (SIGSTOP) while the program commits 64 times; every commit returns (the
// first fdatasync would wait for the daemon if it went to it), then the
// daemon is killed (SIGKILL) without ever running again, and a new mount
// of the region has every committed byte.
TEST_F(PreloadTest, CommitsThroughAWindowNeedNoRequestToTheDaemon) {
  write_file(path("committed"), std::string(64 * 4096, 'c'));
  const std::string marker = dir() + "/go";
  std::vector<std::string> env = preload_env();
  env.push_back("SEALFS_PRELOAD_TIMES_MS=600000");  // no sync goes to the daemon for the times
  Program program(under_run({kBehaviour, "window-commits", path("committed"), marker}), env);
  ASSERT_TRUE(program.expect("window made", 30s)) << program.output();
  ASSERT_EQ(kill(daemon_pid(), SIGSTOP), 0);
  write_file(marker, "go");
  const bool committed = program.expect("commits ok", 20s).has_value();
  ASSERT_NO_FATAL_FAILURE(kill_daemon());
  EXPECT_TRUE(committed) << "a commit waited for the stopped daemon: " << program.output();
  unlink(marker.c_str());
  const auto status = program.wait(60s);
  ASSERT_TRUE(status.has_value()) << program.output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << program.output();
  EXPECT_GE(stat_value(debug_text(), "syncs_answered"), 64u) << debug_text();
  ASSERT_NO_FATAL_FAILURE(mount());
  std::string want(64 * 4096, 'c');
  for (int i = 56; i < 64; ++i) want.replace(size_t(i % 8) * 4096, 4096, window_block(200 + i));
  EXPECT_TRUE(read_file(path("committed")) == want) << "the file after the daemon's death differs";
}

// Answered fdatasyncs do not leave the file's times behind: one in a while
// (SEALFS_PRELOAD_TIMES_MS) tells the daemon (STORES, sealfs_note_stores),
// which moves mtime for the stores through the window while it is held.
TEST_F(PreloadTest, AnsweredCommitsStillMoveTheFilesTimes) {
  write_file(path("timed"), std::string(64 * 4096, 't'));
  const std::string marker = dir() + "/go";
  std::vector<std::string> env = preload_env();
  env.push_back("SEALFS_PRELOAD_TIMES_MS=200");
  Program program(under_run({kBehaviour, "window-times", path("timed"), marker}), env);
  ASSERT_TRUE(program.expect("window made", 30s)) << program.output();
  // The writes before the window went through the mount and moved mtime:
  // set it back, then the program commits through the window only.
  struct timespec old[2] = {{0, UTIME_OMIT}, {time(nullptr) - 3600, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path("timed").c_str(), old, 0), 0);
  write_file(marker, "go");
  ASSERT_TRUE(program.expect("commits ok", 60s)) << program.output();
  struct stat st;
  ASSERT_EQ(stat(path("timed").c_str(), &st), 0);
  EXPECT_GT(st.st_mtime, time(nullptr) - 30) << "mtime did not move while the window was held";
  unlink(marker.c_str());
  const auto status = program.wait(60s);
  ASSERT_TRUE(status.has_value()) << program.output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << program.output();
  EXPECT_GT(stat_value(debug_text(), "syncs_answered"), 0u) << debug_text();
}

// With the writeback cache the kernel holds the program's own pwrites that
// go to it (those before a window, those that extend the file) in its page
// cache until writeback, where a window would not see them: a pread
// through the window read the old bytes ("block 2 reads back wrong").
// No windows on such a mount, so no fdatasync is answered either.
class PreloadWritebackTest : public PreloadTest {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped()) return;
    MountConfig config;
    config.region_size = 256ull << 20;
    config.options = "writeback_cache";
    ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
    debug_log_ = dir() + "/preload.log";
  }
};

// Nor direct mappings: under the writeback cache the program's own pwrite
// through its descriptor (opened before the file's first lease) waits in
// the page cache, which a direct mapping of the region does not show; the
// mapping made right after showed the old block (review of 2026-12-07).
TEST_F(PreloadWritebackTest, AMappingShowsTheProgramsOwnCachedWrite) {
  write_file(path("written"), std::string(64 * 4096, 'w'));
  std::string output;
  EXPECT_EQ(run({kBehaviour, "write-then-map", path("written")}, &output), 0) << output;
  EXPECT_NE(output.find("map sees the write"), std::string::npos) << output;
  EXPECT_EQ(debug_count("direct "), 0u) << debug_text();
  EXPECT_GT(debug_count("writeback_cache"), 0u) << debug_text();
}

TEST_F(PreloadWritebackTest, NoWindowsUnderTheWritebackCache) {
  write_file(path("cached"), std::string(64 * 4096, 'k'));
  const std::string marker = dir() + "/go";
  write_file(marker, "go");
  Program program(under_run({kBehaviour, "window-commits", path("cached"), marker}), preload_env());
  ASSERT_TRUE(program.expect("commits ok", 60s)) << program.output();
  unlink(marker.c_str());
  const auto status = program.wait(60s);
  ASSERT_TRUE(status.has_value()) << program.output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << program.output();
  const std::string log = debug_text();
  EXPECT_EQ(stat_value(log, "windows"), 0u) << log;
  EXPECT_EQ(stat_value(log, "syncs_answered"), 0u) << log;
  std::string want(64 * 4096, 'k');
  for (int b = 0; b < 8; ++b) want.replace(size_t(b) * 4096, 4096, window_block(b));
  for (int i = 56; i < 64; ++i) want.replace(size_t(i % 8) * 4096, 4096, window_block(200 + i));
  EXPECT_TRUE(read_file(path("cached")) == want) << "the file through the mount differs";
}

// One pwrite names one file, however another thread reuses the
// descriptor's number meanwhile: the part of a write the window serves and
// the part that goes through the mount (here the block past the window's
// end) must not land in two files. Repeated, since the reuse must come
// while the copy through the window runs.
TEST_F(PreloadTest, APwriteWhoseDescriptorIsReusedMeanwhileWritesOneFile) {
  int ran_into_the_copy = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const std::string file = path("reused-" + std::to_string(attempt));
    const std::string other = path("other-" + std::to_string(attempt));
    write_file(file, std::string(8192 * 4096, 'o'));  // 32 MiB: a copy of some milliseconds
    write_file(other, "");
    std::string output;
    ASSERT_EQ(run({kBehaviour, "window-reuse", file, other}, &output), 0) << output;
    ASSERT_NE(output.find("reuse ok"), std::string::npos) << output;
    // Ended short at the window's end: the reuse came during its copy.
    if (output.find("pwrite returned " + std::to_string(8192 * 4096) + ")") != std::string::npos) {
      ++ran_into_the_copy;
    }
  }
  EXPECT_GT(debug_count("window for inode"), 0u) << debug_text();
  std::printf("the reuse came during the window's copy in %d of 5 runs\n", ran_into_the_copy);
}

// A process's record locks on a file go when it closes any descriptor of
// the file: the library, which needs descriptors of the files it maps,
// never closes one behind the program's back (SQLite and LMDB lock with
// them; two processes would both write). The library's descriptors go when
// the program closes its own, or when no mapping needs them and the file
// is not locked, and take no flock with them; a break never maps another
// file through a descriptor number the program closed and reused.
TEST_F(PreloadTest, TheProgramsRecordLocksSurviveWhatTheLibraryDoes) {
  write_file(path("locked"), std::string(64 * 4096, 'k'));
  write_file(path("unrelated"), std::string(64 * 4096, 'u'));
  std::string output;
  EXPECT_EQ(run({kBehaviour, "locks", path("locked"), path("unrelated")}, &output), 0) << output;
  EXPECT_NE(output.find("locks ok"), std::string::npos) << output;
  const std::string log = debug_text();
  EXPECT_GT(stat_value(log, "window_writes"), 0u) << log;
  EXPECT_GT(stat_value(log, "direct"), 0u) << log;
}

// The same in a pid namespace of its own that sees the outer /proc (as
// `unshare --pid --fork` without --mount-proc leaves it): whatever the
// library uses to know the program's locks must not depend on the pid the
// program sees (a version that read /proc/locks, whose pids are the outer
// namespace's, dropped the lock at the first munmap there).
TEST_F(PreloadTest, RecordLocksSurviveInAPidNamespaceOfTheirOwn) {
  write_file(path("locked-ns"), std::string(64 * 4096, 'k'));
  write_file(path("unrelated-ns"), std::string(64 * 4096, 'u'));
  std::string output;
  const std::vector<std::string> argv =
      under_run({kBehaviour, "locks", path("locked-ns"), path("unrelated-ns")});
  std::vector<std::string> in_namespace = {"unshare", "--pid", "--fork"};
  in_namespace.insert(in_namespace.end(), argv.begin(), argv.end());
  EXPECT_EQ(run_command(in_namespace, &output, std::nullopt, 0, preload_env()), 0) << output;
  EXPECT_NE(output.find("locks ok"), std::string::npos) << output;
}

// Two processes write one SQLite database at once, each under sealfs-run
// with its defaults (several processes: nothing direct): SQLite's record
// locks keep one writer at a time, so every transaction of both is there
// (a counter both increment, and the rows). When the library made windows
// and direct ranges here, its descriptors dropped those locks and a writer
// failed; the lock rule is tested on its own above.
TEST_F(PreloadTest, TwoProcessesWriteOneSqliteDatabaseAtOnce) {
  for (const std::string mode : {"delete", "wal"}) {
    SCOPED_TRACE(mode);
    const std::string db = path("shared-" + mode + ".db");
    std::string output;
    ASSERT_EQ(run({kSqlite, "share-init", db, mode}, &output), 0) << output;
    Program first(under_run({kSqlite, "share", db, "1", "300"}), shared_env());
    Program second(under_run({kSqlite, "share", db, "2", "300"}), shared_env());
    for (Program* p : {&first, &second}) {
      const auto status = p->wait(120s);
      ASSERT_TRUE(status.has_value()) << p->output();
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << p->output();
    }
    EXPECT_EQ(verify({kSqlite, "share-verify", db, "600"}), 600);
  }
  // The daemon kept their mappings apart: each was refused an exclusive
  // lease while the other had the file open, or had its own broken when the
  // other opened it (docs/preload.md "One process or several").
  EXPECT_NE(shared_debug_text().find("another process"), std::string::npos) << shared_debug_text();
  EXPECT_NE(shared_debug_text().find("loaded"), std::string::npos) << "the library was not loaded";
}

// LMDB's most common deployment, one writer process and reader processes,
// all under sealfs-run with its defaults: every read transaction sees a
// state some commit made (a counter equal to the number of records). When
// the library's leases were granted whoever else had the file open (the
// old SEALFS_PRELOAD_EXCLUSIVE=1 promise, broken by this program), the
// writer's pwrites reached the region through windows while a reader's
// range, which every growth of the file breaks back to the page cache until
// the reader's next sync (readers never sync), kept old pages: readers saw
// torn trees and LMDB asserted (the database campaign of 2026-12-07). The
// daemon's rule for exclusive leases keeps them apart now.
TEST_F(PreloadTest, OneLmdbWriterAndReaderProcessesSeeOnlyCommittedStates) {
  const std::string env_dir = path("lmdb-shared");
  ASSERT_EQ(mkdir(env_dir.c_str(), 0755), 0);
  std::string output;
  ASSERT_EQ(run({kLmdb, "count-write", env_dir, "1"}, &output), 0) << output;
  std::vector<std::string> outputs;
  const bool ok = run_together({{kLmdb, "count-write", env_dir, "3000"},
                                {kLmdb, "count-read", env_dir, "5"},
                                {kLmdb, "count-read", env_dir, "5"}},
                               &outputs);
  for (const std::string& o : outputs) EXPECT_EQ(o.find("bad"), o.find("bad 0")) << o;
  EXPECT_TRUE(ok) << outputs[0] << outputs[1] << outputs[2];
  EXPECT_NE(outputs[0].find("counted 3001"), std::string::npos) << outputs[0];
  EXPECT_NE(shared_debug_text().find("another process"), std::string::npos) << shared_debug_text();
}

// SQLite in WAL mode with two writer and two reader processes under
// sealfs-run's defaults, the WAL never checkpointed so that it and its
// index (-shm, which every process maps writable) grow while all map
// them: readers see only committed states, and every transaction is there.
TEST_F(PreloadTest, SqliteWalWritersAndReadersInSeveralProcesses) {
  const std::string db = path("shared-wal.db");
  std::string output;
  ASSERT_EQ(run({kSqlite, "share-init", db, "wal"}, &output), 0) << output;
  std::vector<std::string> outputs;
  setenv("SQLITE_WORKLOAD_NO_CHECKPOINT", "1", 1);
  const bool ok = run_together({{kSqlite, "share", db, "1", "1500"},
                                {kSqlite, "share", db, "2", "1500"},
                                {kSqlite, "share-read", db, "4"},
                                {kSqlite, "share-read", db, "4"}},
                               &outputs);
  unsetenv("SQLITE_WORKLOAD_NO_CHECKPOINT");
  for (const std::string& o : outputs) EXPECT_EQ(o.find("bad"), o.find("bad 0")) << o;
  EXPECT_TRUE(ok) << outputs[0] << outputs[1] << outputs[2] << outputs[3];
  EXPECT_EQ(verify({kSqlite, "share-verify", db, "3000"}), 3000);
  EXPECT_NE(shared_debug_text().find("another process"), std::string::npos) << shared_debug_text();
}

// A plain sqlite3 beside a writer under sealfs-run (the campaign's "peek"
// that lost commits): readers without the library read the database and
// its WAL index through the page cache while the writer commits. The
// writer's exclusive leases are refused or broken while they have the
// files open; nothing is lost and every read sees a committed state.
TEST_F(PreloadTest, ReadersWithoutTheLibraryBesideAWriterUnderIt) {
  const std::string db = path("peeked.db");
  std::string output;
  ASSERT_EQ(run({kSqlite, "share-init", db, "wal"}, &output), 0) << output;
  Program writer(under_run({kSqlite, "share", db, "1", "1500"}), shared_env());
  std::vector<std::unique_ptr<Program>> readers;
  for (int i = 0; i < 2; ++i) {
    readers.push_back(std::make_unique<Program>(
        std::vector<std::string>{kSqlite, "share-read", db, "3"}, std::vector<std::string>{}));
  }
  for (auto& reader : readers) {
    const auto status = reader->wait(120s);
    ASSERT_TRUE(status.has_value()) << reader->output();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << reader->output();
    EXPECT_EQ(reader->output().find("bad"), reader->output().find("bad 0")) << reader->output();
  }
  const auto status = writer.wait(120s);
  ASSERT_TRUE(status.has_value()) << writer.output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << writer.output();
  EXPECT_EQ(verify({kSqlite, "share-verify", db, "1500"}), 1500);
}

// A persist on a page-granularity region is an msync(2) of the region
// mapping, made by libsealfs from inside the library's own msync: it must
// go to the kernel (it deadlocked on the library's lock).
TEST_F(PreloadOnDiskTest, LmdbWritemapOnAnMsyncRegion) {
  const std::string env_dir = path("lmdb-disk");
  ASSERT_EQ(mkdir(env_dir.c_str(), 0755), 0);
  Program program(under_run({kLmdb, "load", env_dir, "writemap", "40", region_name()}),
                  preload_env());
  const auto status = program.wait(60s);
  ASSERT_TRUE(status.has_value()) << "the program hangs: " << program.output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << program.output();
  const size_t at = program.output().find("mapped region=");
  ASSERT_NE(at, std::string::npos) << program.output();
  EXPECT_GE(std::atoi(program.output().c_str() + at + 14), 2) << program.output();
  EXPECT_EQ(verify({kLmdb, "verify", env_dir, "40"}), 40);
  EXPECT_GT(debug_count("persists="), 0u) << debug_text();
  EXPECT_EQ(debug_count("persists=0 "), debug_count("stats ") - 1) << debug_text();
}

}  // namespace
}  // namespace sealfs::itest
