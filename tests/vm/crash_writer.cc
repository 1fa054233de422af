// crash_writer: the workload of the VM tier's kill-the-machine drill
// (docs/vm.md). The host SIGKILLs qemu while `write` runs; the guest boots
// again on the same NVDIMM, the daemon recovers, and `verify` checks that
// every step the writer acknowledged is there, exactly.
//
//   crash_writer write  --dir D --seed S [--steps N]
//   crash_writer verify --dir D --seed S --acked A
//
// Step i (from 0) of `write`:
//   1. unlinks f<i-10> (for i >= 10);
//   2. writes t<i> (a size and a byte pattern drawn from S and i, in
//      pieces of varied size), fsyncs it and renames it to f<i>;
//   3. appends record i (64 bytes naming i and S, with a checksum) to
//      `log` and fdatasyncs it;
//   4. fsyncs D, then prints "ACK i" on stdout (the serial console, which
//      the host keeps in a file that outlives the guest).
// The host's A (the last "ACK A" it saw) is a lower bound: an ACK still in
// qemu's buffers when it died is lost. The log says how far the writer got:
// with R intact records, step R-1 reached its append and step R+1 never
// started (it starts only after record R is durable). POSIX makes a name
// durable at the fsync of its directory, which step k+1 starts after, so
// record R-1 proves steps up to R-2 complete. Hence:
//   - `log` holds records 0..R-1 intact, then at most a torn tail shorter
//     than a record, and R >= A+1 (a damaged whole record after them is
//     refused too: POSIX would allow an appended size whose data never
//     arrived, sealfs writes the data before it commits the size);
//   - f<j> exists with exactly its pattern for j in [max(A-8, R-9),
//     max(A, R-2)];
//   - no f<j> for j <= max(A-10, R-12) (unlinked by durable steps) and no
//     f<j> or t<j> for j > R; other f<j> are absent or exact;
//   - t<j> only for j in {R-1, R}, j > A, and not beside f<j> (a rename is
//     atomic); t<R-1> exact (fsynced before its rename), t<R> no longer
//     than its pattern and every byte the pattern or zero (never bytes of
//     another file: sealfs exposes no block before its data is written);
//   - every name a regular file with one link, spelled as written, once.
// Exit 0 and "VERIFY-OK ..." when all of that holds, else 1 and the reason.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace {

constexpr size_t kRecordSize = 64;
constexpr uint64_t kRecordMagic = 0x7365616c6c6f6721ull;  // "sealog!" + 1 byte

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Sizes from empty to several MiB, most small: many extents, some large
// allocations, and files that end mid-block.
uint64_t file_size(uint64_t seed, uint64_t i) {
  uint64_t r = mix(seed * 1000003 + i);
  switch (r % 8) {
    case 0: return 0;
    case 1: case 2: case 3: return r % 9000;
    case 4: case 5: return r % (300 * 1024);
    default: return (r >> 8) % (5 * 1024 * 1024);
  }
}

uint8_t pattern_byte(uint64_t seed, uint64_t i, uint64_t offset) {
  return static_cast<uint8_t>(mix((seed << 20) ^ (i << 40) ^ (offset / 8)) >> (8 * (offset % 8)));
}

std::string name(const std::string& dir, char kind, uint64_t i) {
  return dir + "/" + kind + std::to_string(i);
}

[[noreturn]] void die(const std::string& what) {
  std::printf("crash_writer: FAIL %s: %s\n", what.c_str(), std::strerror(errno));
  std::fflush(stdout);
  std::exit(1);
}

void write_all(int fd, const uint8_t* data, size_t n, uint64_t offset, const std::string& what) {
  while (n > 0) {
    ssize_t w = pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      die("pwrite " + what);
    }
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

struct Record {
  uint64_t magic, seed, step, check;
  uint8_t pad[kRecordSize - 32];
};
static_assert(sizeof(Record) == kRecordSize);

uint64_t record_check(const Record& r) { return mix(r.magic ^ mix(r.seed ^ mix(r.step))); }

void fsync_path(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) die("open " + path);
  if (fsync(fd) != 0) die("fsync " + path);
  close(fd);
}

std::string parent_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

int run_write(const std::string& dir, uint64_t seed, uint64_t steps) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) die("mkdir " + dir);
  fsync_path(parent_of(dir));  // the new directory's name is durable too
  int log = open((dir + "/log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) die("open log");
  std::vector<uint8_t> buf;
  for (uint64_t i = 0; i < steps; ++i) {
    if (i >= 10 && unlink(name(dir, 'f', i - 10).c_str()) != 0) die("unlink");
    const std::string tmp = name(dir, 't', i);
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die("create " + tmp);
    const uint64_t size = file_size(seed, i);
    uint64_t offset = 0;
    while (offset < size) {
      // Pieces of 1 byte to 1 MiB: unaligned heads and tails, whole blocks.
      uint64_t piece = 1 + mix(seed ^ (i << 32) ^ offset) % (1 << 20);
      piece = std::min(piece, size - offset);
      buf.resize(piece);
      for (uint64_t k = 0; k < piece; ++k) buf[k] = pattern_byte(seed, i, offset + k);
      write_all(fd, buf.data(), piece, offset, tmp);
      offset += piece;
    }
    if (fsync(fd) != 0) die("fsync " + tmp);
    close(fd);
    if (rename(tmp.c_str(), name(dir, 'f', i).c_str()) != 0) die("rename " + tmp);
    Record r{};
    r.magic = kRecordMagic;
    r.seed = seed;
    r.step = i;
    r.check = record_check(r);
    if (write(log, &r, sizeof(r)) != static_cast<ssize_t>(sizeof(r))) die("append log");
    if (fdatasync(log) != 0) die("fdatasync log");
    fsync_path(dir);
    std::printf("ACK %" PRIu64 "\n", i);
    std::fflush(stdout);
  }
  close(log);
  std::printf("crash_writer: all %" PRIu64 " steps done\n", steps);
  return 0;
}

// Empty string when `path` holds exactly file i's pattern, or with
// `partial` a prefix of it in which unwritten bytes may read as zero.
std::string check_file(const std::string& path, uint64_t seed, uint64_t i, bool partial = false) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot open: " + std::string(std::strerror(errno));
  struct stat st {};
  fstat(fd, &st);
  const uint64_t expected = file_size(seed, i);
  const auto size = static_cast<uint64_t>(st.st_size);
  std::string bad;
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
    bad = "not a regular file with one link";
  } else if (partial ? size > expected : size != expected) {
    bad = "size " + std::to_string(size) + ", expected " + (partial ? "at most " : "") +
          std::to_string(expected);
  }
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t offset = 0; bad.empty() && offset < size;) {
    ssize_t n = pread(fd, buf.data(), std::min<uint64_t>(buf.size(), size - offset),
                      static_cast<off_t>(offset));
    if (n <= 0) {
      bad = "read at " + std::to_string(offset) + " returned " + std::to_string(n);
      break;
    }
    for (ssize_t k = 0; k < n; ++k) {
      if (buf[k] != pattern_byte(seed, i, offset + k) && !(partial && buf[k] == 0)) {
        bad = "wrong byte at " + std::to_string(offset + k);
        break;
      }
    }
    offset += static_cast<uint64_t>(n);
  }
  close(fd);
  return bad;
}

// Reads the log: the number of intact records from the start; a damaged
// whole record after them or a short one inside [0, A] is a failure.
uint64_t read_log(const std::string& dir, uint64_t seed, int64_t acked,
                  const std::function<void(const std::string&)>& fail) {
  int log = open((dir + "/log").c_str(), O_RDONLY | O_CLOEXEC);
  if (log < 0) {
    if (acked >= 0) fail("log missing");
    return 0;
  }
  uint64_t records = 0;
  Record r{};
  for (;;) {
    ssize_t n = pread(log, &r, sizeof(r), static_cast<off_t>(records * kRecordSize));
    if (n == 0) break;
    if (n != static_cast<ssize_t>(sizeof(r))) break;  // a torn tail; R >= A+1 is checked below
    const bool intact = r.magic == kRecordMagic && r.seed == seed && r.step == records &&
                        r.check == record_check(r);
    if (!intact) {
      fail("log record " + std::to_string(records) + " damaged");
      break;
    }
    ++records;
  }
  close(log);
  return records;
}

int run_verify(const std::string& dir, uint64_t seed, int64_t acked) {
  int failures = 0;
  auto fail = [&](const std::string& what) {
    std::printf("crash_writer: FAIL %s\n", what.c_str());
    ++failures;
  };
  const auto records = static_cast<int64_t>(read_log(dir, seed, acked, fail));
  if (records < acked + 1) {
    fail("log has " + std::to_string(records) + " records, " + std::to_string(acked + 1) +
         " acknowledged");
  }
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) die("opendir " + dir);
  std::set<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (!names.insert(n).second) fail("name " + n + " listed twice");
  }
  closedir(d);
  const int64_t gone_up_to = std::max(acked - 10, records - 12);
  uint64_t files = 0;
  for (const std::string& n : names) {
    if (n == "log") continue;
    const char kind = n[0];
    char* end = nullptr;
    const int64_t i = (kind == 'f' || kind == 't') ? std::strtoll(n.c_str() + 1, &end, 10) : -1;
    if (i < 0 || end == nullptr || *end != '\0' || n.substr(1) != std::to_string(i)) {
      fail("unexpected name " + n);
      continue;
    }
    if (i > records) {
      fail(n + " exists but the log shows step " + std::to_string(i) + " never started");
      continue;
    }
    if (kind == 't') {
      if (i < records - 1 || i <= acked) {
        fail("leftover " + n + " of a step whose rename is durable");
      } else if (names.count("f" + std::to_string(i)) != 0) {
        fail(n + " beside f" + std::to_string(i) + ": the rename was not atomic");
      } else if (std::string bad = check_file(dir + "/" + n, seed, static_cast<uint64_t>(i),
                                              i == records);
                 !bad.empty()) {
        fail(n + ": " + bad);
      }
      continue;
    }
    if (i <= gone_up_to) {
      fail(n + " exists although its unlink is durable");
      continue;
    }
    if (std::string bad = check_file(dir + "/" + n, seed, static_cast<uint64_t>(i)); !bad.empty()) {
      fail(n + ": " + bad);
    }
    ++files;
  }
  for (int64_t i = std::max(acked - 8, records - 9); i <= std::max(acked, records - 2); ++i) {
    if (i >= 0 && names.count("f" + std::to_string(i)) == 0) {
      fail("f" + std::to_string(i) + " missing although its step is durable");
    }
  }
  if (failures != 0) return 1;
  std::printf("VERIFY-OK acked=%" PRId64 " records=%" PRId64 " files=%" PRIu64 "\n", acked,
              records, files);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: crash_writer write|verify --dir D --seed S [--steps N] [--acked A]\n");
    return 2;
  }
  const std::string mode = argv[1];
  std::string dir;
  uint64_t seed = 0, steps = UINT64_MAX;
  int64_t acked = -2;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const char* value = argv[i + 1];
    if (key == "--dir") dir = value;
    else if (key == "--seed") seed = std::strtoull(value, nullptr, 10);
    else if (key == "--steps") steps = std::strtoull(value, nullptr, 10);
    else if (key == "--acked") acked = std::strtoll(value, nullptr, 10);
    else {
      std::fprintf(stderr, "crash_writer: unknown option %s\n", key.c_str());
      return 2;
    }
  }
  if (dir.empty() || seed == 0) {
    std::fprintf(stderr, "crash_writer: --dir and a nonzero --seed are required\n");
    return 2;
  }
  if (mode == "write") return run_write(dir, seed, steps);
  if (mode == "verify" && acked >= -1) return run_verify(dir, seed, acked);
  std::fprintf(stderr, "crash_writer: verify needs --acked A (-1: nothing acknowledged)\n");
  return 2;
}
