// fsbench: the workloads of bench/fuse/run.sh that fio does not express
// directly. Plain POSIX calls, one thread, wall-clock timing; prints
// "name value" lines for the driver to collect.
//
//   fsbench meta DIR COUNT              creates, stats, unlinks in one directory
//   fsbench write FILE MIB REQ_KIB      sequential write, then fsync (timed)
//   fsbench read FILE REQ_KIB [direct]  sequential read to EOF
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "fsbench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

std::string file_name(unsigned long i) {
  char name[32];
  std::snprintf(name, sizeof name, "f%08lu", i);
  return name;
}

int meta(const char* dir_path, unsigned long count) {
  int dir = open(dir_path, O_RDONLY | O_DIRECTORY);
  if (dir < 0) die(dir_path);

  auto start = Clock::now();
  for (unsigned long i = 0; i < count; ++i) {
    int fd = openat(dir, file_name(i).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) die("create " + file_name(i));
    close(fd);
  }
  double create_s = seconds_since(start);

  start = Clock::now();
  for (unsigned long i = 0; i < count; ++i) {
    struct stat st {};
    if (fstatat(dir, file_name(i).c_str(), &st, 0) != 0) die("stat " + file_name(i));
  }
  double stat_s = seconds_since(start);

  start = Clock::now();
  for (unsigned long i = 0; i < count; ++i) {
    if (unlinkat(dir, file_name(i).c_str(), 0) != 0) die("unlink " + file_name(i));
  }
  double unlink_s = seconds_since(start);
  close(dir);

  std::printf("creates_per_s %.0f\nstats_per_s %.0f\nunlinks_per_s %.0f\n",
              static_cast<double>(count) / create_s, static_cast<double>(count) / stat_s,
              static_cast<double>(count) / unlink_s);
  return 0;
}

char* aligned_buffer(size_t bytes) {
  void* buf = nullptr;
  if (posix_memalign(&buf, 4096, bytes) != 0) die("posix_memalign");
  // Not zeros: a filesystem must not get to treat the data as holes.
  auto* p = static_cast<unsigned char*>(buf);
  for (size_t i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(i * 131 + 7);
  return static_cast<char*>(buf);
}

int write_file(const char* path, unsigned long mib, unsigned long req_kib) {
  size_t req = req_kib * 1024;
  char* buf = aligned_buffer(req);
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) die(path);
  unsigned long long total = static_cast<unsigned long long>(mib) << 20;
  auto start = Clock::now();
  for (unsigned long long done = 0; done < total;) {
    ssize_t n = write(fd, buf, req);
    if (n <= 0) die("write");
    done += static_cast<unsigned long long>(n);
  }
  if (fsync(fd) != 0) die("fsync");
  double s = seconds_since(start);
  close(fd);
  std::printf("write_mib_per_s %.1f\n", static_cast<double>(mib) / s);
  return 0;
}

int read_file(const char* path, unsigned long req_kib, bool direct) {
  size_t req = req_kib * 1024;
  char* buf = aligned_buffer(req);
  int fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
  if (fd < 0) die(path);
  unsigned long long total = 0;
  auto start = Clock::now();
  for (;;) {
    ssize_t n = read(fd, buf, req);
    if (n < 0) die("read");
    if (n == 0) break;
    total += static_cast<unsigned long long>(n);
  }
  double s = seconds_since(start);
  close(fd);
  std::printf("read_mib_per_s %.1f\n", static_cast<double>(total) / (1 << 20) / s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "meta" && argc == 4) return meta(argv[2], std::strtoul(argv[3], nullptr, 10));
  if (cmd == "write" && argc == 5) {
    return write_file(argv[2], std::strtoul(argv[3], nullptr, 10),
                      std::strtoul(argv[4], nullptr, 10));
  }
  if (cmd == "read" && (argc == 4 || argc == 5)) {
    return read_file(argv[2], std::strtoul(argv[3], nullptr, 10),
                     argc == 5 && std::strcmp(argv[4], "direct") == 0);
  }
  std::fprintf(stderr,
               "usage: fsbench meta DIR COUNT\n"
               "       fsbench write FILE MIB REQ_KIB\n"
               "       fsbench read FILE REQ_KIB [direct]\n");
  return 2;
}
