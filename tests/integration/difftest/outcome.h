// What one operation returned on one tree: the value, errno, and any bytes it
// produced (data read, a link target, a listing). A and B must agree on all.
#pragma once

#include <cerrno>
#include <string>

namespace difftest {

// errno stand-in for "the process took SIGBUS touching a mapping".
inline constexpr int kSigbus = 100000;

struct Outcome {
  long long ret = 0;
  int err = 0;
  std::string data;

  bool operator==(const Outcome&) const = default;
};

// Call right after the syscall so errno is still its own.
inline Outcome capture(long long ret, std::string data = {}) {
  Outcome out;
  out.ret = ret;
  out.err = ret < 0 ? errno : 0;
  out.data = std::move(data);
  return out;
}

// "ret=-1 ENOENT" or "ret=12 data=12 bytes" for humans.
std::string describe(const Outcome& outcome);
// Where two outcomes part: ret, errno, or the first differing byte.
std::string describe_difference(const Outcome& a, const Outcome& b);
std::string errno_name(int err);

}  // namespace difftest
