// (4) Break round trip: truncate(2) on a file a cooperative holder has
// direct-mapped, from the call to its return. The holder is a separate
// process (this program, "holder" mode) whose break handler unmaps at once;
// so the time covers FUSE setattr -> lease engine -> BREAK to the holder ->
// its library's callback thread -> sealfs_unmap (munmap + RELEASE) -> the
// daemon answering the deferred setattr. The peer is the same truncate on
// the same file with no lease. Sizes alternate up and down by 4 KiB; the
// holder maps [0, 2 MiB), inside EOF either way, and every leased truncate
// must deliver exactly one break (checked).
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdarg>
#include <string>

#include "mem_kernels.h"
#include "phases.h"

extern char** environ;

namespace dbench {
namespace {

constexpr size_t kMapped = 2ull << 20;

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char* fmt, ...) {
  char line[512];
  std::va_list args;
  va_start(args, fmt);
  int n = std::vsnprintf(line, sizeof line - 1, fmt, args);
  va_end(args);
  n = std::min(n, static_cast<int>(sizeof line) - 2);
  line[n] = '\n';
  // One write per line: the handler thread and the main thread both speak.
  if (write(STDOUT_FILENO, line, static_cast<size_t>(n) + 1) < 0) std::_Exit(3);
}

void unmap_on_break(struct sealfs_map* m, const sealfs_break_event* ev, void*) {
  int r = sealfs_unmap(m);
  say("b %d %d", ev->reason, r);
}

// Line reader over the holder's stdout, with a timeout so a broken holder
// fails the run instead of hanging it.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  std::string next() {
    for (;;) {
      if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 30000) != 1) die("the holder process did not answer within 30 s");
      char chunk[256];
      ssize_t n = read(fd_, chunk, sizeof chunk);
      if (n <= 0) die("the holder process closed its output");
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buffer_;
};

struct Holder {
  pid_t pid = -1;
  int to = -1;    // its stdin
  int from = -1;  // its stdout
};

Holder spawn_holder(const char* self_exe, const std::string& path) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) die_errno("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  std::string length = std::to_string(kMapped);
  char* argv[] = {const_cast<char*>("direct_bench"), const_cast<char*>("holder"),
                  const_cast<char*>(path.c_str()), length.data(), nullptr};
  Holder h;
  if (int e = posix_spawn(&h.pid, self_exe, &actions, nullptr, argv, environ); e != 0) {
    errno = e;
    die_errno("spawn the holder");
  }
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  h.to = in[1];
  h.from = out[0];
  return h;
}

void tell(const Holder& h, const char* command) {
  std::string line = std::string(command) + "\n";
  if (write(h.to, line.data(), line.size()) != static_cast<ssize_t>(line.size())) die_errno("write to holder");
}

void create_file(const std::string& path) {
  int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) die_errno("open " + path);
  std::string data(kMapped, 'h');
  if (write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) die_errno("write");
  if (fsync(fd) != 0) die_errno("fsync");
  close(fd);
}

off_t size_for(int i) { return static_cast<off_t>(kMapped + (i % 2 == 0 ? kBlock : 0)); }

}  // namespace

int holder_main(const char* path, size_t length) {
  if (int r = sealfs_set_break_handler(unmap_on_break, nullptr); r != 0) die_sealfs("set_break_handler", r);
  char c;
  std::string line;
  while (read(STDIN_FILENO, &c, 1) == 1) {
    if (c != '\n') {
      line += c;
      continue;
    }
    if (line == "q") return 0;
    if (line == "m") {
      int fd = open(path, O_RDWR | O_CLOEXEC);
      if (fd < 0) die_errno(std::string("holder: open ") + path);
      struct sealfs_map* m = nullptr;
      int r = sealfs_map(fd, 0, length, PROT_READ | PROT_WRITE, 0, &m);
      close(fd);  // the lease lives as long as the mapping
      if (r != 0) {
        say("e %d %s", r, sealfs_last_error());
      } else {
        static_cast<volatile char*>(sealfs_map_addr(m))[0] = 'H';  // a real user of the range
        say("ok %llu", static_cast<unsigned long long>(sealfs_map_generation(m)));
      }
    }
    line.clear();
  }
  return 0;
}

void run_break_round_trip(const Config& config, const char* self_exe) {
  const std::string path = config.mount + "/break.dat";
  create_file(path);

  Samples unleased;
  for (int i = 0; i < config.break_iterations; ++i) {
    uint64_t t0 = ticks_begin();
    if (truncate(path.c_str(), size_for(i)) != 0) die_errno("truncate");
    unleased.add(ticks_end() - t0);
  }
  if (truncate(path.c_str(), static_cast<off_t>(kMapped)) != 0) die_errno("truncate");

  Holder holder = spawn_holder(self_exe, path);
  LineReader from_holder(holder.from);
  Samples leased, leased_up, leased_down;
  for (int i = 0; i < config.break_iterations; ++i) {
    tell(holder, "m");
    std::string answer = from_holder.next();
    if (answer.rfind("ok ", 0) != 0) die("holder could not map " + path + ": " + answer);
    uint64_t t0 = ticks_begin();
    if (truncate(path.c_str(), size_for(i)) != 0) die_errno("truncate (leased)");
    uint64_t took = ticks_end() - t0;
    leased.add(took);
    (i % 2 == 0 ? leased_up : leased_down).add(took);
    std::string event = from_holder.next();
    const std::string want = "b " + std::to_string(SEALFS_BREAK_TRUNCATE) + " 0";
    if (event != want) die("expected the holder to report '" + want + "', got '" + event + "'");
  }
  tell(holder, "q");
  int status = 0;
  waitpid(holder.pid, &status, 0);
  close(holder.to);
  close(holder.from);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("the holder process failed");

  report("truncate_median_us", "leased", leased.median_ns() / 1000);
  report("truncate_p99_us", "leased", leased.p99_ns() / 1000);
  report("truncate_median_us", "unleased", unleased.median_ns() / 1000);
  report("truncate_p99_us", "unleased", unleased.p99_ns() / 1000);
  report("truncate_breaks", "leased", static_cast<double>(leased.size()));
  note("leased truncate medians: up %.1f us, down %.1f us", leased_up.median_ns() / 1000,
       leased_down.median_ns() / 1000);
}

}  // namespace dbench
