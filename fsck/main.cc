// fsck.sealfs [-n|-y|-p|-a] [-f] [-v] [-q] [-C FD] [--json] REGION|MOUNTPOINT
// (also installed as fsck.fuse.sealfs, the name fsck(8) runs for fstab
// lines of type fuse.sealfs)
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "fsck/checker.h"
#include "fsck/progress.h"
#include "fsck/report.h"
#include "media/media_fault.h"
#include "media/region_owner.h"
#include "media/region_pmem2.h"
#include "util/version.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: fsck.sealfs [-n|-y|-p] [-f] [-v] [-q] [-C FD] [--json] REGION|MOUNTPOINT\n"
               "  -n      check only, open read-only (the default)\n"
               "  -y      repair every problem found\n"
               "  -p, -a  preen: repair only what is safe unattended (docs/fsck.md), else\n"
               "          change nothing and exit 4\n"
               "  -f      force (accepted for fsck(8) compatibility: the check is always full)\n"
               "  -v      verbose summary\n"
               "  -q      quiet: no progress, only problems and the verdict\n"
               "  -C FD   progress to descriptor FD as 'PHASE DONE TOTAL REGION' lines\n"
               "          (-C 0: the terminal line on stdout); without -C, progress is shown\n"
               "          on stderr when it is a terminal\n"
               "  --json  one JSON object on stdout instead of the summary\n"
               "  -V, --version  print the version\n"
               "A MOUNTPOINT names the region mounted there (a mounted region is not repaired).\n"
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
  if (repair) {
    return text + "a mounted region is never repaired; unmount it before repairing it "
                  "(fsck.sealfs -n checks a read-only mount)";
  }
  return text + "a region in use by a writer cannot be checked consistently; unmount it (or "
                "mount it read-only) first";
}

struct Args {
  bool check_only = false, repair = false, preen = false;
  bool verbose = false, quiet = false, json = false;
  std::optional<int> progress_fd;
  std::string target;
};

// Returns the exit code to stop with, or nullopt to go on.
std::optional<int> parse(int argc, char** argv, Args* a) {
  static const option long_options[] = {{"json", no_argument, nullptr, 'j'},
                                        {"help", no_argument, nullptr, 'h'},
                                        {"version", no_argument, nullptr, 'V'},
                                        {nullptr, 0, nullptr, 0}};
  int c;
  int modes = 0;
  while ((c = getopt_long(argc, argv, "nyfvpaqC:hV", long_options, nullptr)) != -1) {
    switch (c) {
      case 'n': a->check_only = true; ++modes; break;
      case 'y': a->repair = true; ++modes; break;
      case 'p': case 'a':
        if (!a->preen) ++modes;
        a->repair = a->preen = true;
        break;
      case 'f': break;
      case 'v': a->verbose = true; break;
      case 'q': a->quiet = true; break;
      case 'C': {
        char* end = nullptr;
        long fd = std::strtol(optarg, &end, 10);
        if (end == optarg || *end != '\0' || fd < 0 || fd > 1 << 20) {
          std::fprintf(stderr, "fsck.sealfs: -C needs a file descriptor number, not '%s'\n",
                       optarg);
          return sealfs::fsck::kExitUsage;
        }
        a->progress_fd = static_cast<int>(fd);
        break;
      }
      case 'j': a->json = true; break;
      case 'h': usage(stdout); return sealfs::fsck::kExitClean;
      case 'V': std::printf("fsck.sealfs %s\n", sealfs::kVersion); return sealfs::fsck::kExitClean;
      default: usage(stderr); return sealfs::fsck::kExitUsage;
    }
  }
  if (modes > 1) {
    std::fprintf(stderr, "fsck.sealfs: only one of -n, -y and -p/-a may be given\n");
    usage(stderr);
    return sealfs::fsck::kExitUsage;
  }
  if (optind + 1 != argc) {
    usage(stderr);
    return sealfs::fsck::kExitUsage;
  }
  a->target = argv[optind];
  return std::nullopt;
}

int fail(const Args& a, const std::string& target, const std::string& why) {
  sealfs::fsck::Report report;
  report.target = target;
  report.repair = a.repair;
  report.operational_error = why;
  report.exit_code = sealfs::fsck::kExitOperational;
  std::fputs(a.json ? sealfs::fsck::render_json(report).c_str()
                    : sealfs::fsck::render_text(report, a.verbose, a.quiet).c_str(),
             a.json ? stdout : stderr);
  return report.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sealfs;
  Args a;
  if (auto stop = parse(argc, argv, &a)) return *stop;
  std::string region_path = a.target;
  struct stat st {};
  if (::stat(a.target.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    // A mount point (fsck MOUNTPOINT): the daemon's fsname is the region's
    // absolute path.
    region_path = RegionClaim::find_mounted_region(a.target);
    if (region_path.empty()) {
      return fail(a, a.target,
                  a.target + " is a directory with no sealfs mounted on it: give the region "
                             "(a file or devdax device) or the mount point of a sealfs");
    }
    if (!a.quiet && !a.json) {
      std::fprintf(stderr, "fsck.sealfs: %s is mounted from %s\n", a.target.c_str(),
                   region_path.c_str());
    }
    // The mount table names the region as the daemon was given it: a path
    // that may name another file now (the region renamed and a new one made
    // in its place, or /proc/self/fd/N, which is this process's descriptor
    // N). The claim below protects the file the path names now, not the
    // mounted one, so a repair through a mount point is refused outright.
    if (a.repair) {
      return fail(a, a.target,
                  a.target + " is a mounted sealfs: a mounted region is never repaired; unmount "
                             "it before repairing it (fsck.sealfs -n checks a read-only mount)");
    }
  }
  // A SIGBUS on the mapping (replay into a full backing store, poison)
  // becomes an I/O error instead of killing fsck (media_fault.h).
  install_media_fault_handler();
  RegionOptions ro;
  ro.read_only = !a.repair;
  ro.claim = claim_request(region_path, a.repair);
  auto region = RegionPmem2::open(region_path, ro);
  if (!region.is_ok()) {
    return fail(a, region_path,
                region.status().code() == Code::kBusy
                    ? busy_message(region.status(), a.repair)
                    : "cannot open " + region_path + ": " + region.status().to_string());
  }
  std::unique_ptr<fsck::ProgressMeter> meter;
  if (!a.quiet && !a.json) {
    if (a.progress_fd && *a.progress_fd > 0) {
      meter = std::make_unique<fsck::ProgressMeter>(
          *a.progress_fd, fsck::ProgressMeter::Style::kMachine, region_path);
    } else if (a.progress_fd) {
      meter = std::make_unique<fsck::ProgressMeter>(
          STDOUT_FILENO, fsck::ProgressMeter::Style::kTerminal, region_path);
    } else if (::isatty(STDERR_FILENO)) {
      meter = std::make_unique<fsck::ProgressMeter>(
          STDERR_FILENO, fsck::ProgressMeter::Style::kTerminal, region_path);
    }
  }
  fsck::FsckOptions options;
  options.repair = a.repair;
  options.preen = a.preen;
  options.target = region_path;
  if (meter) {
    options.progress = [&](fsck::Phase phase, uint64_t done, uint64_t total) {
      meter->update(phase, done, total);
    };
  }
  fsck::Report report = fsck::run_fsck(**region, options);
  if (meter) meter->finish();
  std::fputs(a.json ? fsck::render_json(report).c_str()
                    : fsck::render_text(report, a.verbose, a.quiet).c_str(),
             stdout);
  return report.exit_code;
}
