// sealfs-layout free: free space by extent size (xfs_db freesp), the 2 MiB
// runs a huge-page mapping can take, and quarantined space with its holders.
// For a mount the daemon's allocator answers (its free-space index, in pages
// that each are a snapshot); for a region, the image mounted read-only.
#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "media/superblock.h"
#include "tools/layout/common.h"
#include "tools/layout/json_writer.h"
#include "tools/layout/space.h"
#include "util/proc_file.h"

namespace sealfs::layout {
namespace {

struct Bucket {
  uint64_t from = 0, to = 0;  // bytes, [from, to)
  uint64_t extents = 0, bytes = 0;
};

std::vector<Bucket> histogram(const Space& space) {
  std::map<uint64_t, Bucket> by_from;
  for (const auto& p : space.pieces) {
    if (p.kind != wire::kSpaceFree) continue;
    uint64_t from = space.block_size;
    while (from * 2 <= p.length) from *= 2;
    Bucket& b = by_from[from];
    b.from = from;
    b.to = from * 2;
    ++b.extents;
    b.bytes += p.length;
  }
  std::vector<Bucket> out;
  for (auto& [from, b] : by_from) out.push_back(b);
  return out;
}

struct HolderSpace {
  uint32_t pid = 0;
  uint64_t start_time = 0;
  uint64_t extents = 0, bytes = 0;
  std::vector<uint64_t> inos;
};

// The holder's command while that very process runs: a pid reused by
// another process (another start time, field 22 of /proc/PID/stat) is not it.
std::string command_of(uint32_t pid, uint64_t start_time) {
  Result<uint64_t> started = process_start_time(pid);
  if (!started.is_ok() || *started != start_time) return "";
  Result<std::string> comm = process_command_name(pid);
  return comm.is_ok() ? std::move(*comm) : std::string();
}

}  // namespace

int run_free(const Options& options) {
  if (options.operands.size() != 1) {
    complain("free: name one REGION or MOUNTPOINT");
    return kExitUsage;
  }
  const std::string& path = options.operands[0];
  auto space = load_space(path);
  if (!space.is_ok()) {
    complain(space.status().message());
    return kExitFailed;
  }
  const auto buckets = histogram(*space);
  uint64_t free_bytes = 0, free_extents = 0, runs = 0, quarantined = 0;
  std::map<std::pair<uint32_t, uint64_t>, HolderSpace> holders;
  for (const auto& p : space->pieces) {
    if (p.kind == wire::kSpaceFree) {
      free_bytes += p.length;
      ++free_extents;
      runs += aligned_runs(p.region_offset, p.length);
    } else {
      quarantined += p.length;
      HolderSpace& h = holders[{p.holder_pid, p.holder_start_time}];
      h.pid = p.holder_pid;
      h.start_time = p.holder_start_time;
      ++h.extents;
      h.bytes += p.length;
      if (std::find(h.inos.begin(), h.inos.end(), p.ino) == h.inos.end()) h.inos.push_back(p.ino);
    }
  }
  if (options.json) {
    JsonWriter j;
    j.begin_object();
    j.key("target").value(path);
    j.key("source").value(space->from_daemon ? "daemon" : "region");
    j.key("block_size").value(space->block_size);
    j.key("data_bytes").value(space->data_length);
    j.key("free_bytes").value(free_bytes);
    j.key("free_extents").value(free_extents);
    j.key("aligned_2m_runs").value(runs);
    j.key("histogram").begin_array();
    for (const Bucket& b : buckets) {
      j.begin_object().key("from").value(b.from).key("to").value(b.to);
      j.key("extents").value(b.extents).key("bytes").value(b.bytes).end_object();
    }
    j.end_array();
    j.key("quarantined_bytes").value(quarantined);
    j.key("holders").begin_array();
    for (const auto& [key, h] : holders) {
      j.begin_object().key("pid").value(h.pid).key("start_time").value(h.start_time);
      j.key("command").value(command_of(h.pid, h.start_time));
      j.key("extents").value(h.extents).key("bytes").value(h.bytes);
      j.key("inos").begin_array();
      for (uint64_t ino : h.inos) j.value(ino);
      j.end_array().end_object();
    }
    j.end_array();
    j.end_object();
    std::fputs(j.finish().c_str(), stdout);
    return kExitOk;
  }
  std::printf("%s (%s)\n", path.c_str(),
              space->from_daemon ? "asked the running daemon" : "region read-only");
  std::printf("  %8s %8s %10s %10s %7s\n", "FROM", "TO", "EXTENTS", "BYTES", "PCT");
  for (const Bucket& b : buckets) {
    const double pct = free_bytes ? 100.0 * static_cast<double>(b.bytes) /
                                        static_cast<double>(free_bytes)
                                  : 0.0;
    std::printf("  %8s %8s %10llu %10s %6.2f%%\n", human(b.from).c_str(), human(b.to).c_str(),
                static_cast<unsigned long long>(b.extents), human(b.bytes).c_str(), pct);
  }
  std::printf("  free %s of %s in %llu extent%s; %llu aligned 2M run%s (%s)\n",
              human(free_bytes).c_str(), human(space->data_length).c_str(),
              static_cast<unsigned long long>(free_extents), free_extents == 1 ? "" : "s",
              static_cast<unsigned long long>(runs), runs == 1 ? "" : "s",
              human(runs * kHugeRun).c_str());
  std::printf("  quarantined %s", human(quarantined).c_str());
  if (holders.empty()) std::printf("\n");
  for (const auto& [key, h] : holders) {
    const std::string cmd = command_of(h.pid, h.start_time);
    std::string files;
    for (uint64_t ino : h.inos) files += (files.empty() ? "inode " : ", ") + std::to_string(ino);
    std::printf("\n    %s held by pid %u%s (%llu extent%s; from %s)", human(h.bytes).c_str(),
                h.pid, cmd.empty() ? " (exited)" : (" " + cmd).c_str(),
                static_cast<unsigned long long>(h.extents), h.extents == 1 ? "" : "s",
                files.c_str());
  }
  if (!holders.empty()) std::printf("\n");
  return kExitOk;
}

}  // namespace sealfs::layout
