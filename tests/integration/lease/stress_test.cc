// Randomized lease stress: races in the daemon's lease wiring.
//
// One mount (lease_break_time=1, 256 MiB region) with a few files. Holder
// processes (stress_holder.cc: cooperative ones, and stubborn ones with each
// revoke policy asked per grant) keep mapping random ranges, with and
// without ALLOCATE, check what each new mapping shows, and store their
// file's words through it; some are SIGSTOPped for a while, some SIGKILLed.
// Breaker threads meanwhile truncate up and down, fallocate in every mode,
// write in place and past EOF, unlink and recreate, rename over, open with
// O_TRUNC, and read every file back. A signalled breaker process
// (stress_sigbreaker.cc) changes the size of two files of its own while it
// gets SIGUSR1 and SIGSTOP/SIGCONT, and checks that an EINTR changed nothing.
//
// Invariants checked:
//  - every syscall returns a valid result: no EIO, EBUSY, ENXIO, ...; no
//    EINTR without a signal (nothing signals the breaker threads; the
//    signalled breaker's EINTRs are matched with the signals sent); maps
//    refuse only with their documented errors;
//  - no call hangs: each is bounded by 3 break times + 2 s (watchdog);
//  - no byte of another (often deleted) file, and nothing at a wrong
//    offset, is ever visible through read(2) or a new mapping: all data are
//    self-describing words (stress_word.h), each file carries its lineage
//    in an xattr, and a truncation to zero starts a new lineage;
//  - a SIGBUS only ever hits a fenced mapping;
//  - afterwards (holders killed) the daemon is alive, the files read back
//    clean, deleting everything gives back exactly the free space of the
//    empty filesystem (no leaked quarantine, no double free), the daemon
//    unmounts cleanly and fsck.sealfs -n finds the image clean.
//
// Reproduce and soak:
//   SEALFS_STRESS_SEED=N      replay the choices of a run (it prints its seed;
//                             timing still differs from run to run)
//   SEALFS_STRESS_SECONDS=N   run for N seconds (default 20)
//   SEALFS_STRESS_KEEP=DIR    keep the trace and the daemon log in DIR
// A failing run always copies its trace and daemon log to
// /tmp/sealfs-stress-SEED/.
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "lease_fixture.h"
#include "sealfs/sealfs.h"
#include "stress_run.h"
#include "stress_word.h"

namespace sealfs::itest {
namespace {

namespace st = stress;
using st::SteadyClock;

constexpr int kFiles = 8;      // f0..f7: the breaker threads'
constexpr int kSigFiles = 2;   // f8, f9: the signalled breaker's alone
constexpr int kAllFiles = kFiles + kSigFiles;
constexpr int kBreakers = 4;
constexpr unsigned kBreakTime = 1;
constexpr uint64_t kRegion = 256 * kMiB;
constexpr uint64_t kMaxFile = 6 * kMiB;
constexpr auto kMaxStop = 3000ms;
// Every blocking call ends within this: its own break, and perhaps the
// breaks of another breaker it queued behind (measured: up to 2.5 s).
constexpr auto kOpBound = std::chrono::milliseconds(3 * kBreakTime * 1000 + 2000);
constexpr auto kHardLimit = 60s;
const char* const kHolderModes[] = {"coop",       "coop",       "fence", "kill",
                                    "quarantine", "quarantine", "mixed"};

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

std::string env_str(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

std::string errno_name(int err) {
  const char* n = strerrorname_np(err);
  return n != nullptr ? n : std::to_string(err);
}

// ---- holders ----

struct Holder {
  std::string mode;  // "sigbreaker" for the signalled breaker
  pid_t pid = -1;
  int out = -1;
  std::thread reader;
  bool stopped = false;
  SteadyClock::time_point resume_at;
  std::atomic<int> stops{0};
  std::atomic<bool> ready{false};  // it said "ready": its signal handlers are in place  // SIGSTOPs it has had (an EINTR after one is explained)
  bool killed_by_us = false;
};

class StressTest : public LeaseFixture {
 protected:
  void TearDown() override {
    kill_holders();
    LeaseFixture::TearDown();
  }

  std::string file_path(int file) const { return path("d/f" + std::to_string(file)); }
  std::string tmp_path(int thread) const { return path("d/t" + std::to_string(thread)); }

  // ---- checks shared by the breakers ----

  // A failure that is neither success nor an allowed errno is a violation.
  void expect_result(const std::string& who, const std::string& what, const st::Timed& t,
                     std::initializer_list<int> allowed) {
    stats_->record(what.substr(0, what.find(' ')), t.seconds, t.rc < 0 ? t.err : 0);
    if (t.rc >= 0) return;
    for (int e : allowed) {
      if (t.err == e) return;
    }
    std::string text = who + ": " + what + " failed with " + errno_name(t.err) + " after " +
                       std::to_string(t.seconds) + " s";
    if (t.err == EINTR) text += " (nothing signals the breakers)";
    violations_->add(text);
    trace_->line(who, "VIOLATION " + text);
  }

  uint64_t lineage_of(int fd) {
    char buf[32] = {};
    ssize_t n = fgetxattr(fd, st::kLineageXattr, buf, sizeof buf - 1);
    if (n < 0) {
      if (errno != ENODATA) violations_->add(std::string("fgetxattr: ") + std::strerror(errno));
      return 0;
    }
    return std::strtoull(buf, nullptr, 10);
  }

  bool set_lineage(int fd, uint64_t lineage, const std::string& who) {
    const std::string v = std::to_string(lineage);
    if (fsetxattr(fd, st::kLineageXattr, v.data(), v.size(), 0) == 0) return true;
    if (errno != ENOSPC) violations_->add(who + ": fsetxattr: " + std::strerror(errno));
    return false;
  }

  // Reads the whole file behind fd and judges every byte against lineage.
  void check_contents(int fd, uint64_t lineage, int file, const std::string& who,
                      const std::string& when) {
    std::vector<uint8_t> buf(1 * kMiB);
    uint64_t off = 0;
    while (true) {
      ssize_t n = pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
      if (n < 0) {
        violations_->add(who + ": read of f" + std::to_string(file) + " at " +
                         std::to_string(off) + ": " + errno_name(errno));
        return;
      }
      if (n == 0) return;
      const uint64_t bad = st::first_bad_word(buf.data(), static_cast<size_t>(n), lineage, off);
      if (bad != UINT64_MAX) {
        const uint64_t w = st::word_at(buf.data(), static_cast<size_t>(n), off, bad);
        const st::Decoded d = st::decode_word(w);
        std::string text = who + ": stale data in read(2) of f" + std::to_string(file) + " (" +
                           when + ", " + lineages_.describe(lineage) + "): word at offset " +
                           std::to_string(bad) + " is " + st::describe_word(w);
        if (d.magic) text += "; that is " + lineages_.describe(d.lineage);
        violations_->add(text);
        trace_->line(who, "VIOLATION " + text);
        return;
      }
      off += static_cast<uint64_t>(n);
    }
  }

  // pwrite of the file's words; short writes only with ENOSPC.
  st::Timed write_words(st::InFlight& slot, const std::string& what, int fd, uint64_t lineage,
                        uint64_t off, uint64_t len) {
    std::vector<uint64_t> words(len / 8);
    st::fill_words(words.data(), len, lineage, false, off);
    return st::timed_call(slot, what, [&] {
      return static_cast<long>(pwrite(fd, words.data(), len, static_cast<off_t>(off)));
    });
  }

  // ---- holders ----

  void spawn_holder(size_t index) {
    ASSERT_NO_FATAL_FAILURE(spawn(*holders_[index], "h" + std::to_string(index), index));
  }

  void spawn(Holder& h, const std::string& name, size_t index) {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    const bool sig = h.mode == "sigbreaker";
    const char* env = sig ? "SEALFS_STRESS_SIGBREAKER" : "SEALFS_STRESS_HOLDER";
    const std::string bin = env_str(env);
    ASSERT_FALSE(bin.empty()) << env << " is not set (meson sets it)";
    const std::string seed = std::to_string(seed_ * 1000003 + index * 7919 + spawns_++);
    const std::string hang = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(kOpBound + kMaxStop).count() + 1);
    const std::string dir = path("d");
    std::vector<std::string> args =
        sig ? std::vector<std::string>{bin, dir, std::to_string(kFiles), std::to_string(kSigFiles),
                                       seed, hang}
            : std::vector<std::string>{bin, h.mode, dir, std::to_string(kAllFiles), seed, hang};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      dup2(fds[1], STDOUT_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    h.pid = pid;
    h.out = fds[0];
    h.stopped = false;
    h.killed_by_us = false;
    h.stops = 0;
    h.ready = false;
    const std::string who = name + "/" + std::to_string(pid);
    trace_->line(who, "spawned " + h.mode + " seed " + seed);
    h.reader = std::thread([this, &h, who] { read_holder(h, who); });
  }

  void read_holder(Holder& h, const std::string& who) {
    std::string partial;
    char buf[4096];
    while (true) {
      ssize_t n = read(h.out, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      partial.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = partial.find('\n')) != std::string::npos) {
        std::string line = partial.substr(0, nl);
        partial.erase(0, nl + 1);
        on_holder_line(h, who, line);
      }
    }
    close(h.out);
  }

  void on_holder_line(Holder& h, const std::string& who, const std::string& line) {
    trace_->line(who, line);
    std::istringstream in(line);
    std::string word;
    in >> word;
    if (word == "ready") {
      h.ready = true;
    } else if (word == "BAD") {
      std::string text = who + " (" + h.mode + "): " + line.substr(4);
      // Name the lineage of a foreign word in a stale-data report.
      auto at = line.find("(lineage ", line.find(" is 0x"));
      if (at != std::string::npos) {
        text += "; that is " + lineages_.describe(std::strtoull(line.c_str() + at + 9, nullptr, 10));
      }
      violations_->add(text);
    } else if (word == "map") {
      std::string f, off, len, flags, rc_key;
      long rc = 0;
      in >> f >> off >> len >> flags >> rc_key >> rc;
      stats_->count(rc == 0 ? "maps" : "map_refused_" + errno_name(static_cast<int>(-rc)));
      if (rc == 0 && (std::stoul(flags) & SEALFS_MAP_ALLOCATE)) stats_->count("maps_allocate");
    } else if (word == "break") {
      std::string id, key;
      int reason = 0;
      in >> id >> key >> reason;
      stats_->count("breaks_reason_" + std::to_string(reason));
    } else if (word == "sigbus" || word == "ghost" || word == "release") {
      stats_->count(word == "release" ? "releases" : word);
    } else if (word == "op") {
      stats_->count("sigbreaker_calls");
    } else if (word == "eintr" && h.mode == "sigbreaker") {
      judge_sigbreaker_eintr(who, line);
    } else if (word == "eintr") {
      // A FUSE request interrupted by SIGSTOP answers EINTR (the kernel
      // cannot restart it); without any stop it is a violation.
      if (h.stops.load() > 0) {
        stats_->count("holder_eintr_after_stop");
      } else {
        violations_->add(who + " (" + h.mode + "): EINTR without any signal: " + line);
      }
    }
  }

  // "eintr OP START END handler H" from the signalled breaker: fine after
  // its SIGUSR1 handler ran; a violation otherwise: a SIGSTOP/SIGCONT alone
  // must not fail the call (the daemon answers EINTR only when a caught or
  // fatal signal is pending, as a kernel filesystem would restart it).
  void judge_sigbreaker_eintr(const std::string& who, const std::string& line) {
    std::istringstream in(line);
    std::string word, op, key;
    uint64_t start = 0, end = 0;
    int handler = 0;
    in >> word >> op >> start >> end >> key >> handler;
    if (handler != 0) {
      stats_->count("sigbreaker_eintr_handler");
      return;
    }
    std::lock_guard lock(signals_mu_);
    for (uint64_t t : stops_sent_) {
      if (t >= start && t <= end) {
        violations_->add(who + ": " + op + " failed with EINTR after only a SIGSTOP/SIGCONT: " +
                         line);
        return;
      }
    }
    violations_->add(who + ": " + op + " failed with EINTR, and no signal was sent during it: " +
                     line);
  }

  static uint64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
  }

  // Signals the signalled breaker: SIGUSR1, or SIGSTOP now and SIGCONT at
  // resume_at.
  void signal_sigbreaker(std::mt19937_64& rng, SteadyClock::time_point now) {
    Holder& s = *sigbreaker_;
    // Before its handlers exist, SIGUSR1 would simply kill it.
    if (s.pid <= 0 || !s.ready) return;
    if (s.stopped) {
      if (now >= s.resume_at) {
        kill(s.pid, SIGCONT);
        s.stopped = false;
      }
      return;
    }
    if (now < sig_next_) return;
    sig_next_ = now + std::chrono::milliseconds(100 + rng() % 400);
    if (rng() % 2 == 0) {
      kill(s.pid, SIGUSR1);
      stats_->count("sigbreaker_usr1");
    } else {
      {
        std::lock_guard lock(signals_mu_);
        stops_sent_.push_back(monotonic_ns());
      }
      ++s.stops;
      kill(s.pid, SIGSTOP);
      s.stopped = true;
      s.resume_at = now + std::chrono::milliseconds(20 + rng() % 400);
      stats_->count("sigbreaker_stops");
    }
  }

  // Reaps holders that exited; judges how; spawns a replacement.
  void reap_and_respawn() {
    for (size_t i = 0; i < holders_.size(); ++i) {
      Holder& h = *holders_[i];
      int status = 0;
      pid_t r = waitpid(h.pid, &status, WNOHANG);
      if (r != h.pid) continue;
      h.reader.join();
      const std::string who = "h" + std::to_string(i) + "/" + std::to_string(h.pid);
      if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        stats_->count(h.killed_by_us ? "holders_killed_by_test" : "holders_killed_by_daemon");
        trace_->line(who, h.killed_by_us ? "killed (by the test)" : "killed (by the daemon)");
      } else {
        // 70/71: the holder said BAD already.
        if (!(WIFEXITED(status) && (WEXITSTATUS(status) == 70 || WEXITSTATUS(status) == 71))) {
          violations_->add(who + " (" + h.mode + ") ended with wait status " +
                           std::to_string(status));
        }
        trace_->line(who, "exited, status " + std::to_string(status));
      }
      h.pid = -1;
      if (!stop_holders_) spawn_holder(i);
    }
    if (sigbreaker_ && sigbreaker_->pid > 0 &&
        waitpid(sigbreaker_->pid, nullptr, WNOHANG) == sigbreaker_->pid) {
      sigbreaker_->reader.join();
      sigbreaker_->pid = -1;
      // 71: it said BAD (a hang) already.
      violations_->add("the signalled breaker exited during the run");
    }
  }

  void kill_holders() {
    if (sigbreaker_) holders_.push_back(std::move(sigbreaker_));
    for (auto& hp : holders_) {
      Holder& h = *hp;
      if (h.pid <= 0) continue;
      kill(h.pid, SIGKILL);
      kill(h.pid, SIGCONT);
      waitpid(h.pid, nullptr, 0);
      if (h.reader.joinable()) h.reader.join();
      h.pid = -1;
    }
  }

  // SIGSTOPs, SIGCONTs and SIGKILLs holders at random until `until`.
  void chaos(std::mt19937_64& rng, SteadyClock::time_point until) {
    auto next_action = SteadyClock::now() + 500ms;
    while (SteadyClock::now() < until) {
      // The holders live on their own; this loop only paces the chaos.
      // Faster than the holders' chaos: the signals must meet calls.
      for (int k = 0; k < 5; ++k) {
        signal_sigbreaker(rng, SteadyClock::now());
        std::this_thread::sleep_for(10ms);
      }
      reap_and_respawn();
      const auto now = SteadyClock::now();
      for (size_t i = 0; i < holders_.size(); ++i) {
        Holder& h = *holders_[i];
        if (h.stopped && now >= h.resume_at && h.pid > 0) {
          kill(h.pid, SIGCONT);
          h.stopped = false;
          trace_->line("h" + std::to_string(i) + "/" + std::to_string(h.pid), "SIGCONT");
        }
      }
      if (now < next_action) continue;
      next_action = now + std::chrono::milliseconds(300 + rng() % 900);
      const size_t i = rng() % holders_.size();
      Holder& h = *holders_[i];
      if (h.pid <= 0 || h.stopped) continue;
      const std::string who = "h" + std::to_string(i) + "/" + std::to_string(h.pid);
      if (rng() % 100 < 75) {
        const auto stop_for = std::chrono::milliseconds(300 + rng() % kMaxStop.count());
        ++h.stops;
        kill(h.pid, SIGSTOP);
        h.stopped = true;
        h.resume_at = now + stop_for;
        stats_->count("holder_stops");
        trace_->line(who, "SIGSTOP for " + std::to_string(stop_for.count()) + " ms");
      } else {
        h.killed_by_us = true;
        kill(h.pid, SIGKILL);
        trace_->line(who, "SIGKILL");
      }
    }
    for (auto& hp : holders_) {
      if (hp->stopped && hp->pid > 0) kill(hp->pid, SIGCONT);
      hp->stopped = false;
    }
    if (sigbreaker_ && sigbreaker_->stopped) {
      kill(sigbreaker_->pid, SIGCONT);
      sigbreaker_->stopped = false;
    }
  }

  // ---- breakers ----

  struct FileLocks {
    // Exclusive: a new lineage for the inode (O_TRUNC, truncate to 0, and a
    // recreated file being filled); shared: everything that writes or
    // judges the inode's words.
    std::shared_mutex layout;
    // Namespace changes of the name (unlink + recreate, rename over).
    std::mutex names;
  };

  void breaker(int t, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const std::string who = "b" + std::to_string(t);
    st::InFlight& slot = watchdog_->slot(who);
    while (!stop_breakers_.load()) {
      int file = static_cast<int>(rng() % kFiles);
      const unsigned pick = static_cast<unsigned>(rng() % 100);
      if (pick < 14) {
        op_truncate(who, slot, rng, file);
      } else if (pick < 28) {
        op_fallocate(who, slot, rng, file);
      } else if (pick < 38) {
        op_pwrite(who, slot, rng, file, /*extend=*/true);
      } else if (pick < 48) {
        op_pwrite(who, slot, rng, file, /*extend=*/false);
      } else if (pick < 53) {
        op_recreate(who, slot, rng, file);
      } else if (pick < 58) {
        op_rename_over(who, slot, rng, file, t);
      } else if (pick < 63) {
        op_new_lineage(who, slot, rng, file, /*o_trunc=*/true);
      } else if (pick < 66) {
        op_new_lineage(who, slot, rng, file, /*o_trunc=*/false);
      } else if (pick < 68) {
        op_fsync(who, slot, file);
      } else {
        // Read checks cover the signalled breaker's files too.
        if (rng() % 5 == 0) file = kFiles + static_cast<int>(rng() % kSigFiles);
        op_read_check(who, slot, file);
      }
    }
  }

  // Opens the file for a breaker (ENOENT: between unlink and recreate).
  int open_file(const std::string& who, st::InFlight& slot, int file, int flags) {
    const std::string p = file_path(file);
    st::Timed t = st::timed_call(slot, std::string(flags & O_TRUNC ? "open_trunc " : "open ") + p,
                                 [&] { return open(p.c_str(), flags | O_CLOEXEC); });
    expect_result(who, std::string(flags & O_TRUNC ? "open_trunc " : "open ") + p, t, {ENOENT});
    return static_cast<int>(t.rc);
  }

  int64_t fd_size(int fd) {
    struct stat s {};
    if (fstat(fd, &s) != 0) {
      violations_->add(std::string("fstat: ") + std::strerror(errno));
      return -1;
    }
    return s.st_size;
  }

  static uint64_t random_size(std::mt19937_64& rng, uint64_t below) {
    if (below == 0) return 0;
    uint64_t v = rng() % below;
    return rng() % 4 == 0 ? v : v & ~uint64_t{7};  // mostly whole words
  }

  void op_truncate(const std::string& who, st::InFlight& slot, std::mt19937_64& rng, int file) {
    std::shared_lock lock(locks_[file].layout);
    int fd = open_file(who, slot, file, O_RDWR);
    if (fd < 0) return;
    const int64_t size = fd_size(fd);
    uint64_t target = rng() % 2 == 0 && size > 8
                          ? random_size(rng, static_cast<uint64_t>(size))
                          : static_cast<uint64_t>(size) + random_size(rng, 1 * kMiB);
    target = std::clamp<uint64_t>(target, 8, kMaxFile);  // zero is op_new_lineage's
    const std::string what = "truncate f" + std::to_string(file) + " " + std::to_string(size) +
                             "->" + std::to_string(target);
    st::Timed t;
    if (rng() % 2 == 0) {
      const std::string p = file_path(file);
      t = st::timed_call(slot, what, [&] { return truncate(p.c_str(), static_cast<off_t>(target)); });
      // By name: the name may be between unlink and recreate.
      expect_result(who, what, t, {ENOENT});
    } else {
      t = st::timed_call(slot, what, [&] { return ftruncate(fd, static_cast<off_t>(target)); });
      expect_result(who, what, t, {});
    }
    trace_->line(who, what + " rc " + std::to_string(t.rc) + " in " + std::to_string(t.seconds));
    close(fd);
  }

  void op_fallocate(const std::string& who, st::InFlight& slot, std::mt19937_64& rng, int file) {
    static const int kModes[] = {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                 FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE};
    std::shared_lock lock(locks_[file].layout);
    int fd = open_file(who, slot, file, O_RDWR);
    if (fd < 0) return;
    const int64_t size = fd_size(fd);
    const int mode = kModes[rng() % 5];
    uint64_t off = random_size(rng, static_cast<uint64_t>(size) + 512 * kKiB);
    uint64_t len = 1 + random_size(rng, 1 * kMiB);
    if (off >= kMaxFile) off = kMaxFile / 2;
    len = std::min(len, kMaxFile - off);
    const std::string what = "fallocate f" + std::to_string(file) + " mode " +
                             std::to_string(mode) + " " + std::to_string(off) + "+" +
                             std::to_string(len) + " size " + std::to_string(size);
    st::Timed t = st::timed_call(slot, what, [&] {
      return fallocate(fd, mode, static_cast<off_t>(off), static_cast<off_t>(len));
    });
    expect_result(who, what, t, {ENOSPC});
    trace_->line(who, what + " rc " + std::to_string(t.rc) + " in " + std::to_string(t.seconds));
    close(fd);
  }

  void op_pwrite(const std::string& who, st::InFlight& slot, std::mt19937_64& rng, int file,
                 bool extend) {
    std::shared_lock lock(locks_[file].layout);
    int fd = open_file(who, slot, file, O_RDWR);
    if (fd < 0) return;
    const uint64_t lineage = lineage_of(fd);
    const int64_t size = fd_size(fd);
    if (lineage == 0 || size < 0 || (!extend && size < 8)) {
      close(fd);
      return;
    }
    const uint64_t usize = static_cast<uint64_t>(size);
    uint64_t off = extend ? ((usize + 7) & ~uint64_t{7}) + (random_size(rng, 64 * kKiB) & ~uint64_t{7})
                          : random_size(rng, usize) & ~uint64_t{7};
    uint64_t len = 8 + (random_size(rng, 256 * kKiB) & ~uint64_t{7});
    if (off + len > kMaxFile) {
      close(fd);
      return;
    }
    const std::string what = std::string(extend ? "pwrite_extend" : "pwrite_inplace") + " f" +
                             std::to_string(file) + " " + std::to_string(off) + "+" +
                             std::to_string(len) + " size " + std::to_string(size) + " lineage " +
                             std::to_string(lineage);
    st::Timed t = write_words(slot, what, fd, lineage, off, len);
    expect_result(who, what, t, {ENOSPC});
    if (t.rc >= 0 && static_cast<uint64_t>(t.rc) != len && t.rc % 8 != 0) {
      violations_->add(who + ": " + what + " wrote " + std::to_string(t.rc) + " bytes");
    }
    trace_->line(who, what + " rc " + std::to_string(t.rc) + " in " + std::to_string(t.seconds));
    close(fd);
  }

  // A new file under the name: exclusive so nobody sees it half made with
  // someone else's idea of its lineage.
  void fill_new_file(const std::string& who, st::InFlight& slot, std::mt19937_64& rng, int fd,
                     uint64_t lineage, int file) {
    const uint64_t len = random_size(rng, 2 * kMiB) & ~uint64_t{7};
    if (len == 0) return;
    st::Timed t = write_words(slot, "pwrite_new f" + std::to_string(file), fd, lineage, 0, len);
    expect_result(who, "pwrite_new f" + std::to_string(file), t, {ENOSPC});
  }

  void op_recreate(const std::string& who, st::InFlight& slot, std::mt19937_64& rng, int file) {
    std::lock_guard names(locks_[file].names);
    std::unique_lock lock(locks_[file].layout);
    const std::string p = file_path(file);
    uint64_t old = 0;
    if (int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
      old = lineage_of(fd);
      close(fd);
    }
    st::Timed t = st::timed_call(slot, "unlink " + p, [&] { return unlink(p.c_str()); });
    expect_result(who, "unlink f" + std::to_string(file), t, {ENOENT});
    if (t.rc == 0) lineages_.retire(old, "unlinked", trace_->seconds());
    t = st::timed_call(slot, "create " + p, [&] {
      return open(p.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
    });
    expect_result(who, "create f" + std::to_string(file), t, {ENOSPC});
    if (t.rc < 0) return;
    const int fd = static_cast<int>(t.rc);
    const uint64_t lineage = lineages_.create(file, "created", trace_->seconds());
    trace_->line(who, "recreate f" + std::to_string(file) + " lineage " + std::to_string(old) +
                          " -> " + std::to_string(lineage));
    if (set_lineage(fd, lineage, who)) fill_new_file(who, slot, rng, fd, lineage, file);
    close(fd);
  }

  void op_rename_over(const std::string& who, st::InFlight& slot, std::mt19937_64& rng, int file,
                      int t_index) {
    std::lock_guard names(locks_[file].names);
    const std::string tmp = tmp_path(t_index), p = file_path(file);
    int fd = open(tmp.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
    if (fd < 0) {
      if (errno != ENOSPC) violations_->add(who + ": create " + tmp + ": " + std::strerror(errno));
      return;
    }
    const uint64_t lineage = lineages_.create(file, "renamed in", trace_->seconds());
    bool ok = set_lineage(fd, lineage, who);
    if (ok) fill_new_file(who, slot, rng, fd, lineage, file);
    close(fd);
    uint64_t old = 0;
    if (int ofd = open(p.c_str(), O_RDONLY | O_CLOEXEC); ofd >= 0) {
      old = lineage_of(ofd);
      close(ofd);
    }
    const std::string what = "rename_over f" + std::to_string(file);
    st::Timed t = st::timed_call(slot, what, [&] { return rename(tmp.c_str(), p.c_str()); });
    expect_result(who, what, t, {ENOSPC});
    if (t.rc == 0) {
      lineages_.retire(old, "renamed over", trace_->seconds());
    } else {
      unlink(tmp.c_str());
    }
    trace_->line(who, what + " lineage " + std::to_string(old) + " -> " +
                          std::to_string(lineage) + " rc " + std::to_string(t.rc) + " in " +
                          std::to_string(t.seconds));
  }

  // O_TRUNC or truncate to zero: the inode's words are gone, so it gets a
  // new lineage, and none of the old words may ever be seen in it again.
  void op_new_lineage(const std::string& who, st::InFlight& slot, std::mt19937_64& rng, int file,
                      bool o_trunc) {
    std::unique_lock lock(locks_[file].layout);
    int fd = open_file(who, slot, file, O_RDWR | (o_trunc ? O_TRUNC : 0));
    if (fd < 0) return;
    const uint64_t old = lineage_of(fd);
    if (!o_trunc) {
      const std::string what = "truncate0 f" + std::to_string(file);
      st::Timed t = st::timed_call(slot, what, [&] { return ftruncate(fd, 0); });
      expect_result(who, what, t, {});
      if (t.rc != 0) {
        close(fd);
        return;
      }
    }
    const uint64_t lineage = lineages_.create(file, o_trunc ? "O_TRUNC" : "truncate to 0",
                                              trace_->seconds());
    lineages_.retire(old, o_trunc ? "cut by O_TRUNC" : "cut by truncate to 0", trace_->seconds());
    trace_->line(who, std::string(o_trunc ? "O_TRUNC" : "truncate0") + " f" +
                          std::to_string(file) + " lineage " + std::to_string(old) + " -> " +
                          std::to_string(lineage));
    if (set_lineage(fd, lineage, who) && rng() % 2 == 0) {
      fill_new_file(who, slot, rng, fd, lineage, file);
    }
    close(fd);
  }

  void op_fsync(const std::string& who, st::InFlight& slot, int file) {
    std::shared_lock lock(locks_[file].layout);
    int fd = open_file(who, slot, file, O_RDWR);
    if (fd < 0) return;
    st::Timed t = st::timed_call(slot, "fsync f" + std::to_string(file), [&] { return fsync(fd); });
    expect_result(who, "fsync f" + std::to_string(file), t, {});
    close(fd);
  }

  void op_read_check(const std::string& who, st::InFlight& slot, int file) {
    std::shared_lock lock(locks_[file].layout);
    int fd = open_file(who, slot, file, O_RDONLY);
    if (fd < 0) return;
    const uint64_t lineage = lineage_of(fd);
    if (lineage != 0) {
      st::Timed t = st::timed_call(slot, "read f" + std::to_string(file), [&] {
        check_contents(fd, lineage, file, who, "breaker");
        return 0L;
      });
      stats_->record("read_check", t.seconds, 0);
    }
    close(fd);
  }

  // ---- setup and the end ----

  void create_initial_files(std::mt19937_64& rng) {
    ASSERT_EQ(mkdir(path("d").c_str(), 0755), 0) << std::strerror(errno);
    st::InFlight& slot = watchdog_->slot("setup");
    for (int f = 0; f < kAllFiles; ++f) {
      int fd = open(file_path(f).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0) << std::strerror(errno);
      const uint64_t lineage = lineages_.create(f, "created at setup", trace_->seconds());
      ASSERT_TRUE(set_lineage(fd, lineage, "setup"));
      const uint64_t len = 64 * kKiB + (rng() % (4 * kMiB)) / 8 * 8;
      st::Timed t = write_words(slot, "setup write", fd, lineage, 0, len);
      ASSERT_EQ(t.rc, static_cast<long>(len)) << std::strerror(t.err);
      close(fd);
    }
  }

  void final_checks(uint64_t free_empty) {
    // The daemon survived.
    siginfo_t info{};
    info.si_pid = 0;
    ASSERT_EQ(waitid(P_PID, static_cast<id_t>(daemon_pid()), &info, WEXITED | WNOHANG | WNOWAIT), 0);
    ASSERT_EQ(info.si_pid, 0) << "the daemon died during the run (status " << info.si_status << ")";
    struct statvfs sv {};
    ASSERT_EQ(statvfs(mountpoint().c_str(), &sv), 0) << std::strerror(errno);

    // Quiet files read back clean.
    for (int f = 0; f < kAllFiles; ++f) {
      int fd = open(file_path(f).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        EXPECT_EQ(errno, ENOENT) << std::strerror(errno);
        continue;
      }
      const uint64_t lineage = lineage_of(fd);
      if (lineage != 0) check_contents(fd, lineage, f, "final", "after the run");
      close(fd);
    }

    // Everything deleted: exactly the free space of the empty filesystem
    // (quarantine drains once its holders are dead; more would be a double
    // free). statfs cannot be waited on: poll.
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path("d"))) {
      names.push_back(entry.path());
    }
    for (const std::string& name : names) {
      ASSERT_EQ(unlink(name.c_str()), 0) << name << ": " << std::strerror(errno);
    }
    ASSERT_EQ(rmdir(path("d").c_str()), 0) << std::strerror(errno);
    const auto deadline = SteadyClock::now() + 10s;
    uint64_t now_free = free_blocks();
    while (now_free != free_empty && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
      now_free = free_blocks();
    }
    EXPECT_EQ(now_free, free_empty)
        << (now_free < free_empty ? "blocks never came back (leaked quarantine?): "
                                  : "more free blocks than the empty filesystem had: ")
        << free_empty - std::min(free_empty, now_free) << " missing, "
        << now_free - std::min(free_empty, now_free) << " extra";

    ASSERT_NO_FATAL_FAILURE(unmount());
    const std::string fsck = env_str("FSCK_BIN");
    ASSERT_FALSE(fsck.empty()) << "FSCK_BIN is not set (meson sets it)";
    std::string output;
    int rc = run_command({fsck, "-n", "-v", region_path()}, &output);
    EXPECT_EQ(rc, 0) << "fsck.sealfs -n found problems:\n" << output;
    trace_->line("final", "fsck rc " + std::to_string(rc));
  }

  void keep_artifacts(bool failed) {
    std::string keep = env_str("SEALFS_STRESS_KEEP");
    if (keep.empty() && failed) keep = "/tmp/sealfs-stress-" + std::to_string(seed_);
    if (keep.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(keep, ec);
    std::filesystem::copy_file(trace_->path(), keep + "/trace.log",
                               std::filesystem::copy_options::overwrite_existing, ec);
    std::filesystem::copy_file(log_path(), keep + "/daemon.log",
                               std::filesystem::copy_options::overwrite_existing, ec);
    std::filesystem::copy_file(dir() + "/daemon-stacks.txt", keep + "/daemon-stacks.txt",
                               std::filesystem::copy_options::overwrite_existing, ec);
    std::fprintf(stderr, "[stress] trace and daemon log kept in %s\n", keep.c_str());
  }

  // Evidence for a slow call: every daemon thread's stack (when gdb is
  // installed), next to the trace.
  void capture_daemon_stacks() {
    std::string output;
    int rc = run_command({"gdb", "-p", std::to_string(daemon_pid()), "-batch", "-ex",
                          "thread apply all bt"},
                         &output);
    write_file(dir() + "/daemon-stacks.txt", output);
    trace_->line("watchdog", "daemon stacks (gdb rc " + std::to_string(rc) + ") in daemon-stacks.txt");
  }

  // A daemon thread blocked in a request to its own mount cannot die of
  // SIGKILL (the kernel waits for the answer uninterruptibly): abort the
  // FUSE connection first, then kill it.
  void end_hung_daemon() {
    write_file("/sys/fs/fuse/connections/" + std::to_string(fuse_connection_) + "/abort", "1");
    kill(daemon_pid(), SIGKILL);
  }

  // The daemon's own complaints (error and critical lines).
  std::vector<std::string> daemon_complaints() {
    std::vector<std::string> out;
    std::ifstream in(log_path());
    std::string line;
    while (std::getline(in, line)) {
      if (line.find(" error") != std::string::npos || line.find(" critical") != std::string::npos) {
        out.push_back(line);
      }
    }
    return out;
  }

  unsigned fuse_connection_ = 0;
  uint64_t seed_ = 0;
  uint64_t spawns_ = 0;
  std::vector<std::unique_ptr<Holder>> holders_;
  std::unique_ptr<Holder> sigbreaker_;
  SteadyClock::time_point sig_next_;
  std::mutex signals_mu_;
  std::vector<uint64_t> stops_sent_;  // CLOCK_MONOTONIC ns of each SIGSTOP to the sigbreaker
  std::atomic<bool> stop_breakers_{false};
  bool stop_holders_ = false;
  FileLocks locks_[kAllFiles];
  st::Lineages lineages_;
  std::unique_ptr<st::Violations> violations_ = std::make_unique<st::Violations>();
  std::unique_ptr<st::Trace> trace_;
  std::unique_ptr<st::OpStats> stats_ = std::make_unique<st::OpStats>();
  std::unique_ptr<st::Watchdog> watchdog_;
};

TEST_F(StressTest, RandomHoldersAndBreakers) {
  seed_ = env_u64("SEALFS_STRESS_SEED", std::random_device{}());
  const uint64_t seconds = env_u64("SEALFS_STRESS_SECONDS", 20);
  std::fprintf(stderr, "[stress] seed %llu, %llu s (replay: SEALFS_STRESS_SEED=%llu)\n",
               static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seconds),
               static_cast<unsigned long long>(seed_));
  RecordProperty("seed", std::to_string(seed_));
  std::mt19937_64 rng(seed_);

  ASSERT_NO_FATAL_FAILURE(mount_with(kBreakTime, "", kRegion));
  trace_ = std::make_unique<st::Trace>(dir() + "/stress-trace.log");
  struct stat mnt {};
  ASSERT_EQ(stat(mountpoint().c_str(), &mnt), 0) << std::strerror(errno);
  fuse_connection_ = minor(mnt.st_dev);
  watchdog_ = std::make_unique<st::Watchdog>(
      *violations_, *trace_, kOpBound, kHardLimit, [this] { capture_daemon_stacks(); },
      [this] { end_hung_daemon(); });
  // The root directory keeps the data block its first entry needed: take
  // the baseline after that block exists.
  ASSERT_EQ(mkdir(path("warm").c_str(), 0755), 0) << std::strerror(errno);
  ASSERT_EQ(rmdir(path("warm").c_str()), 0) << std::strerror(errno);
  const uint64_t free_empty = free_blocks();
  ASSERT_NO_FATAL_FAILURE(create_initial_files(rng));

  for (const char* mode : kHolderModes) {
    holders_.push_back(std::make_unique<Holder>());
    holders_.back()->mode = mode;
  }
  for (size_t i = 0; i < holders_.size(); ++i) ASSERT_NO_FATAL_FAILURE(spawn_holder(i));
  sigbreaker_ = std::make_unique<Holder>();
  sigbreaker_->mode = "sigbreaker";
  ASSERT_NO_FATAL_FAILURE(spawn(*sigbreaker_, "sb", 99));

  std::vector<std::thread> breakers;
  for (int t = 0; t < kBreakers; ++t) {
    breakers.emplace_back([this, t, s = rng()] { breaker(t, s); });
  }
  chaos(rng, SteadyClock::now() + std::chrono::seconds(seconds));
  stop_breakers_ = true;
  for (auto& b : breakers) b.join();
  stop_holders_ = true;
  reap_and_respawn();
  if (sigbreaker_) sigbreaker_->killed_by_us = true;
  for (auto& hp : holders_) hp->killed_by_us = true;
  kill_holders();
  trace_->line("main", "quiesced");

  std::fprintf(stderr, "[stress] operations:\n%s", stats_->summary().c_str());
  // Even after violations: the end state says more about them.
  EXPECT_NO_FATAL_FAILURE(final_checks(free_empty));

  for (const std::string& line : daemon_complaints()) {
    std::fprintf(stderr, "[stress] daemon log: %s\n", line.c_str());
  }
  const auto found = violations_->all();
  size_t shown = 0;
  for (const std::string& v : found) {
    if (++shown > 40) break;
    ADD_FAILURE() << v;
  }
  if (found.size() > 40) ADD_FAILURE() << found.size() - 40 << " more violations (see the trace)";
  EXPECT_GT(stats_->get("maps"), 0u) << "no mapping was ever granted: the run tested nothing";
  keep_artifacts(HasFailure());
  if (HasFailure()) {
    std::fprintf(stderr, "[stress] FAILED with seed %llu (SEALFS_STRESS_SEED=%llu to replay)\n",
                 static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_));
  }
}

}  // namespace
}  // namespace sealfs::itest
