// A direct-mapping holder for the lease integration tests, driven over
// stdin (one command per line) and reporting over stdout (one line per
// event, each written with a single write(2) so lines never interleave).
//
//   lease_it_holder [coop|manual]
//
// coop:   on a break, unmap that mapping at once ("released ID 0").
// manual: on a break, only report it; the test decides ("unmap IDX").
//
// Breaks are taken from sealfs_break_fd() in the same poll loop as stdin,
// so the holder is single-threaded from the tests' point of view: a
// SIGSTOPped holder reports nothing, and once resumed it reports what
// queued up meanwhile.
//
// Commands (IDX: the index printed by "mapped"):
//   map PATH OFFSET LENGTH r|rw FLAGS ro|rw|rwa [BREAK_MS]
//                                             -> mapped IDX id ID gen G len L
//                                             |  maperr -ERRNO TEXT
//   store IDX OFF LEN SEED    pattern stores + persist     -> stored IDX
//   check IDX OFF LEN SEED    compare with the pattern     -> check IDX ok|bad OFF
//   zeros IDX [OFF LEN]       zero (whole mapping by default)? -> zeros IDX ok|bad OFF
//   fill IDX SEED             pattern over the whole mapping -> filled IDX
//   touch IDX                 load and store byte 0        -> touched IDX state S
//   unmap IDX                 sealfs_unmap                 -> unmapped IDX R
//   munmap IDX OFF LEN        raw munmap of a piece        -> munmapped IDX R
//   fork IDX                  child inspects the mapping   -> child ...; forked STATUS
//   truncate PATH SIZE        truncate(2) from the holder  -> truncated R ms M
//   breaks                    -> breaks N
//   ping                      -> pong
//   exit | abort
// Unsolicited: "break ID reason R ms M" (M: ms left before the deadline),
// "released ID R" in coop mode, "sigbus" (then exit status 77).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "pattern.h"
#include "sealfs/sealfs.h"
#include "support/holder_io.h"

namespace {

using sealfs::testing_support::monotonic_ns;
using sealfs::testing_support::say_line;

using sealfs::itest::fill_lease_pattern;
using sealfs::itest::lease_pattern_mismatch;

void on_sigbus(int) {
  static const char kLine[] = "sigbus\n";
  ssize_t ignored = write(STDOUT_FILENO, kLine, sizeof(kLine) - 1);
  (void)ignored;
  _exit(77);
}

struct Slot {
  struct sealfs_map* map = nullptr;
  uint64_t lease_id = 0;
};

class Holder {
 public:
  explicit Holder(bool coop) : coop_(coop) {}

  int run() {
    const int break_fd = sealfs_break_fd();
    if (break_fd < 0) {
      say_line("error break_fd " + std::to_string(break_fd));
      return 2;
    }
    say_line("ready pid " + std::to_string(getpid()));
    std::string input;
    while (true) {
      pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {break_fd, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return 2;
      }
      if (fds[1].revents & POLLIN) drain_breaks();
      if (fds[0].revents & (POLLIN | POLLHUP)) {
        char buf[4096];
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;  // the test closed our stdin
        input.append(buf, static_cast<size_t>(n));
        size_t nl;
        while ((nl = input.find('\n')) != std::string::npos) {
          std::string line = input.substr(0, nl);
          input.erase(0, nl + 1);
          // Breaks that arrived first are reported first.
          drain_breaks();
          if (!execute(line)) return 0;
        }
      }
    }
  }

 private:
  void drain_breaks() {
    sealfs_break_event ev{};
    while (sealfs_next_break(&ev) == 0) {
      ++breaks_;
      const uint64_t now = monotonic_ns();
      const long long ms =
          ev.deadline_ns > now ? static_cast<long long>((ev.deadline_ns - now) / 1'000'000) : 0;
      say_line("break " + std::to_string(ev.lease_id) + " reason " + std::to_string(ev.reason) +
          " ms " + std::to_string(ms));
      if (!coop_) continue;
      for (Slot& s : slots_) {
        if (s.map != nullptr && s.lease_id == ev.lease_id) {
          int r = sealfs_unmap(s.map);
          s.map = nullptr;
          say_line("released " + std::to_string(ev.lease_id) + " " + std::to_string(r));
        }
      }
    }
  }

  Slot* slot(std::istringstream& in, size_t* index) {
    size_t i = SIZE_MAX;
    in >> i;
    if (i >= slots_.size() || slots_[i].map == nullptr) {
      say_line("error no mapping " + std::to_string(i));
      return nullptr;
    }
    *index = i;
    return &slots_[i];
  }

  // Returns false to end the program.
  bool execute(const std::string& line) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    size_t idx = 0;
    if (cmd == "map") {
      std::string path, prot, open_mode, flags_text;
      unsigned long long offset = 0, length = 0;
      unsigned long long break_ms = 0;  // optional: per-grant break time
      in >> path >> offset >> length >> prot >> flags_text >> open_mode >> break_ms;
      const unsigned flags = static_cast<unsigned>(std::strtoul(flags_text.c_str(), nullptr, 0));
      // "rwa": read-write with O_APPEND, the only way to open an append-only file for writing.
      int mode = open_mode == "ro" ? O_RDONLY : open_mode == "rwa" ? O_RDWR | O_APPEND : O_RDWR;
      int fd = open(path.c_str(), mode | O_CLOEXEC);
      if (fd < 0) {
        say_line("maperr " + std::to_string(-errno) + " open: " + std::strerror(errno));
        return true;
      }
      struct sealfs_map* m = nullptr;
      int r = sealfs_map_ex(fd, static_cast<off_t>(offset), length,
                            prot == "rw" ? PROT_READ | PROT_WRITE : PROT_READ, flags,
                            break_ms * 1'000'000ull, &m);
      // The lease lives as long as the mapping, not the descriptor.
      close(fd);
      if (r != 0) {
        say_line("maperr " + std::to_string(r) + " " + sealfs_last_error());
        return true;
      }
      slots_.push_back({m, sealfs_map_lease_id(m)});
      say_line("mapped " + std::to_string(slots_.size() - 1) + " id " +
          std::to_string(sealfs_map_lease_id(m)) + " gen " +
          std::to_string(sealfs_map_generation(m)) + " len " +
          std::to_string(sealfs_map_length(m)));
    } else if (cmd == "store" || cmd == "check") {
      Slot* s = slot(in, &idx);
      if (s == nullptr) return true;
      unsigned long long off = 0, len = 0, seed = 0;
      in >> off >> len >> seed;
      if (off + len > sealfs_map_length(s->map)) {
        say_line("error range");
        return true;
      }
      auto* p = static_cast<uint8_t*>(sealfs_map_addr(s->map)) + off;
      if (cmd == "store") {
        fill_lease_pattern(p, len, seed, off);
        sealfs_persist(s->map, p, len);
        say_line("stored " + std::to_string(idx));
      } else {
        size_t bad = lease_pattern_mismatch(p, len, seed, off);
        say_line("check " + std::to_string(idx) +
            (bad == len ? std::string(" ok") : " bad " + std::to_string(off + bad)));
      }
    } else if (cmd == "zeros") {
      Slot* s = slot(in, &idx);
      if (s == nullptr) return true;
      unsigned long long off = 0, len = sealfs_map_length(s->map);
      if (in >> off) in >> len;
      if (off + len > sealfs_map_length(s->map)) {
        say_line("error range");
        return true;
      }
      const auto* p = static_cast<const uint8_t*>(sealfs_map_addr(s->map));
      size_t i = off;
      while (i < off + len && p[i] == 0) ++i;
      say_line("zeros " + std::to_string(idx) +
          (i == off + len ? std::string(" ok") : " bad " + std::to_string(i)));
    } else if (cmd == "fill") {
      Slot* s = slot(in, &idx);
      if (s == nullptr) return true;
      unsigned long long seed = 0;
      in >> seed;
      void* p = sealfs_map_addr(s->map);
      fill_lease_pattern(p, sealfs_map_length(s->map), seed, 0);
      sealfs_persist(s->map, p, sealfs_map_length(s->map));
      say_line("filled " + std::to_string(idx));
    } else if (cmd == "touch") {
      Slot* s = slot(in, &idx);
      if (s == nullptr) return true;
      volatile uint8_t* p = static_cast<volatile uint8_t*>(sealfs_map_addr(s->map));
      p[0] = static_cast<uint8_t>(p[0] + 1);
      say_line("touched " + std::to_string(idx) + " state " + std::to_string(sealfs_map_state(s->map)));
    } else if (cmd == "unmap") {
      Slot* s = slot(in, &idx);
      if (s == nullptr) return true;
      int r = sealfs_unmap(s->map);
      s->map = nullptr;
      say_line("unmapped " + std::to_string(idx) + " " + std::to_string(r));
    } else if (cmd == "munmap") {
      Slot* s = slot(in, &idx);
      if (s == nullptr) return true;
      unsigned long long off = 0, len = 0;
      in >> off >> len;
      int r = munmap(static_cast<uint8_t*>(sealfs_map_addr(s->map)) + off, len);
      say_line("munmapped " + std::to_string(idx) + " " + std::to_string(r == 0 ? 0 : -errno));
    } else if (cmd == "fork") {
      Slot* s = slot(in, &idx);
      if (s == nullptr) return true;
      fork_and_inspect(*s);
    } else if (cmd == "truncate") {
      // The holder breaking its own lease, single-threaded: it cannot
      // release while blocked here, so only the deadline can end this.
      std::string path;
      unsigned long long size = 0;
      in >> path >> size;
      const uint64_t start = monotonic_ns();
      int r = truncate(path.c_str(), static_cast<off_t>(size));
      const int err = r == 0 ? 0 : errno;
      say_line("truncated " + std::to_string(r == 0 ? 0 : -err) + " ms " +
          std::to_string((monotonic_ns() - start) / 1'000'000));
    } else if (cmd == "breaks") {
      say_line("breaks " + std::to_string(breaks_));
    } else if (cmd == "ping") {
      say_line("pong");
    } else if (cmd == "exit") {
      return false;
    } else if (cmd == "abort") {
      abort();
    } else {
      say_line("error unknown command " + cmd);
    }
    return true;
  }

  // The child must not have the mapping (MADV_DONTFORK): mincore fails with
  // ENOMEM on an unmapped range; sealfs_unmap of the inherited handle only
  // frees it. The parent's mapping is untouched.
  void fork_and_inspect(Slot& s) {
    pid_t child = fork();
    if (child < 0) {
      say_line("error fork " + std::string(std::strerror(errno)));
      return;
    }
    if (child == 0) {
      unsigned char vec = 0;
      int r = mincore(sealfs_map_addr(s.map), 4096, &vec);
      int err = r == 0 ? 0 : errno;
      int u = sealfs_unmap(s.map);
      say_line("child mincore " + std::to_string(r) + " errno " + std::to_string(err) + " unmap " +
          std::to_string(u));
      _exit(0);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    say_line("forked " + std::to_string(status));
  }

  const bool coop_;
  std::vector<Slot> slots_;
  uint64_t breaks_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_sigbus;
  sigaction(SIGBUS, &sa, nullptr);
  const bool coop = argc > 1 && std::strcmp(argv[1], "coop") == 0;
  return Holder(coop).run();
}
