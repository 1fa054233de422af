// Fuzz target: the command lines of the tools and the size parser they
// share. The input is split at NUL bytes into words; the words are handed
// as argv to the daemon's parser (src/fuse/options.h) and to mkfs.sealfs's
// (src/tools/mkfs_args.h), and each word alone to parse_size.
//
// Promises checked beyond "no crash, no sanitizer report":
//   - a size parse_size accepts prints (format_size) and, written as plain
//     decimal, parses back to the same number;
//   - parsing the same command line twice gives the same answer.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <getopt.h>

#include "fuse/options.h"
#include "tools/mkfs_args.h"
#include "util/log.h"
#include "util/units.h"

namespace {

[[noreturn]] void broken(const char* promise, const std::string& detail) {
  std::fprintf(stderr, "options_fuzz: broken promise: %s: %s\n", promise, detail.c_str());
  std::abort();
}

void check_size(const std::string& word) {
  const auto size = sealfs::parse_size(word);
  if (!size.is_ok()) return;
  (void)sealfs::format_size(*size);
  const auto again = sealfs::parse_size(std::to_string(*size));
  if (!again.is_ok() || *again != *size) broken("parse_size round trip", word);
}

std::string describe(const sealfs::Result<sealfs::fuse::DaemonOptions>& r) {
  if (!r.is_ok()) return "error " + r.status().to_string();
  std::string out = r->target + "|" + r->mountpoint + "|" + sealfs::fuse::join_fuse_options(*r);
  for (const auto& a : r->atime_options) out += "|" + a;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sealfs::set_log_level("off");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> words{"prog"};
  std::string word;
  for (size_t i = 0; i < size && words.size() < 64; ++i) {
    if (data[i] == 0) {
      words.push_back(word);
      word.clear();
    } else {
      word.push_back(static_cast<char>(data[i]));
    }
  }
  if (words.size() < 64) words.push_back(word);
  for (size_t i = 1; i < words.size(); ++i) check_size(words[i]);

  std::vector<const char*> cargv;
  for (const auto& w : words) cargv.push_back(w.c_str());
  cargv.push_back(nullptr);
  const int argc = static_cast<int>(words.size());
  const std::string first = describe(sealfs::fuse::parse_command_line(argc, cargv.data()));
  const std::string second = describe(sealfs::fuse::parse_command_line(argc, cargv.data()));
  if (first != second) broken("the daemon's parser is deterministic", first + " vs " + second);

  // getopt permutes argv and keeps state across calls: a fresh copy, and
  // optind = 0 for a full reset (as glibc documents).
  std::vector<std::string> copy = words;
  std::vector<char*> argv;
  for (auto& w : copy) argv.push_back(w.data());
  argv.push_back(nullptr);
  optind = 0;
  sealfs::mkfs::Args args;
  (void)sealfs::mkfs::parse_args(argc, argv.data(), args);
  return 0;
}
