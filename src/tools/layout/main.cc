// sealfs-layout: see where a sealfs filesystem keeps things (docs/layout.md).
// Options are parsed here; each subcommand is a file of its own.
#include <getopt.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "media/media_fault.h"
#include "tools/layout/common.h"
#include "util/log.h"
#include "util/version.h"

namespace {

void usage(FILE* out) {
  std::fputs(
      "usage: sealfs-layout extents [--json] FILE...\n"
      "       sealfs-layout extents [--json] --image REGION PATH...\n"
      "       sealfs-layout super   [--json] REGION|MOUNTPOINT\n"
      "       sealfs-layout free    [--json] REGION|MOUNTPOINT\n"
      "       sealfs-layout leases  [--json] MOUNTPOINT\n"
      "       sealfs-layout map     [--json] REGION|MOUNTPOINT -o FILE.svg\n"
      "\n"
      "A MOUNTPOINT (or a FILE on one) is asked of its running daemon; a REGION is\n"
      "opened read-only, shared with fsck -n and read-only mounts, and refused while\n"
      "a read-write daemon owns it. PATH of --image is taken from the filesystem root.\n"
      "\n"
      "  --json        one JSON object on stdout (keys: docs/layout.md)\n"
      "  --image R     extents: read the files from region R instead of a mount\n"
      "  -o FILE.svg   map: where the picture goes (FILE.png too if rsvg-convert exists)\n"
      "  -h, --help    this text\n"
      "  -V, --version the version\n"
      "\n"
      "exit: 0 shown, 1 some operands not shown (or superblock copies disagree),\n"
      "      2 usage, 4 nothing could be shown\n",
      out);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sealfs::layout;
  Options options;
  static const option long_options[] = {{"json", no_argument, nullptr, 'j'},
                                        {"image", required_argument, nullptr, 'i'},
                                        {"output", required_argument, nullptr, 'o'},
                                        {"help", no_argument, nullptr, 'h'},
                                        {"version", no_argument, nullptr, 'V'},
                                        {nullptr, 0, nullptr, 0}};
  // Returns -1 to go on, else an exit code.
  auto take = [&](int c) {
    switch (c) {
      case 'j': options.json = true; return -1;
      case 'i': options.image = optarg; return -1;
      case 'o': options.output = optarg; return -1;
      case 'V': std::printf("sealfs-layout %s\n", sealfs::kVersion); return kExitOk;
      case 'h': usage(stdout); return kExitOk;
      default: usage(stderr); return kExitUsage;
    }
  };
  int c;
  // Options may come before the subcommand ("+": stop at it) and after it.
  while ((c = getopt_long(argc, argv, "+o:hV", long_options, nullptr)) != -1) {
    if (int done = take(c); done >= 0) return done;
  }
  if (optind >= argc) {
    usage(stderr);
    return kExitUsage;
  }
  const std::string command = argv[optind];
  // The rest is parsed afresh (optind = 0 resets getopt, which otherwise
  // keeps the "+" mode of the first pass) with the subcommand left out.
  std::vector<char*> rest{argv[0]};
  for (int i = optind + 1; i < argc; ++i) rest.push_back(argv[i]);
  rest.push_back(nullptr);
  const int rest_count = static_cast<int>(rest.size()) - 1;
  optind = 0;
  while ((c = getopt_long(rest_count, rest.data(), "o:hV", long_options, nullptr)) != -1) {
    if (int done = take(c); done >= 0) return done;
  }
  for (int i = optind; i < rest_count; ++i) options.operands.push_back(rest[i]);
  if (!options.image.empty() && command != "extents") {
    complain("--image is for extents; other subcommands take the REGION itself");
    return kExitUsage;
  }
  if (!options.output.empty() && command != "map") {
    complain("-o is for map");
    return kExitUsage;
  }
  // A SIGBUS reading a region (poison, a truncated file) becomes an I/O
  // error instead of killing the tool.
  (void)sealfs::install_media_fault_handler();
  // The tool's stderr is for its own messages; the layers' warnings (such
  // as "region is not DAX", meant for a mount) stay out of it.
  (void)sealfs::set_log_level("error");
  if (command == "extents") return run_extents(options);
  if (command == "super") return run_super(options);
  if (command == "free") return run_free(options);
  if (command == "leases") return run_leases(options);
  if (command == "map") return run_map(options);
  complain("unknown subcommand '" + command + "'");
  usage(stderr);
  return kExitUsage;
}
