// difftest: differential random-operation tester. Runs one seeded sequence
// of file operations against two directory trees and stops at the first
// difference in a result, an errno, or the state left behind.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runner.h"

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: difftest --a DIR --b DIR [--seed N] [--ops N] [--check-every N]\n"
               "                [--drop-caches-every N]\n"
               "                [--no-mmap] [--no-xattrs] [--no-rename-flags]\n"
               "                [--no-fallocate] [--no-access] [--no-acls] [--no-inode-flags]\n"
               "                [--emulate-a] [--trace]\n"
               "                [--nfs] [--keep] [--compare-only] [--remove]\n"
               "  A is the filesystem under test, B the reference (tmpfs). Work happens in\n"
               "  DIR/difftest.work on each side, which is replaced at start.\n"
               "  --check-every N   compare the whole trees every N steps (default 50)\n"
               "  --drop-caches-every N  drop the kernel's dentries and inodes every N\n"
               "                    steps (root), so that A forgets and reads inodes again\n"
               "  --keep            leave the work trees after a clean run\n"
               "  --compare-only    run no operations; compare existing work trees\n"
               "  --remove          run no operations; remove the work trees\n"
               "  --no-access       no ACLs, inode flags, chown or operations as uid 65534\n"
               "  --no-acls         no POSIX ACLs (an NFSv4 mount has none)\n"
               "  --no-inode-flags  no inode flags (NFS carries none)\n"
               "  --nfs             A is an NFS mount: close a file before its name is\n"
               "                    unlinked or renamed over (no silly renames); no mmap;\n"
               "                    no O_TRUNC with O_RDONLY\n"
               "exit: 0 no divergence, 1 divergence, 2 usage or setup error\n");
}

bool parse_count(const char* text, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') return false;
  *out = value;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  difftest::Options options;
  options.seed = static_cast<uint64_t>(
                     std::chrono::system_clock::now().time_since_epoch().count()) ^
                 static_cast<uint64_t>(getpid());
  options.seed %= 1000000000;  // short enough to retype
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    auto count = [&](uint64_t* out) {
      const char* text = value();
      if (text == nullptr || !parse_count(text, out)) {
        std::fprintf(stderr, "difftest: %s needs a number\n", arg.c_str());
        std::exit(2);
      }
    };
    if (arg == "--a" || arg == "--b") {
      const char* dir = value();
      if (dir == nullptr) {
        usage();
        return 2;
      }
      (arg == "--a" ? options.root_a : options.root_b) = dir;
    } else if (arg == "--seed") {
      count(&options.seed);
    } else if (arg == "--ops") {
      count(&options.ops);
    } else if (arg == "--check-every") {
      count(&options.check_every);
      if (options.check_every == 0) options.check_every = 1;
    } else if (arg == "--drop-caches-every") {
      count(&options.drop_caches_every);
    } else if (arg == "--no-mmap") {
      options.mmap = false;
    } else if (arg == "--no-xattrs") {
      options.xattrs = false;
    } else if (arg == "--no-rename-flags") {
      options.rename_flags = false;
    } else if (arg == "--no-fallocate") {
      options.fallocate = false;
    } else if (arg == "--emulate-a") {
      options.emulate_a = true;
    } else if (arg == "--trace") {
      options.trace = true;
    } else if (arg == "--keep") {
      options.keep = true;
    } else if (arg == "--compare-only") {
      options.compare_only = true;
    } else if (arg == "--remove") {
      options.remove_only = true;
    } else if (arg == "--no-access") {
      options.access = false;
      options.acls = false;
      options.inode_flags = false;
    } else if (arg == "--no-acls") {
      options.acls = false;
    } else if (arg == "--no-inode-flags") {
      options.inode_flags = false;
    } else if (arg == "--nfs") {
      options.nfs = true;
      options.mmap = false;
    } else {
      usage();
      return 2;
    }
  }
  if (options.root_a.empty() || options.root_b.empty()) {
    usage();
    return 2;
  }

  auto start = std::chrono::steady_clock::now();
  if (!options.compare_only && !options.remove_only) {
    std::fprintf(stderr, "difftest: seed %llu, %llu ops, A=%s B=%s\n",
                 static_cast<unsigned long long>(options.seed),
                 static_cast<unsigned long long>(options.ops), options.root_a.c_str(),
                 options.root_b.c_str());
  }
  difftest::Runner runner(options);
  int rc = runner.run();
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (options.remove_only) return rc;
  if (rc == 0 && !options.compare_only) {
    std::fprintf(stderr, "difftest: seed %llu: %llu ops, no divergence (%.1f s)\n",
                 static_cast<unsigned long long>(options.seed),
                 static_cast<unsigned long long>(options.ops), seconds);
  } else if (rc == 0) {
    std::fprintf(stderr, "difftest: trees agree\n");
  }
  return rc;
}
