// fsck.sealfs [-n] [-y] [-f] [-v] [--json] TARGET
#include <getopt.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "fsck/checker.h"
#include "fsck/report.h"
#include "media/media_fault.h"
#include "media/region_pmem2.h"
#include "util/version.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: fsck.sealfs [-n] [-y] [-f] [-v] [--json] DEVICE|FILE\n"
               "  -n      check only, open read-only (the default)\n"
               "  -y      repair every problem found\n"
               "  -f      force (accepted for fsck(8) compatibility: the check is always full)\n"
               "  -v      verbose summary\n"
               "  --json  one JSON object on stdout instead of the summary\n"
               "  -V, --version  print the version\n"
               "exit: 0 clean, 1 errors corrected, 4 errors left, 8 operational error, 16 usage\n");
}

// fsck runs alone on a region (media/region_owner.h): -y excludes every other
// owner; -n shares the region with read-only mounts and other checks, never
// with a writer, whose region changes under the check. A daemon finishing its
// unmount is waited for, so that `umount; fsck` checks the final state.
sealfs::ClaimRequest claim_request(const std::string& target, bool repair) {
  return sealfs::tool_claim_request(
      repair ? sealfs::OwnerRole::kFsckRepair : sealfs::OwnerRole::kFsckCheck, "fsck.sealfs",
      target);
}

std::string busy_message(const sealfs::Status& status, bool repair) {
  std::string text = status.message() + ": ";
  if (repair) return text + "unmount it before repairing it";
  return text + "a region in use by a writer cannot be checked consistently; unmount it (or "
                "mount it read-only) first";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sealfs;
  bool check_only = false, repair = false, verbose = false, json = false;
  static const option long_options[] = {{"json", no_argument, nullptr, 'j'},
                                        {"help", no_argument, nullptr, 'h'},
                                        {"version", no_argument, nullptr, 'V'},
                                        {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "nyfvpahV", long_options, nullptr)) != -1) {
    switch (c) {
      case 'n': check_only = true; break;
      case 'y': case 'p': case 'a': repair = true; break;
      case 'f': break;
      case 'v': verbose = true; break;
      case 'j': json = true; break;
      case 'h': usage(stdout); return fsck::kExitClean;
      case 'V': std::printf("fsck.sealfs %s\n", kVersion); return fsck::kExitClean;
      default: usage(stderr); return fsck::kExitUsage;
    }
  }
  if (optind + 1 != argc || (check_only && repair)) {
    if (check_only && repair) std::fprintf(stderr, "fsck.sealfs: -n and -y exclude each other\n");
    usage(stderr);
    return fsck::kExitUsage;
  }
  const std::string target = argv[optind];
  // A SIGBUS on the mapping (replay into a full backing store, poison)
  // becomes an I/O error instead of killing fsck (media_fault.h).
  install_media_fault_handler();
  RegionOptions ro;
  ro.read_only = !repair;
  ro.claim = claim_request(target, repair);
  auto region = RegionPmem2::open(target, ro);
  if (!region.is_ok()) {
    fsck::Report report;
    report.target = target;
    report.repair = repair;
    report.operational_error =
        region.status().code() == Code::kBusy
            ? busy_message(region.status(), repair)
            : "cannot open " + target + ": " + region.status().to_string();
    report.exit_code = fsck::kExitOperational;
    std::fputs(json ? fsck::render_json(report).c_str()
                    : fsck::render_text(report, verbose).c_str(),
               json ? stdout : stderr);
    return report.exit_code;
  }
  fsck::FsckOptions options;
  options.repair = repair;
  options.target = target;
  fsck::Report report = fsck::run_fsck(**region, options);
  std::fputs(json ? fsck::render_json(report).c_str() : fsck::render_text(report, verbose).c_str(),
             stdout);
  return report.exit_code;
}
