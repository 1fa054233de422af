// A lease holder process for lease_socket_test. Driven through stdin (one
// command per line) and reporting through stdout (one event per line).
//   lease_holder MODE FILE [LENGTH]
// The control socket comes from SEALFS_CONTROL_SOCKET.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <string>

#include "sealfs/sealfs.h"

namespace {

// One line to the test on stdout (one write, so lines never interleave).
__attribute__((format(printf, 1, 2))) void say(const char* fmt, ...) {
  char line[512];
  va_list args;
  va_start(args, fmt);
  int n = vsnprintf(line, sizeof(line) - 1, fmt, args);
  va_end(args);
  if (n < 0) return;
  const size_t len = std::min(static_cast<size_t>(n), sizeof(line) - 2);
  line[len] = '\n';
  ssize_t ignored = write(1, line, len + 1);
  (void)ignored;
}

std::string command() {
  std::string line;
  char c;
  while (read(0, &c, 1) == 1) {
    if (c == '\n') return line;
    line += c;
  }
  return "eof";
}

struct sealfs_map* map_or_die(const char* file, size_t length, unsigned flags, int open_flags = O_RDWR,
                              int prot = PROT_READ | PROT_WRITE) {
  int fd = open(file, open_flags);
  if (fd < 0) {
    say("error open %s", strerror(errno));
    exit(2);
  }
  struct sealfs_map* m = nullptr;
  int r = sealfs_map(fd, 0, length, prot, flags, &m);
  close(fd);  // the lease lives as long as the mapping, not the descriptor
  if (r != 0) {
    say("result %d %s", r, sealfs_last_error());
    exit(0);
  }
  return m;
}

void store(struct sealfs_map* m) {
  char* p = static_cast<char*>(sealfs_map_addr(m));
  int n = snprintf(p, 64, "holder %d was here", int(getpid()));
  sealfs_persist(m, p, size_t(n));
  // and the last page, so every extent is touched
  p[sealfs_map_length(m) - 1] = 'Z';
  sealfs_persist(m, p + sealfs_map_length(m) - 1, 1);
}

void wait_break(struct sealfs_break_event* ev) {
  struct pollfd p {sealfs_break_fd(), POLLIN, 0};
  while (sealfs_next_break(ev) == -EAGAIN) poll(&p, 1, -1);
}

void unmap_from_handler(struct sealfs_map* m, const struct sealfs_break_event* ev, void*) {
  // Runs on the library's callback thread; unmapping here must not deadlock.
  int r = sealfs_unmap(m);
  say("handler reason %d unmap %d", ev->reason, r);
}

void on_reg(struct sealfs_map*, const struct sealfs_break_event* ev, void* arg) {
  say("reg %d reason %d", int(reinterpret_cast<intptr_t>(arg)), ev->reason);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const std::string mode = argv[1];
  const char* file = argv[2];
  const size_t length = argc > 3 ? strtoull(argv[3], nullptr, 0) : (2u << 20);

  if (mode == "rdonly-write") {
    map_or_die(file, length, 0, O_RDONLY);
    say("result 0");
    return 0;
  }
  if (mode == "untrusted") {
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) {
      say("error setresuid %s", strerror(errno));
      return 2;
    }
    map_or_die(file, length, 0);
    say("result 0");
    return 0;
  }
  if (mode == "read-only") {
    struct sealfs_map* m = map_or_die(file, length, 0, O_RDONLY, PROT_READ);
    // The region descriptor was read-only: a writable remap must fail.
    void* w = mmap(sealfs_map_addr(m), 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, 0, 0);
    say("mapped %llu first %d remap %s", (unsigned long long)sealfs_map_lease_id(m),
        int(static_cast<char*>(sealfs_map_addr(m))[0]), w == MAP_FAILED ? "failed" : "ok");
    sealfs_unmap(m);
    return 0;
  }

  if (mode == "inspect") {
    // Maps without storing (argv[4]: map flags), reports a hash of what it
    // sees, then on "fill C" stores C over the whole mapping.
    const unsigned map_flags = argc > 4 ? unsigned(strtoul(argv[4], nullptr, 0)) : 0;
    struct sealfs_map* m = map_or_die(file, length, map_flags);
    const unsigned char* p = static_cast<const unsigned char*>(sealfs_map_addr(m));
    uint64_t hash = 1469598103934665603ull;  // FNV-1a 64
    for (size_t i = 0; i < sealfs_map_length(m); ++i) hash = (hash ^ p[i]) * 1099511628211ull;
    say("mapped %llu sum %llx", (unsigned long long)sealfs_map_lease_id(m), (unsigned long long)hash);
    for (;;) {
      std::string cmd = command();
      if (cmd.rfind("fill ", 0) != 0) return 0;
      char* w = static_cast<char*>(sealfs_map_addr(m));
      memset(w, cmd[5], sealfs_map_length(m));
      sealfs_persist(m, w, sealfs_map_length(m));
      say("filled");
    }
  }

  unsigned flags = 0;
  if (mode == "kill") flags |= SEALFS_MAP_POLICY_KILL;
  if (mode == "quarantine") flags |= SEALFS_MAP_POLICY_QUARANTINE;
  if (mode == "wait") flags |= SEALFS_MAP_WAIT_BREAK;
  // Delivery channels are chosen before mapping, so no break can precede them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  if (mode == "handler") sealfs_set_break_handler(unmap_from_handler, nullptr);
  if (mode == "signal") {  // F_SETSIG-style delivery
    sigprocmask(SIG_BLOCK, &set, nullptr);
    sealfs_set_break_signal(SIGUSR1);
  }
  struct sealfs_map* m = map_or_die(file, length, flags);
  store(m);
  say("mapped %llu gen %llu", (unsigned long long)sealfs_map_lease_id(m),
      (unsigned long long)sealfs_map_generation(m));

  if (mode == "handler") {
    command();
    return 0;
  }
  if (mode == "signal") {
    siginfo_t info;
    while (sigwaitinfo(&set, &info) < 0) {
    }
    const auto lease = static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(info.si_value.sival_ptr));
    say("signal %d lease-match %d", info.si_signo, int(lease == sealfs_map_lease_id(m)));
    sealfs_unmap(m);
    command();
    return 0;
  }
  if (mode == "coop") {  // releases as soon as the break arrives
    struct sealfs_break_event ev;
    wait_break(&ev);
    sealfs_unmap(m);
    say("released reason %d", ev.reason);
    command();
    return 0;
  }
  if (mode == "manual") {  // announces the break, releases on "release"
    struct sealfs_break_event ev;
    wait_break(&ev);
    say("break reason %d", ev.reason);
    command();
    sealfs_unmap(m);
    say("released");
    command();
    return 0;
  }
  if (mode == "register") {
    struct sealfs_reg *r1, *r2, *r3;
    int a = sealfs_register(m, on_reg, reinterpret_cast<void*>(1), &r1);
    int b = sealfs_register(m, on_reg, reinterpret_cast<void*>(2), &r2);
    say("registered %d %d", a, b);
    struct sealfs_break_event ev;
    wait_break(&ev);
    sealfs_unregister(r1);  // flushes its callback
    sealfs_unregister(r2);
    say("late register %d", sealfs_register(m, on_reg, reinterpret_cast<void*>(3), &r3));
    sealfs_unmap(m);
    say("released");
    command();
    return 0;
  }
  if (mode == "fork") {
    pid_t child = fork();
    if (child == 0) {
      // MADV_DONTFORK: the range must not exist here.
      unsigned char vec;
      int r = mincore(sealfs_map_addr(m), 4096, &vec);
      say("child mincore %d errno %d unmap %d", r, r ? errno : 0, sealfs_unmap(m));
      _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    say("parent still sees %c", static_cast<char*>(sealfs_map_addr(m))[0]);
    command();
    return 0;
  }
  // stubborn, kill, quarantine, wait: hold on; touch the mapping on request.
  for (;;) {
    std::string cmd = command();
    if (cmd == "touch") {
      volatile char* p = static_cast<volatile char*>(sealfs_map_addr(m));
      p[0] = 'T';
      say("touched state %d", sealfs_map_state(m));
    } else if (cmd == "events") {
      struct sealfs_break_event ev;
      while (sealfs_next_break(&ev) == 0) say("event reason %d", ev.reason);
      say("state %d", sealfs_map_state(m));
    } else if (cmd == "unmap") {
      say("unmap %d", sealfs_unmap(m));
    } else {
      return 0;
    }
  }
}
