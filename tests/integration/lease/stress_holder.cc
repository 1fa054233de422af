// An autonomous direct-mapping holder for the lease stress test
// (stress_test.cc). It runs until killed, mapping random ranges of the test's
// files, checking what every new mapping shows, storing its file's words
// through its mappings, and reacting to breaks as its mode says.
//
//   lease_stress_holder MODE DIR NFILES SEED HANG_SECONDS
//
// MODE, per mapping:
//   coop        unmap as soon as the break is seen (policy: random per grant)
//   fence|kill|quarantine
//               stubborn: keep storing after the break and release at a
//               random time up to 2.5 break times later (often after the
//               deadline); the grant asks for that revoke policy
//   mixed       one of the four, chosen per grant
// Some grants are read-only (O_RDONLY descriptor, PROT_READ), some keep
// their descriptor open until the unmap.
// After a deadline has passed, a stubborn holder's stores are "ghost" words
// (stress_word.h): they go to blocks the file may no longer own, and must
// never show up in any other file.
//
// Output, one line per event on stdout, each line one write(2):
//   ready PID
//   map FILE OFF LEN FLAGS rc R gen G bt BREAK_MS ro|rw lin L size S
//   break ID reason R ms M | release ID rc R | sigbus ID state S
//   ghost ID FILE OFF
//   eintr WHAT                 an EINTR (the test knows whether it stopped us)
//   BAD ...                    a broken invariant, said once, with detail
// A SIGBUS outside a mapping access, or a call that does not return within
// HANG_SECONDS (SIGALRM), prints a BAD line and exits (70, 71).
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "sealfs/sealfs.h"
#include "stress_word.h"
#include "support/holder_io.h"

namespace {

using sealfs::testing_support::monotonic_ns;
using sealfs::testing_support::say_line;

namespace st = sealfs::itest::stress;

constexpr uint64_t kPage = 4096;
constexpr size_t kMaxMaps = 4;
constexpr uint64_t kMaxMapPages = 256;

// What the process is blocked in, for the SIGALRM report.
char g_op[256] = "nothing";
sigjmp_buf g_access_jmp;
volatile sig_atomic_t g_in_access = 0;

void on_alarm(int) { sealfs::testing_support::report_hang_and_exit(g_op, sizeof g_op); }

void on_sigbus(int, siginfo_t* info, void*) {
  if (g_in_access) {
    g_in_access = 0;
    siglongjmp(g_access_jmp, 1);
  }
  char line[128];
  int n = std::snprintf(line, sizeof line, "BAD sigbus outside a mapping access at %p\n",
                        info->si_addr);
  ssize_t ignored = write(STDOUT_FILENO, line, static_cast<size_t>(n));
  (void)ignored;
  _exit(70);
}

enum class Behaviour { kCoop, kStubborn };

struct Mapping {
  struct sealfs_map* map = nullptr;
  int fd = -1;  // kept open for the mapping's life, or -1 (closed after the grant)
  uint64_t lease_id = 0;
  int file = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t store_limit = 0;  // bytes from the start we may store (inside EOF at grant)
  uint64_t lineage = 0;      // 0: unknown (the file changed around the grant): no stores
  Behaviour behaviour = Behaviour::kCoop;
  unsigned policy = 0;
  bool broken = false;
  uint64_t deadline_ns = 0;
  uint64_t release_at_ns = 0;
  bool ghost_said = false;
};

class Holder {
 public:
  Holder(std::string mode, std::string dir, int nfiles, uint64_t seed, unsigned hang_seconds)
      : mode_(std::move(mode)), dir_(std::move(dir)), nfiles_(nfiles), rng_(seed),
        hang_seconds_(hang_seconds) {}

  int run() {
    const int break_fd = sealfs_break_fd();
    if (break_fd < 0) {
      say_line("BAD sealfs_break_fd " + std::to_string(break_fd));
      return 2;
    }
    say_line("ready " + std::to_string(getpid()));
    while (true) {
      pollfd p{break_fd, POLLIN, 0};
      // A short nap between steps: the machine is shared.
      if (poll(&p, 1, static_cast<int>(1 + rng_() % 4)) < 0 && errno != EINTR) return 2;
      drain_breaks();
      release_due();
      if (maps_.size() < kMaxMaps && chance(30)) map_one();
      if (!maps_.empty() && chance(70)) store_pass(pick());
      if (!maps_.empty() && chance(5)) recheck(pick());
      if (!maps_.empty() && chance(2)) {
        size_t i = pick();
        if (!maps_[i].broken) release(i, "voluntary");
      }
    }
  }

 private:
  bool chance(unsigned percent) { return rng_() % 100 < percent; }
  size_t pick() { return rng_() % maps_.size(); }

  std::string path_of(int file) const { return dir_ + "/f" + std::to_string(file); }

  void arm(const std::string& what) {
    std::snprintf(g_op, sizeof g_op, "%s", what.c_str());
    alarm(hang_seconds_);
  }
  void disarm() { alarm(0); }

  void drain_breaks() {
    sealfs_break_event ev{};
    while (sealfs_next_break(&ev) == 0) {
      const uint64_t now = monotonic_ns();
      const long long ms =
          ev.deadline_ns > now ? static_cast<long long>((ev.deadline_ns - now) / 1'000'000) : 0;
      say_line("break " + std::to_string(ev.lease_id) + " reason " + std::to_string(ev.reason) +
          " ms " + std::to_string(ms));
      for (size_t i = 0; i < maps_.size(); ++i) {
        Mapping& m = maps_[i];
        if (m.lease_id != ev.lease_id) continue;
        if (m.broken) {
          say_line("BAD second break for lease " + std::to_string(ev.lease_id));
          continue;
        }
        m.broken = true;
        m.deadline_ns = ev.deadline_ns;
        if (m.behaviour == Behaviour::kCoop) {
          release(i, "break");
        } else {
          const uint64_t span = ev.deadline_ns > now ? ev.deadline_ns - now : 1'000'000'000ull;
          m.release_at_ns = now + (span * (rng_() % 251)) / 100;
        }
        break;
      }
    }
  }

  void release_due() {
    const uint64_t now = monotonic_ns();
    for (size_t i = 0; i < maps_.size();) {
      if (maps_[i].broken && maps_[i].behaviour == Behaviour::kStubborn &&
          now >= maps_[i].release_at_ns) {
        release(i, "late");
      } else {
        ++i;
      }
    }
  }

  void release(size_t i, const char* why) {
    Mapping m = maps_[i];
    maps_.erase(maps_.begin() + static_cast<long>(i));
    arm("sealfs_unmap of lease " + std::to_string(m.lease_id) + " (" + why + ")");
    int r = sealfs_unmap(m.map);
    // After the unmap: this may be the inode's last close.
    if (m.fd >= 0) close(m.fd);
    disarm();
    say_line("release " + std::to_string(m.lease_id) + " rc " + std::to_string(r) + " " + why);
    if (r != 0) say_line("BAD sealfs_unmap of lease " + std::to_string(m.lease_id) + " gave " +
                    std::to_string(r) + ": " + sealfs_last_error());
  }

  // The lineage xattr of an open file: 0 if it has none yet (being created).
  uint64_t lineage_of(int fd, const std::string& what) {
    char buf[32] = {};
    arm("fgetxattr " + what);
    ssize_t n = fgetxattr(fd, st::kLineageXattr, buf, sizeof buf - 1);
    const int err = errno;
    disarm();
    if (n < 0) {
      if (err == EINTR) say_line("eintr fgetxattr " + what);
      else if (err != ENODATA) say_line("BAD fgetxattr " + what + ": " + std::strerror(err));
      return 0;
    }
    return std::strtoull(buf, nullptr, 10);
  }

  int64_t size_of(int fd, const std::string& what) {
    struct stat s {};
    arm("fstat " + what);
    int r = fstat(fd, &s);
    const int err = errno;
    disarm();
    if (r != 0) {
      if (err == EINTR) say_line("eintr fstat " + what);
      else say_line("BAD fstat " + what + ": " + std::strerror(err));
      return -1;
    }
    return s.st_size;
  }

  void map_one() {
    const int file = static_cast<int>(rng_() % static_cast<uint64_t>(nfiles_));
    const std::string path = path_of(file);
    // Some read-only mappings (of an O_RDONLY descriptor): checked, never
    // stored to.
    const bool read_only = chance(15);
    arm("open " + path);
    int fd = open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    const int open_err = errno;
    disarm();
    if (fd < 0) {
      if (open_err == EINTR) say_line("eintr open " + path);
      else if (open_err != ENOENT) say_line("BAD open " + path + ": " + std::strerror(open_err));
      return;
    }
    const uint64_t lineage_before = lineage_of(fd, path);
    const int64_t size_before = size_of(fd, path);
    if (lineage_before == 0 || size_before <= 0) {
      close(fd);
      return;
    }
    const uint64_t pages = (static_cast<uint64_t>(size_before) + kPage - 1) / kPage;
    const uint64_t first = rng_() % pages;
    const uint64_t count = 1 + rng_() % std::min(kMaxMapPages, pages - first);
    Mapping m;
    m.file = file;
    m.offset = first * kPage;
    m.length = count * kPage;
    unsigned flags = 0;
    // ALLOCATE needs a descriptor open for writing (a reader's is refused).
    if (!read_only && chance(50)) flags |= SEALFS_MAP_ALLOCATE;
    if (chance(30)) flags |= SEALFS_MAP_WAIT_BREAK;
    std::string behaviour = mode_;
    if (behaviour == "mixed") {
      static const char* const kAll[] = {"coop", "fence", "kill", "quarantine"};
      behaviour = kAll[rng_() % 4];
    }
    if (behaviour == "coop") {
      static const unsigned kPolicies[] = {0, SEALFS_MAP_POLICY_FENCE, SEALFS_MAP_POLICY_KILL,
                                           SEALFS_MAP_POLICY_QUARANTINE};
      m.policy = kPolicies[rng_() % 4];
      m.behaviour = Behaviour::kCoop;
    } else {
      m.policy = behaviour == "fence"  ? SEALFS_MAP_POLICY_FENCE
                 : behaviour == "kill" ? SEALFS_MAP_POLICY_KILL
                                       : SEALFS_MAP_POLICY_QUARANTINE;
      m.behaviour = Behaviour::kStubborn;
    }
    flags |= m.policy;
    arm("sealfs_map " + path + " off " + std::to_string(m.offset) + " len " +
        std::to_string(m.length) + " flags " + std::to_string(flags));
    // Half the grants ask for a shorter break time than the mount's, so
    // deadlines (and revokes) come thick and fast.
    const uint64_t break_ns = chance(50) ? (100 + rng_() % 300) * 1'000'000ull : 0;
    int r = sealfs_map_ex(fd, static_cast<off_t>(m.offset), m.length,
                          read_only ? PROT_READ : PROT_READ | PROT_WRITE, flags, break_ns, &m.map);
    disarm();
    const std::string why = r != 0 ? sealfs_last_error() : "";
    const uint64_t lineage_after = lineage_of(fd, path);
    const int64_t size_after = size_of(fd, path);
    // Some holders keep the descriptor as long as the mapping: then an
    // unlink's final free waits for their close (or their death) as well.
    if (r == 0 && chance(30)) {
      m.fd = fd;
    } else {
      close(fd);
    }
    const uint64_t gen = r == 0 ? sealfs_map_generation(m.map) : 0;
    say_line("map " + std::to_string(file) + " " + std::to_string(m.offset) + " " +
        std::to_string(m.length) + " " + std::to_string(flags) + " rc " + std::to_string(r) +
        " gen " + std::to_string(gen) + " bt " + std::to_string(break_ns / 1'000'000) +
        (read_only ? " ro" : " rw") + " lin " + std::to_string(lineage_before) + " size " +
        std::to_string(size_before) + (r != 0 ? " (" + why + ")" : ""));
    if (r != 0) {
      const bool allocate = flags & SEALFS_MAP_ALLOCATE;
      const bool expected = r == -ENXIO || r == -ERANGE || (r == -ENODATA && !allocate) ||
                            (r == -ENOSPC && allocate);
      if (r == -EINTR) say_line("eintr sealfs_map " + path);
      else if (!expected)
        say_line("BAD sealfs_map " + path + " off " + std::to_string(m.offset) + " len " +
            std::to_string(m.length) + " flags " + std::to_string(flags) + " gave " +
            std::to_string(r) + " (" + why + ")");
      return;
    }
    m.lease_id = sealfs_map_lease_id(m.map);
    if (sealfs_map_length(m.map) != m.length) {
      say_line("BAD sealfs_map length " + std::to_string(sealfs_map_length(m.map)) + " asked " +
          std::to_string(m.length));
    }
    // Only when the file kept its lineage around the grant do we know which
    // words it may show, and only inside the EOF seen on both sides may we
    // store (a size change after the grant breaks the lease anyway).
    if (lineage_before == lineage_after && size_after >= 0) {
      m.lineage = lineage_before;
      const uint64_t eof = static_cast<uint64_t>(std::min(size_before, size_after));
      m.store_limit = eof > m.offset && !read_only
                          ? std::min(m.length, (eof - m.offset) & ~uint64_t{7})
                          : 0;
    }
    maps_.push_back(m);
    check(maps_.size() - 1, "new mapping");
  }

  // Everything a mapping shows must be zero or its file's own words.
  void check(size_t i, const char* when) {
    Mapping& m = maps_[i];
    if (m.lineage == 0) return;
    current_ = i;
    if (sigsetjmp(g_access_jmp, 1) != 0) {
      on_access_sigbus();
      return;
    }
    g_in_access = 1;
    const auto* p = static_cast<const uint8_t*>(sealfs_map_addr(m.map));
    const uint64_t bad = st::first_bad_word(p, m.length, m.lineage, m.offset);
    uint64_t word = 0;
    if (bad != UINT64_MAX) word = st::word_at(p, m.length, m.offset, bad);
    g_in_access = 0;
    if (bad != UINT64_MAX) {
      say_line("BAD stale data in " + std::string(when) + " of f" + std::to_string(m.file) +
          " (lineage " + std::to_string(m.lineage) + ") lease " + std::to_string(m.lease_id) +
          " gen " + std::to_string(sealfs_map_generation(m.map)) + " range " +
          std::to_string(m.offset) + "+" + std::to_string(m.length) + " broken " +
          std::to_string(m.broken) + ": word at file offset " + std::to_string(bad) + " is " +
          st::describe_word(word));
    }
  }

  void recheck(size_t i) { check(i, "recheck"); }

  void store_pass(size_t i) {
    Mapping& m = maps_[i];
    if (m.lineage == 0 || m.store_limit < 8) return;
    const uint64_t words = m.store_limit / 8;
    const uint64_t first = rng_() % words;
    const uint64_t count = 1 + rng_() % std::min<uint64_t>(words - first, 8192);
    const bool ghost = m.broken && m.behaviour == Behaviour::kStubborn &&
                       monotonic_ns() > m.deadline_ns + 100'000'000ull;
    if (ghost && !m.ghost_said) {
      m.ghost_said = true;
      say_line("ghost " + std::to_string(m.lease_id) + " f" + std::to_string(m.file) + " " +
          std::to_string(m.offset));
    }
    current_ = i;
    if (sigsetjmp(g_access_jmp, 1) != 0) {
      on_access_sigbus();
      return;
    }
    g_in_access = 1;
    auto* base = static_cast<uint8_t*>(sealfs_map_addr(m.map));
    auto* w = reinterpret_cast<volatile uint64_t*>(base + first * 8);
    for (uint64_t k = 0; k < count; ++k) {
      w[k] = st::make_word(m.lineage, ghost, m.offset + (first + k) * 8);
    }
    sealfs_persist(m.map, base + first * 8, count * 8);
    g_in_access = 0;
  }

  // A fault on a mapping: fine once the library has fenced it (fence
  // policy), a broken invariant otherwise.
  void on_access_sigbus() {
    Mapping& m = maps_[current_];
    const int state = sealfs_map_state(m.map);
    say_line("sigbus " + std::to_string(m.lease_id) + " state " + std::to_string(state));
    const bool fence_policy = m.policy == SEALFS_MAP_POLICY_FENCE || m.policy == 0;
    if (state != 2 || !fence_policy) {
      say_line("BAD SIGBUS on lease " + std::to_string(m.lease_id) + " (f" + std::to_string(m.file) +
          ", policy " + std::to_string(m.policy >> 8) + ", state " + std::to_string(state) +
          ", break seen " + std::to_string(m.broken) + "): only a fenced mapping may fault");
    }
    release(current_, "fenced");
  }

  const std::string mode_;
  const std::string dir_;
  const int nfiles_;
  std::mt19937_64 rng_;
  const unsigned hang_seconds_;
  std::vector<Mapping> maps_;
  size_t current_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s coop|fence|kill|quarantine|mixed DIR NFILES SEED HANG_S\n",
                 argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction bus {};
  bus.sa_sigaction = on_sigbus;
  bus.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGBUS, &bus, nullptr);
  struct sigaction alrm {};
  alrm.sa_handler = on_alarm;
  sigaction(SIGALRM, &alrm, nullptr);
  return Holder(argv[1], argv[2], std::atoi(argv[3]), std::strtoull(argv[4], nullptr, 10),
                static_cast<unsigned>(std::atoi(argv[5])))
      .run();
}
