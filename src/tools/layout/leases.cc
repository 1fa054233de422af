// sealfs-layout leases: the running daemon's lease table (who maps what,
// and which breaks are under way). Other users' leases are shown only to
// the daemon's uid, root and the dax group; the rest are counted as hidden.
#include <ftw.h>
#include <sys/stat.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sealfs/sealfs.h"
#include "tools/layout/common.h"
#include "tools/layout/json_writer.h"
#include "util/proc_file.h"

namespace sealfs::layout {
namespace {

const char* state_name(uint32_t s) {
  switch (s) {
    case wire::kLeaseActive: return "held";
    case wire::kLeaseBreaking: return "breaking";
    case wire::kLeaseRevoking: return "revoking";
    case wire::kLeaseRevoked: return "revoked";
    case wire::kLeaseOrphaned: return "orphaned";
  }
  return "unknown";
}

const char* reason_name(uint32_t r) {
  switch (r) {
    case SEALFS_BREAK_TRUNCATE: return "truncate";
    case SEALFS_BREAK_FALLOCATE: return "fallocate";
    case SEALFS_BREAK_WRITE: return "write";
    case SEALFS_BREAK_UNLINK: return "unlink";
    case SEALFS_BREAK_RENAME: return "rename";
    case SEALFS_BREAK_UNMOUNT: return "unmount";
    case SEALFS_BREAK_RELOCATE: return "relocate";
    case SEALFS_BREAK_DAEMON_GONE: return "daemon_gone";
    case SEALFS_BREAK_OTHER: return "other";
    case SEALFS_BREAK_SHARED: return "shared";
    default: return "";
  }
}

// The KIND column: a direct mapping, an exclusive one (docs/protocol.md
// "Exclusive leases"), or a layout lease.
const char* kind_text(const wire::LeaseRecord& l) {
  if (l.layout_only) return "layout";
  return (l.flags & wire::kLeaseRecordExclusive) != 0 ? "excl" : "map";
}

const char* policy_name(uint32_t p) {
  switch (p) {
    case wire::kPolicyFence: return "fence";
    case wire::kPolicyKill: return "kill";
    case wire::kPolicyQuarantine: return "quarantine";
    default: return "default";
  }
}

std::string prot_text(uint32_t prot) {
  std::string s;
  s += (prot & wire::kProtRead) ? 'r' : '-';
  s += (prot & wire::kProtWrite) ? 'w' : '-';
  return s;
}

std::string command_of(uint32_t pid) {
  auto name = process_command_name(pid);
  return name.is_ok() ? std::move(*name) : std::string();
}

// Paths of the leased inodes, found by walking the mount (the daemon keeps
// no names for inodes). An inode not found is unlinked or out of reach.
std::set<uint64_t>* g_wanted = nullptr;
std::map<uint64_t, std::string>* g_found = nullptr;
int visit(const char* path, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_F && g_wanted->count(st->st_ino) && !g_found->count(st->st_ino)) {
    (*g_found)[st->st_ino] = path;
    if (g_found->size() == g_wanted->size()) return 1;  // all found: stop
  }
  return 0;
}
std::map<uint64_t, std::string> paths_of(const std::string& mountpoint, std::set<uint64_t> inos) {
  std::map<uint64_t, std::string> found;
  if (inos.empty()) return found;
  g_wanted = &inos;
  g_found = &found;
  nftw(mountpoint.c_str(), visit, 16, FTW_PHYS | FTW_MOUNT);
  g_wanted = nullptr;
  g_found = nullptr;
  return found;
}

}  // namespace

int run_leases(const Options& options) {
  if (options.operands.size() != 1) {
    complain("leases: name one MOUNTPOINT");
    return kExitUsage;
  }
  const std::string& path = options.operands[0];
  auto target = resolve_target(path);
  if (!target.is_ok()) {
    complain(target.status().message());
    return kExitFailed;
  }
  if (!target->daemon) {
    complain(path + ": not a mount point; leases live in the running daemon only");
    return kExitUsage;
  }
  auto answer = target->daemon->ask(wire::Type::kLeaseTable);
  if (!answer.is_ok()) {
    complain(path + ": " + answer.status().to_string());
    return kExitFailed;
  }
  std::vector<wire::LeaseRecord> leases;
  std::set<uint64_t> inos;
  for (uint64_t i = 0; i < answer->count; ++i) {
    leases.push_back(answer->record<wire::LeaseRecord>(i));
    inos.insert(leases.back().ino);
  }
  const auto paths = paths_of(path, inos);
  const uint64_t now = answer->head.now_ns;
  auto left_ns = [now](const wire::LeaseRecord& l) -> uint64_t {
    return l.deadline_ns > now ? l.deadline_ns - now : 0;
  };
  auto path_of = [&](uint64_t ino) {
    auto it = paths.find(ino);
    return it == paths.end() ? std::string() : it->second;
  };
  if (options.json) {
    JsonWriter j;
    j.begin_object();
    j.key("mountpoint").value(path);
    j.key("hidden").value(answer->head.hidden);
    j.key("leases").begin_array();
    for (const auto& l : leases) {
      const bool breaking = l.state == wire::kLeaseBreaking || l.state == wire::kLeaseRevoking;
      j.begin_object();
      j.key("lease_id").value(l.lease_id);
      j.key("path").value(path_of(l.ino));
      j.key("ino").value(l.ino);
      j.key("offset").value(l.offset);
      j.key("length").value(l.length);
      j.key("pid").value(l.holder_pid);
      j.key("uid").value(l.holder_uid);
      j.key("command").value(command_of(l.holder_pid));
      j.key("prot").value(prot_text(l.prot));
      j.key("kind").value(l.layout_only ? "layout" : "map");
      j.key("exclusive").value((l.flags & wire::kLeaseRecordExclusive) != 0);
      j.key("state").value(state_name(l.state));
      j.key("reason").value(breaking ? reason_name(l.reason) : "");
      if (breaking) {
        j.key("time_left_ns").value(left_ns(l));
      } else {
        j.key("time_left_ns").null();
      }
      j.key("policy").value(policy_name(l.policy));
      j.key("generation").value(l.generation);
      j.end_object();
    }
    j.end_array();
    j.end_object();
    std::fputs(j.finish().c_str(), stdout);
    return kExitOk;
  }
  std::printf("%s: %zu lease%s", path.c_str(), leases.size(), leases.size() == 1 ? "" : "s");
  if (answer->head.hidden) std::printf(" (%u of other users not shown)", answer->head.hidden);
  std::printf("\n");
  if (leases.empty()) return kExitOk;
  std::printf("  %4s  %-24s %-18s %7s %-15s %4s %-6s %-9s %s\n", "ID", "FILE", "RANGE", "PID",
              "COMMAND", "PROT", "KIND", "STATE", "GEN");
  for (const auto& l : leases) {
    // Relative to the mount point here (the JSON has the whole path).
    std::string file = path_of(l.ino);
    if (file.rfind(path, 0) == 0) file = file.substr(path.size());
    if (file.empty()) file = fmt::format("(inode {})", l.ino);
    std::string state = state_name(l.state);
    if (l.state == wire::kLeaseBreaking || l.state == wire::kLeaseRevoking) {
      state += fmt::format(" ({}, {:.1f}s left)", reason_name(l.reason),
                           static_cast<double>(left_ns(l)) / 1e9);
    }
    std::printf("  %4llu  %-24s %-18s %7u %-15s %4s %-6s %-9s %llu\n",
                static_cast<unsigned long long>(l.lease_id), file.c_str(),
                exact_range(l.offset, l.offset + l.length).c_str(),
                l.holder_pid, command_of(l.holder_pid).c_str(), prot_text(l.prot).c_str(),
                kind_text(l), state.c_str(),
                static_cast<unsigned long long>(l.generation));
  }
  return kExitOk;
}

}  // namespace sealfs::layout
