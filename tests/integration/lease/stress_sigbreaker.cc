// The signalled breaker of the lease stress test (stress_test.cc): a
// process that changes the size and blocks of its own files (no other
// breaker touches them, holders map them) while the test sends it SIGUSR1
// (handled, without SA_RESTART) and SIGSTOP/SIGCONT. The daemon answers an
// interrupted breaker EINTR "with nothing changed": this checks that
// promise under races (the size after an EINTR is the size before), that a
// completed call did all it should, and reports every EINTR with whether a
// handler ran.
//
//   lease_stress_sigbreaker DIR FIRST_FILE NFILES SEED HANG_SECONDS
//
// Output lines: "ready PID"; "op TEXT rc R" per call; "eintr OP START_NS
// END_NS handler 0|1" (CLOCK_MONOTONIC, for the test to match with the
// signals it sent); "BAD ..." for a broken promise. A call that does not
// return within HANG_SECONDS prints BAD and exits 71.
#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "stress_word.h"
#include "support/holder_io.h"

namespace {

using sealfs::testing_support::monotonic_ns;
using sealfs::testing_support::say_line;

namespace st = sealfs::itest::stress;

constexpr uint64_t kMaxFile = 6 * 1024 * 1024;

volatile sig_atomic_t g_handler_ran = 0;
char g_op[256] = "nothing";

void on_usr1(int) { g_handler_ran = 1; }

void on_alarm(int) { sealfs::testing_support::report_hang_and_exit(g_op, sizeof g_op); }

class SigBreaker {
 public:
  SigBreaker(std::string dir, int first, int count, uint64_t seed, unsigned hang)
      : dir_(std::move(dir)), first_(first), count_(count), rng_(seed), hang_(hang) {}

  int run() {
    say_line("ready " + std::to_string(getpid()));
    while (true) {
      step();
      // A short nap between calls: the machine is shared.
      poll(nullptr, 0, static_cast<int>(rng_() % 4));
    }
  }

 private:
  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  int64_t size_of(int fd) {
    struct stat s {};
    // fstat is not a breaker; a signal may still interrupt its request.
    while (fstat(fd, &s) != 0) {
      if (errno != EINTR) {
        say_line(std::string("BAD fstat: ") + std::strerror(errno));
        return -1;
      }
    }
    return s.st_size;
  }

  void step() {
    const int file = first_ + static_cast<int>(below(static_cast<uint64_t>(count_)));
    const std::string path = dir_ + "/f" + std::to_string(file);
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR) say_line("BAD open " + path + ": " + std::strerror(errno));
      return;
    }
    char lin[32] = {};
    if (fgetxattr(fd, st::kLineageXattr, lin, sizeof lin - 1) < 0) {
      if (errno != EINTR) say_line("BAD fgetxattr " + path + ": " + std::strerror(errno));
      close(fd);
      return;
    }
    const uint64_t lineage = std::strtoull(lin, nullptr, 10);
    const int64_t before = size_of(fd);
    if (before < 0) {
      close(fd);
      return;
    }
    const uint64_t size0 = static_cast<uint64_t>(before);

    // The call and what the size must be once it succeeds.
    std::string text;
    uint64_t expect = size0;
    bool may_enospc = false;
    std::vector<uint64_t> words;
    long rc = 0;
    int err = 0;
    const unsigned pick = static_cast<unsigned>(below(100));
    uint64_t start = 0, end = 0;
    auto call = [&](auto&& fn) {
      std::snprintf(g_op, sizeof g_op, "%s", text.c_str());
      g_handler_ran = 0;
      start = monotonic_ns();
      alarm(hang_);
      errno = 0;
      rc = fn();
      err = rc < 0 ? errno : 0;
      alarm(0);
      end = monotonic_ns();
    };
    if (pick < 35) {
      uint64_t target = std::max<uint64_t>(8, below(std::min(kMaxFile, size0 + 1024 * 1024)));
      if (rng_() % 2) target &= ~uint64_t{7};
      expect = target;
      text = "truncate f" + std::to_string(file) + " " + std::to_string(size0) + "->" +
             std::to_string(target);
      if (rng_() % 2) {
        call([&] { return static_cast<long>(truncate(path.c_str(), static_cast<off_t>(target))); });
      } else {
        call([&] { return static_cast<long>(ftruncate(fd, static_cast<off_t>(target))); });
      }
    } else if (pick < 65) {
      static const int kModes[] = {0, FALLOC_FL_KEEP_SIZE,
                                   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                   FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE};
      const int mode = kModes[below(5)];
      const uint64_t off = below(std::min(kMaxFile - 4096, size0 + 256 * 1024));
      const uint64_t len = 1 + below(std::min<uint64_t>(kMaxFile - off, 1024 * 1024));
      if (!(mode & FALLOC_FL_KEEP_SIZE)) expect = std::max(size0, off + len);
      may_enospc = !(mode & FALLOC_FL_PUNCH_HOLE);
      text = "fallocate f" + std::to_string(file) + " mode " + std::to_string(mode) + " " +
             std::to_string(off) + "+" + std::to_string(len) + " size " + std::to_string(size0);
      call([&] {
        return static_cast<long>(
            fallocate(fd, mode, static_cast<off_t>(off), static_cast<off_t>(len)));
      });
    } else {
      const bool extend = pick < 85 || size0 < 8;
      const uint64_t off = extend ? ((size0 + 7) & ~uint64_t{7}) + below(64 * 1024) / 8 * 8
                                  : below(size0) / 8 * 8;
      uint64_t len = 8 + below(256 * 1024) / 8 * 8;
      if (off + len > kMaxFile) {
        close(fd);
        return;
      }
      words.resize(len / 8);
      st::fill_words(words.data(), len, lineage, false, off);
      expect = std::max(size0, off + len);
      may_enospc = true;
      text = std::string(extend ? "pwrite_extend" : "pwrite_inplace") + " f" +
             std::to_string(file) + " " + std::to_string(off) + "+" + std::to_string(len) +
             " size " + std::to_string(size0);
      call([&] {
        return static_cast<long>(pwrite(fd, words.data(), len, static_cast<off_t>(off)));
      });
      // A short write (ENOSPC on the way) grows the file only as far as it got.
      if (rc > 0 && static_cast<uint64_t>(rc) < len) expect = std::max(size0, off + uint64_t(rc));
    }
    const int64_t after = size_of(fd);
    close(fd);
    say_line("op " + text + " rc " + std::to_string(rc < 0 ? -err : rc) + " ms " +
        std::to_string((end - start) / 1'000'000));
    if (after < 0) return;
    const uint64_t size1 = static_cast<uint64_t>(after);
    if (rc < 0 && err == EINTR) {
      say_line("eintr " + text.substr(0, text.find(' ')) + " " + std::to_string(start) + " " +
          std::to_string(end) + " handler " + std::to_string(int(g_handler_ran)));
      if (size1 != size0) {
        say_line("BAD " + text + " answered EINTR but the size went from " + std::to_string(size0) +
            " to " + std::to_string(size1) + " (EINTR must leave nothing changed)");
      }
    } else if (rc < 0) {
      if (!(err == ENOSPC && may_enospc)) {
        say_line("BAD " + text + " failed with " + std::strerror(err));
      }
    } else if (size1 != expect) {
      say_line("BAD " + text + " succeeded (rc " + std::to_string(rc) + ") but the size is " +
          std::to_string(size1) + ", not " + std::to_string(expect));
    }
  }

  const std::string dir_;
  const int first_, count_;
  std::mt19937_64 rng_;
  const unsigned hang_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s DIR FIRST_FILE NFILES SEED HANG_S\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction usr1 {};
  usr1.sa_handler = on_usr1;  // no SA_RESTART: an interrupted call says EINTR
  sigaction(SIGUSR1, &usr1, nullptr);
  struct sigaction alrm {};
  alrm.sa_handler = on_alarm;
  sigaction(SIGALRM, &alrm, nullptr);
  return SigBreaker(argv[1], std::atoi(argv[2]), std::atoi(argv[3]),
                    std::strtoull(argv[4], nullptr, 10), static_cast<unsigned>(std::atoi(argv[5])))
      .run();
}
