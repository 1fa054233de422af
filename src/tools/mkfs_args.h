// mkfs.sealfs's command line: parsed apart from main() so that the fuzz
// target (tests/fuzz/options_fuzz.cc) runs the very parser the tool runs.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "tools/backing_store.h"

namespace sealfs::mkfs {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;

struct Args {
  bool force = false;
  bool dry_run = false;
  bool quiet = false;
  std::string label;
  uint64_t inodes = 0;
  uint64_t journal_bytes = 0;
  uint64_t align = 0;       // 0 = the region's alignment
  uint64_t size = 0;        // 0 = no --size
  SparsePolicy sparse = SparsePolicy::kRefuse;
  bool inline_data = true;  // --no-inline-data clears it
  std::string target;
};

// Prints "mkfs.sealfs: MESSAGE" on stderr; returns kExitError.
template <typename... T>
int fail(fmt::format_string<T...> format, T&&... args) {
  std::fprintf(stderr, "mkfs.sealfs: %s\n", fmt::format(format, std::forward<T>(args)...).c_str());
  return kExitError;
}

void usage(std::FILE* out);

// Returns the exit status to stop with (help, version and errors), or -1
// when `args` is filled in and mkfs goes on. Uses getopt: a caller that
// parses twice in one process sets optind = 0 in between.
int parse_args(int argc, char** argv, Args& args);

}  // namespace sealfs::mkfs
