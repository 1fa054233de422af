// dax_holder: direct mappings of a sealfs file on real DAX media, for the VM
// tier. Run inside the guest on a file of a mounted sealfs daemon whose
// region is a devdax device or a file on a filesystem mounted -o dax:
//
//   dax_holder --kind devdax|fsdax [--alignment N] [--size N] [--seed N]
//              [--break-time SECONDS] FILE
//
// 1. creates FILE (--size bytes, a multiple of 2 MiB) and maps it read-write
//    with ALLOCATE|RELOCATE; checks the address is aligned to --alignment,
//    and what the kernel says about the mapping in /proc/self/smaps: on
//    fsdax every piece carries VM_SYNC ("sf": libsealfs used MAP_SYNC), on
//    devdax every piece has the device's page size;
// 2. stores a seeded pattern over the whole mapping, sealfs_persist, unmaps,
//    and reads it back with read(2) through the FUSE mount;
// 3. maps it again, checks the pattern through the mapping, and lets a
//    truncate(2) to half the size from a child process break the lease: the
//    break handler unmaps; the handler must see reason TRUNCATE for that
//    lease, the truncate must return 0 after the unmap and well before the
//    deadline, and the first half must still read back;
// 4. maps what is left read-only and checks it.
//
// Exit 0 only if every check held; each failure prints "dax_holder: FAIL".
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "sealfs/sealfs.h"

namespace {

constexpr uint64_t kMiB = 1ull << 20;

struct Args {
  std::string kind;
  uint64_t alignment = 0;  // 0: not checked
  uint64_t size = 8 * kMiB;
  uint64_t seed = 1;
  unsigned break_time_s = 10;  // the mount's lease_break_time
  std::string path;
};

bool g_failed = false;

void fail(const std::string& what) {
  std::printf("dax_holder: FAIL %s\n", what.c_str());
  std::fflush(stdout);
  g_failed = true;
}

void say(const std::string& what) {
  std::printf("dax_holder: %s\n", what.c_str());
  std::fflush(stdout);
}

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

std::string ms_text(uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", double(ns) / 1e6);
  return buf;
}

// One 64-bit word per 8 bytes, never zero, depending on seed and offset:
// zeros or another run's data cannot pass.
uint64_t pattern_word(uint64_t seed, uint64_t offset) {
  uint64_t x = (seed + 0x51) * 0x9E3779B97F4A7C15ull ^ (offset / 8 + 1) * 0xD1B54A32D192ED03ull;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return x == 0 ? 0x5EA1F5 : x;
}

void fill_pattern(void* at, uint64_t length, uint64_t seed, uint64_t offset) {
  auto* w = static_cast<uint64_t*>(at);
  for (uint64_t i = 0; i < length / 8; ++i) w[i] = pattern_word(seed, offset + i * 8);
}

// Offset (relative to `at`) of the first word that is not the pattern, or
// length when all match.
uint64_t pattern_mismatch(const void* at, uint64_t length, uint64_t seed, uint64_t offset) {
  const auto* w = static_cast<const uint64_t*>(at);
  for (uint64_t i = 0; i < length / 8; ++i) {
    if (w[i] != pattern_word(seed, offset + i * 8)) return i * 8;
  }
  return length;
}

uint64_t parse_size(const char* text) {
  char* end = nullptr;
  uint64_t v = std::strtoull(text, &end, 0);
  if (end != nullptr && (*end == 'K' || *end == 'k')) v <<= 10;
  if (end != nullptr && *end == 'M') v <<= 20;
  if (end != nullptr && *end == 'G') v <<= 30;
  return v;
}

// --- /proc/self/smaps -----------------------------------------------------

struct Vma {
  uint64_t start = 0, end = 0;
  uint64_t kernel_page_kb = 0;
  std::vector<std::string> flags;
  bool has(const std::string& flag) const {
    for (const std::string& f : flags) {
      if (f == flag) return true;
    }
    return false;
  }
};

// The vmas that intersect [addr, addr+length).
std::vector<Vma> vmas_of(const void* addr, uint64_t length) {
  const uint64_t lo = reinterpret_cast<uintptr_t>(addr), hi = lo + length;
  std::vector<Vma> all;
  std::ifstream in("/proc/self/smaps");
  std::string line;
  while (std::getline(in, line)) {
    uint64_t s = 0, e = 0;
    if (std::sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " ", &s, &e) == 2 &&
        line.find(':') > line.find(' ')) {
      all.push_back({s, e, 0, {}});
    } else if (!all.empty() && line.rfind("KernelPageSize:", 0) == 0) {
      std::sscanf(line.c_str() + 15, "%" SCNu64, &all.back().kernel_page_kb);
    } else if (!all.empty() && line.rfind("VmFlags:", 0) == 0) {
      std::istringstream words(line.substr(8));
      std::string w;
      while (words >> w) all.back().flags.push_back(w);
    }
  }
  std::vector<Vma> out;
  for (const Vma& v : all) {
    if (v.end > lo && v.start < hi) out.push_back(v);
  }
  return out;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

// What the kernel made of the mapping. fsdax: MAP_SYNC on every piece;
// devdax: the device's page size on every piece. Both: the pieces tile the
// range and are not inherited by a child (MADV_DONTFORK: "dc").
void check_vmas(const Args& args, const void* addr, uint64_t length) {
  const std::vector<Vma> vmas = vmas_of(addr, length);
  uint64_t at = reinterpret_cast<uintptr_t>(addr);
  const uint64_t end = at + length;
  for (const Vma& v : vmas) {
    char range[64];
    std::snprintf(range, sizeof range, "%" PRIx64 "-%" PRIx64, v.start, v.end);
    say(std::string("  vma ") + range + " (" + std::to_string((v.end - v.start) >> 10) +
        " KiB) KernelPageSize " + std::to_string(v.kernel_page_kb) + " kB VmFlags: " +
        join(v.flags));
    if (v.start > at) fail("hole in the mapping at " + std::to_string(at));
    at = std::max(at, v.end);
    if (!v.has("sh")) fail(std::string("vma ") + range + " is not a shared mapping");
    if (!v.has("dc")) fail(std::string("vma ") + range + " lacks dc (MADV_DONTFORK)");
    if (args.kind == "fsdax" && !v.has("sf")) {
      fail(std::string("vma ") + range + " lacks sf: the fsdax mapping was made without MAP_SYNC");
    }
    if (args.kind == "devdax" && args.alignment != 0 && v.kernel_page_kb * 1024 != args.alignment) {
      fail(std::string("vma ") + range + " has KernelPageSize " + std::to_string(v.kernel_page_kb) +
           " kB, not the device alignment");
    }
  }
  if (vmas.empty() || at < end) fail("the mapping does not cover its whole range in smaps");
  if (args.kind == "fsdax") {
    bool all_sync = !vmas.empty();
    for (const Vma& v : vmas) all_sync = all_sync && v.has("sf");
    if (all_sync) say("fsdax: every piece of the mapping is VM_SYNC (libsealfs used MAP_SYNC)");
  }
}

// --- the steps ------------------------------------------------------------

bool read_back(const Args& args, uint64_t length, const std::string& when) {
  int fd = open(args.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fail("open for read(2) " + when + ": " + std::strerror(errno));
    return false;
  }
  std::vector<uint64_t> buf(kMiB / 8);
  uint64_t off = 0;
  bool ok = true;
  while (off < length && ok) {
    const uint64_t want = std::min<uint64_t>(kMiB, length - off);
    ssize_t n = pread(fd, buf.data(), want, off_t(off));
    if (n != ssize_t(want)) {
      fail("read(2) " + when + " at " + std::to_string(off) + " returned " + std::to_string(n) +
           (n < 0 ? std::string(": ") + std::strerror(errno) : ""));
      ok = false;
      break;
    }
    uint64_t bad = pattern_mismatch(buf.data(), want, args.seed, off);
    if (bad != want) {
      fail("read(2) " + when + ": byte " + std::to_string(off + bad) + " is not the pattern");
      ok = false;
    }
    off += want;
  }
  close(fd);
  if (ok) say("read(2) through FUSE " + when + ": " + std::to_string(length >> 20) + " MiB match");
  return ok;
}

struct BreakSeen {
  std::atomic<int> count{0};
  int reason = 0;
  uint64_t lease_id = 0;
  int state_before = -1;
  int unmap_rc = 1;
  uint64_t unmap_started_ns = 0;  // the RELEASE the breaker waits for is sent after this
  uint64_t unmapped_at_ns = 0;
  int wake_fd = -1;
};

// Cooperative holder: the library's callback thread unmaps at once.
void on_break(struct sealfs_map* map, const sealfs_break_event* ev, void* arg) {
  auto* seen = static_cast<BreakSeen*>(arg);
  if (seen->count.fetch_add(1) == 0) {
    seen->reason = ev->reason;
    seen->lease_id = ev->lease_id;
    seen->state_before = map != nullptr ? sealfs_map_state(map) : -1;
    seen->unmap_started_ns = now_ns();
    seen->unmap_rc = map != nullptr ? sealfs_unmap(map) : -EINVAL;
    seen->unmapped_at_ns = now_ns();
  }
  uint64_t one = 1;
  ssize_t ignored = write(seen->wake_fd, &one, sizeof one);
  (void)ignored;
}

struct TruncateResult {
  int rc = -1;
  int err = 0;
  uint64_t start_ns = 0, end_ns = 0;
};

// truncate(2) from a separate process, as another user of the file would.
bool truncate_from_child(const std::string& path, uint64_t size, TruncateResult* out) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    fail(std::string("pipe: ") + std::strerror(errno));
    return false;
  }
  pid_t child = fork();
  if (child < 0) {
    fail(std::string("fork: ") + std::strerror(errno));
    return false;
  }
  if (child == 0) {
    TruncateResult r;
    r.start_ns = now_ns();
    r.rc = truncate(path.c_str(), off_t(size));
    r.err = r.rc == 0 ? 0 : errno;
    r.end_ns = now_ns();
    ssize_t ignored = write(pipe_fds[1], &r, sizeof r);
    (void)ignored;
    _exit(0);
  }
  close(pipe_fds[1]);
  ssize_t n;
  do {
    n = read(pipe_fds[0], out, sizeof *out);
  } while (n < 0 && errno == EINTR);
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != ssize_t(sizeof *out)) {
    fail("the truncating child died without a result (status " + std::to_string(status) + ")");
    return false;
  }
  return true;
}

int run(const Args& args) {
  const int prot = PROT_READ | PROT_WRITE;
  // 1. create and map
  int fd = open(args.path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) {
    fail("create " + args.path + ": " + std::strerror(errno));
    return 1;
  }
  if (ftruncate(fd, off_t(args.size)) != 0) {
    fail(std::string("ftruncate: ") + std::strerror(errno));
    return 1;
  }
  struct sealfs_map* map = nullptr;
  uint64_t t0 = now_ns();
  int r = sealfs_map(fd, 0, args.size, prot, SEALFS_MAP_ALLOCATE | SEALFS_MAP_RELOCATE, &map);
  const uint64_t first_map_ns = now_ns() - t0;
  if (r != 0) {
    fail("sealfs_map (ALLOCATE|RELOCATE): " + std::to_string(r) + " " + sealfs_last_error());
    return 1;
  }
  void* addr = sealfs_map_addr(map);
  char where[32];
  std::snprintf(where, sizeof where, "%p", addr);
  say("mapped " + std::to_string(sealfs_map_length(map) >> 20) + " MiB rw at " + where +
      " lease " + std::to_string(sealfs_map_lease_id(map)) + " gen " +
      std::to_string(sealfs_map_generation(map)) + " in " + ms_text(first_map_ns) +
      " (allocate+relocate)");
  if (sealfs_map_length(map) != args.size) fail("mapping length " + std::to_string(sealfs_map_length(map)));
  if (args.alignment != 0) {
    const uint64_t misalign = reinterpret_cast<uintptr_t>(addr) % args.alignment;
    if (misalign != 0) {
      fail("mapping address " + std::string(where) + " is not aligned to " +
           std::to_string(args.alignment));
    } else {
      say("mapping address is aligned to " + std::to_string(args.alignment >> 10) + " KiB");
    }
  }
  check_vmas(args, addr, args.size);

  // 2. store, persist, unmap, read(2)
  t0 = now_ns();
  fill_pattern(addr, args.size, args.seed, 0);
  r = sealfs_persist(map, addr, args.size);
  if (r != 0) fail("sealfs_persist: " + std::to_string(r) + " " + sealfs_last_error());
  say("stored and persisted the pattern in " + ms_text(now_ns() - t0));
  r = sealfs_unmap(map);
  if (r != 0) fail("sealfs_unmap: " + std::to_string(r));
  read_back(args, args.size, "after unmap");

  // 3. map again, break it with a truncate from another process
  BreakSeen seen;
  seen.wake_fd = eventfd(0, EFD_CLOEXEC);
  if (seen.wake_fd < 0) {
    fail(std::string("eventfd: ") + std::strerror(errno));
    return 1;
  }
  if (sealfs_set_break_handler(on_break, &seen) != 0) fail("sealfs_set_break_handler");
  t0 = now_ns();
  r = sealfs_map(fd, 0, args.size, prot, 0, &map);
  const uint64_t second_map_ns = now_ns() - t0;
  close(fd);
  if (r != 0) {
    fail("second sealfs_map (no flags: allocated and aligned now): " + std::to_string(r) + " " +
         sealfs_last_error());
    return 1;
  }
  const uint64_t lease = sealfs_map_lease_id(map);
  say("mapped again: lease " + std::to_string(lease) + " gen " +
      std::to_string(sealfs_map_generation(map)) + " in " + ms_text(second_map_ns));
  if (args.alignment != 0 && reinterpret_cast<uintptr_t>(sealfs_map_addr(map)) % args.alignment) {
    fail("second mapping is not aligned");
  }
  uint64_t bad = pattern_mismatch(sealfs_map_addr(map), args.size, args.seed, 0);
  if (bad != args.size) {
    fail("second mapping: byte " + std::to_string(bad) + " is not the pattern");
  } else {
    say("second mapping sees the pattern");
  }

  const uint64_t half = args.size / 2;
  TruncateResult tr;
  if (!truncate_from_child(args.path, half, &tr)) return 1;
  // The handler has run by the time the truncate returns (the daemon waited
  // for the release); the eventfd only proves it for this thread.
  pollfd p{seen.wake_fd, POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) fail("the break handler never ran");
  const uint64_t truncate_ns = tr.end_ns - tr.start_ns;
  say("truncate(2) to " + std::to_string(half >> 20) + " MiB in another process returned " +
      std::to_string(tr.rc) + (tr.rc != 0 ? std::string(" (") + std::strerror(tr.err) + ")" : "") +
      " after " + ms_text(truncate_ns));
  say("break handler: " + std::to_string(seen.count.load()) + " break(s), reason " +
      std::to_string(seen.reason) + " lease " + std::to_string(seen.lease_id) + " state " +
      std::to_string(seen.state_before) + ", sealfs_unmap " + std::to_string(seen.unmap_rc) +
      " from " + ms_text(seen.unmap_started_ns - tr.start_ns) + " to " +
      ms_text(seen.unmapped_at_ns - tr.start_ns) + " after the truncate began");
  if (tr.rc != 0) fail("truncate(2) failed");
  if (seen.count.load() != 1) fail("expected exactly one break, saw " + std::to_string(seen.count.load()));
  if (seen.reason != SEALFS_BREAK_TRUNCATE) {
    fail("break reason " + std::to_string(seen.reason) + ", expected SEALFS_BREAK_TRUNCATE (" +
         std::to_string(SEALFS_BREAK_TRUNCATE) + ")");
  }
  if (seen.lease_id != lease) fail("break for lease " + std::to_string(seen.lease_id));
  if (seen.state_before != 1) {
    fail("mapping state at the break was " + std::to_string(seen.state_before) +
         " (1 = announced; 2 would mean it was already fenced)");
  }
  if (seen.unmap_rc != 0) fail("sealfs_unmap in the handler returned " + std::to_string(seen.unmap_rc));
  // sealfs_unmap may return after the truncate (its RELEASE is answered
  // after the daemon lets the breaker go), but never begin after it.
  if (seen.count.load() > 0 && tr.end_ns < seen.unmap_started_ns) {
    fail("truncate(2) returned before the holder began to unmap");
  }
  if (truncate_ns >= uint64_t(args.break_time_s) * 1'000'000'000ull / 2) {
    fail("truncate(2) took " + ms_text(truncate_ns) + ": it waited for the deadline (" +
         std::to_string(args.break_time_s) + " s), not for the release");
  }
  struct stat st{};
  if (stat(args.path.c_str(), &st) != 0 || uint64_t(st.st_size) != half) {
    fail("size after truncate is " + std::to_string(st.st_size));
  }
  read_back(args, half, "after the truncate");

  // 4. what is left maps again, read-only
  fd = open(args.path.c_str(), O_RDONLY | O_CLOEXEC);
  r = fd < 0 ? -errno : sealfs_map(fd, 0, half, PROT_READ, 0, &map);
  if (fd >= 0) close(fd);
  if (r != 0) {
    fail("read-only sealfs_map after the break: " + std::to_string(r) + " " + sealfs_last_error());
  } else {
    bad = pattern_mismatch(sealfs_map_addr(map), half, args.seed, 0);
    if (bad != half) fail("read-only mapping: byte " + std::to_string(bad) + " is not the pattern");
    else say("read-only mapping of the remaining " + std::to_string(half >> 20) + " MiB sees the pattern");
    if (int u = sealfs_unmap(map); u != 0) fail("sealfs_unmap (read-only): " + std::to_string(u));
  }
  // 5. a range that ends inside an alignment unit: device dax maps only
  // whole units, so the grant refuses it (EINVAL) rather than a later mmap;
  // anything else maps it.
  if (args.alignment > 4096 && half > args.alignment) {
    const size_t odd = args.alignment + args.alignment / 2;
    fd = open(args.path.c_str(), O_RDWR | O_CLOEXEC);
    r = fd < 0 ? -errno : sealfs_map(fd, 0, odd, PROT_READ | PROT_WRITE, 0, &map);
    if (fd >= 0) close(fd);
    if (args.kind == "devdax") {
      if (r != -EINVAL || std::strstr(sealfs_last_error(), "device dax") == nullptr) {
        fail("devdax map of " + std::to_string(odd >> 10) + " KiB: " + std::to_string(r) + " " +
             sealfs_last_error() + " (expected -EINVAL, device dax)");
        if (r == 0) sealfs_unmap(map);
      } else {
        say(std::string("devdax refuses a range ending inside an alignment unit: ") +
            sealfs_last_error());
      }
    } else if (r != 0) {
      fail("map of " + std::to_string(odd >> 10) + " KiB: " + std::to_string(r) + " " +
           sealfs_last_error());
    } else {
      sealfs_unmap(map);
    }
  }
  sealfs_set_break_handler(nullptr, nullptr);
  close(seen.wake_fd);
  if (unlink(args.path.c_str()) != 0) fail(std::string("unlink: ") + std::strerror(errno));
  say(g_failed ? "checks failed" : "all checks passed");
  return g_failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  static const option kOptions[] = {
      {"kind", required_argument, nullptr, 'k'},
      {"alignment", required_argument, nullptr, 'a'},
      {"size", required_argument, nullptr, 's'},
      {"seed", required_argument, nullptr, 'e'},
      {"break-time", required_argument, nullptr, 'b'},
      {nullptr, 0, nullptr, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "", kOptions, nullptr)) != -1) {
    switch (c) {
      case 'k': args.kind = optarg; break;
      case 'a': args.alignment = parse_size(optarg); break;
      case 's': args.size = parse_size(optarg); break;
      case 'e': args.seed = std::strtoull(optarg, nullptr, 0); break;
      case 'b': args.break_time_s = unsigned(std::strtoul(optarg, nullptr, 0)); break;
      default: return 2;
    }
  }
  if (optind + 1 != argc || (args.kind != "devdax" && args.kind != "fsdax") ||
      args.size == 0 || args.size % (2 * kMiB) != 0 || args.break_time_s == 0) {
    std::fprintf(stderr,
                 "usage: dax_holder --kind devdax|fsdax [--alignment N] [--size N (2 MiB multiple)]"
                 " [--seed N] [--break-time S] FILE\n");
    return 2;
  }
  args.path = argv[optind];
  // Bounded: a hung break or daemon ends this program, not the whole guest.
  alarm(120);
  return run(args);
}
