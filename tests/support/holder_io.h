// The child's side of a test driven through pipes (the test's side is
// support/piped_child.h): the lease holder programs answer one line per
// command on stdout and time what they wait for.
#pragma once

#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace sealfs::testing_support {

// Writes `text` and a newline to stdout in full (a pipe may take it in
// parts). Exits with status 3 when the test's end of the pipe is gone:
// nobody is left to answer.
inline void say_line(const std::string& text) {
  const std::string line = text + "\n";
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = write(STDOUT_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(3);
    p += n;
    left -= static_cast<size_t>(n);
  }
}

// CLOCK_MONOTONIC in nanoseconds.
inline uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

// From a SIGALRM handler bounding how long a holder may wait: prints "BAD
// hang: no answer within the bound to OP" (op: what it was waiting for,
// at most op_capacity bytes) and exits with status 71. Only write(2) and
// _exit(2), so it is safe in a signal handler.
inline void report_hang_and_exit(const char* op, size_t op_capacity) {
  static const char kHead[] = "BAD hang: no answer within the bound to ";
  ssize_t ignored = write(STDOUT_FILENO, kHead, sizeof(kHead) - 1);
  ignored = write(STDOUT_FILENO, op, strnlen(op, op_capacity));
  ignored = write(STDOUT_FILENO, "\n", 1);
  (void)ignored;
  _exit(71);
}

}  // namespace sealfs::testing_support
