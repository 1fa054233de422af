// The child's side of a test driven through pipes (the test's side is
// support/piped_child.h): the lease holder programs answer one line per
// command on stdout and time what they wait for.
#pragma once

#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
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

}  // namespace sealfs::testing_support
