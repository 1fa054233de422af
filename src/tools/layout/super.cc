// sealfs-layout super: the superblock decoded (dumpe2fs -h, xfs_info), both
// copies through media's decode_superblock, from the running daemon or from
// a region opened read-only.
#include <time.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "media/superblock.h"
#include "tools/layout/common.h"
#include "tools/layout/json_writer.h"
#include "tools/uuid_text.h"

namespace sealfs::layout {
namespace {

struct Copies {
  uint64_t region_size = 0;
  uint64_t backup_offset = 0;
  format::DiskSuperblock primary{}, backup{};
  bool live_daemon = false;  // asked a serving daemon (its mount is live)
};

std::string time_text(uint64_t ns) {
  if (ns == 0) return "never";
  time_t secs = static_cast<time_t>(ns / 1'000'000'000ull);
  struct tm tm {};
  char text[64];
  if (gmtime_r(&secs, &tm) == nullptr || strftime(text, sizeof text, "%F %T UTC", &tm) == 0) {
    return std::to_string(ns);
  }
  return text;
}

struct Area {
  const char* name;
  uint64_t start_block, blocks;
};
std::vector<Area> areas_of(const Geometry& g) {
  return {{"superblock", 0, 1},
          {"journal", g.journal_start, g.journal_blocks},
          {"holders", g.holder_start, g.holder_blocks},
          {"inodes", g.inode_start, g.inode_blocks},
          {"bitmap", g.bitmap_start, g.bitmap_blocks},
          {"data", g.data_start, g.data_blocks},
          {"backup", g.backup_block(), 1}};
}

// Fields that must be the same in both copies: identity and geometry, what
// the backup is kept for. The others (state, counters, times, the mount
// record) are written to the backup only by mkfs and during a mount (when a
// feature bit is turned on, and by the needs-check stamp: media/journal.cc),
// never at unmount, so they lag behind the primary: listed, not a
// disagreement.
std::vector<std::string> identity_differences(const Superblock& a, const Superblock& b) {
  std::vector<std::string> out;
  const Geometry &x = a.geometry, &y = b.geometry;
  if (a.uuid != b.uuid) out.push_back("uuid");
  if (a.label != b.label) out.push_back("label");
  if (a.version != b.version) out.push_back("version");
  if (a.feature_compat != b.feature_compat || a.feature_ro_compat != b.feature_ro_compat ||
      a.feature_incompat != b.feature_incompat) {
    out.push_back("features");
  }
  if (x.region_size != y.region_size || x.device_alignment != y.device_alignment ||
      x.journal_start != y.journal_start || x.journal_blocks != y.journal_blocks ||
      x.holder_start != y.holder_start || x.holder_blocks != y.holder_blocks ||
      x.inode_start != y.inode_start || x.inode_blocks != y.inode_blocks ||
      x.inode_count != y.inode_count || x.bitmap_start != y.bitmap_start ||
      x.bitmap_blocks != y.bitmap_blocks || x.data_start != y.data_start ||
      x.data_blocks != y.data_blocks) {
    out.push_back("geometry");
  }
  return out;
}
std::vector<std::string> state_differences(const Superblock& a, const Superblock& b) {
  std::vector<std::string> out;
  if (a.state != b.state) out.push_back("state");
  if (a.mount_count != b.mount_count) out.push_back("mount_count");
  if (a.orphan_head != b.orphan_head) out.push_back("orphan_head");
  if (a.last_mount_time_ns != b.last_mount_time_ns) out.push_back("last_mount_time");
  if (a.last_check_time_ns != b.last_check_time_ns) out.push_back("last_check_time");
  if (a.mount_pid != b.mount_pid || a.mount_host != b.mount_host ||
      a.mount_point != b.mount_point) {
    out.push_back("mount_record");
  }
  return out;
}

// State as an admin reads it. Offline the tool holds a reader claim, so no
// read-write daemon serves the region: a "mounted" state means its daemon
// died and the next mount replays the journal.
std::string state_text(const Superblock& sb, bool live) {
  switch (sb.state) {
    case format::kStateClean: return "clean";
    case format::kStateMounted:
      return live ? "mounted" : "needs recovery (left mounted; the next mount replays the journal)";
    case format::kStateNeedsCheck: return "needs check (run fsck.sealfs -y)";
  }
  return fmt::format("unknown ({})", sb.state);
}
// The primary is bad: the state is the backup's, which records the moment
// the backup was last written (mkfs, or a mount turning a feature on), not
// how the daemon last stopped.
std::string backup_state_text(const Superblock& sb) {
  const char* name = sb.state == format::kStateClean     ? "clean"
                     : sb.state == format::kStateMounted ? "mounted"
                     : sb.state == format::kStateNeedsCheck
                         ? "needs check"
                         : nullptr;
  return fmt::format(
      "{} in the backup copy (the primary is bad; the backup is written at mkfs and while "
      "mounted, never at unmount, so this is not how the daemon last stopped)",
      name ? std::string(name) : fmt::format("unknown ({})", sb.state));
}
const char* state_key(const Superblock& sb, bool live) {
  switch (sb.state) {
    case format::kStateClean: return "clean";
    case format::kStateMounted: return live ? "mounted" : "needs_recovery";
    case format::kStateNeedsCheck: return "needs_check";
  }
  return "unknown";
}

std::vector<std::string> feature_names(uint32_t incompat) {
  std::vector<std::string> out;
  if (incompat & format::kFeatureIncompatJournalSalt) out.push_back("journal_salt");
  if (incompat & format::kFeatureIncompatXattrChain) out.push_back("xattr_chain");
  if (incompat & format::kFeatureIncompatInlineData) out.push_back("inline_data");
  if (incompat & ~format::kFeatureIncompatKnown) {
    out.push_back(fmt::format("unknown:{:#x}", incompat & ~format::kFeatureIncompatKnown));
  }
  return out;
}

Result<Copies> copies_from_daemon(DaemonConnection& daemon) {
  ASSIGN_OR_RETURN(auto answer, daemon.ask(wire::Type::kSuper));
  if (answer.count != 1) return Status(Code::kCorruption, "the daemon sent no superblock");
  const auto record = answer.record<wire::SuperRecord>(0);
  Copies c;
  c.region_size = record.region_size;
  c.backup_offset = record.backup_offset;
  std::memcpy(&c.primary, record.primary, sizeof(c.primary));
  std::memcpy(&c.backup, record.backup, sizeof(c.backup));
  c.live_daemon = true;
  return c;
}

Result<Copies> copies_from_region(const Region& region) {
  // Where the backup is comes from whichever copy verifies.
  ASSIGN_OR_RETURN(Superblock sb, read_superblock(region));
  Copies c;
  c.region_size = region.size();
  c.backup_offset = block_offset(sb.geometry.backup_block());
  std::memcpy(&c.primary, region.data(), sizeof(c.primary));
  std::memcpy(&c.backup, region.data() + c.backup_offset, sizeof(c.backup));
  return c;
}

}  // namespace

int run_super(const Options& options) {
  if (options.operands.size() != 1) {
    complain("super: name one REGION or MOUNTPOINT");
    return kExitUsage;
  }
  const std::string& path = options.operands[0];
  auto target = resolve_target(path);
  if (!target.is_ok()) {
    complain(target.status().message());
    return kExitFailed;
  }
  std::unique_ptr<RegionPmem2> region;
  Result<Copies> copies = Status(Code::kInvalid, "");
  if (target->daemon) {
    copies = copies_from_daemon(*target->daemon);
  } else {
    auto opened = open_region(path);
    if (!opened.is_ok()) {
      complain(opened.status().message());
      return kExitFailed;
    }
    region = std::move(*opened);
    copies = copies_from_region(*region);
  }
  if (!copies.is_ok()) {
    complain(path + ": " + not_sealfs_or(copies.status()));
    return kExitFailed;
  }
  auto primary = decode_superblock(copies->primary, copies->region_size);
  auto backup = decode_superblock(copies->backup, copies->region_size);
  if (!primary.is_ok() && !backup.is_ok()) {
    complain(path + ": no valid superblock: primary: " + primary.status().to_string() +
             "; backup: " + backup.status().to_string());
    return kExitFailed;
  }
  const Superblock& sb = primary.is_ok() ? *primary : *backup;
  std::vector<std::string> differ, lag;
  if (primary.is_ok() && backup.is_ok()) {
    differ = identity_differences(*primary, *backup);
    lag = state_differences(*primary, *backup);
  }
  const char* agreement = !primary.is_ok()  ? "primary_bad"
                          : !backup.is_ok() ? "backup_bad"
                          : !differ.empty() ? "differs"
                                            : "agrees";
  const Geometry& g = sb.geometry;
  const bool live = copies->live_daemon;

  if (options.json) {
    JsonWriter j;
    j.begin_object();
    j.key("target").value(path);
    j.key("source").value(live ? "daemon" : "region");
    j.key("label").value(sb.label);
    j.key("uuid").value(uuid_text(sb.uuid));
    j.key("version").value(sb.version);
    j.key("block_size").value(uint64_t{format::kBlockSize});
    j.key("region_size").value(g.region_size);
    j.key("device_alignment").value(g.device_alignment);
    j.key("inode_count").value(g.inode_count);
    j.key("root_ino").value(sb.root_ino);
    j.key("areas").begin_array();
    for (const Area& a : areas_of(g)) {
      j.begin_object().key("name").value(a.name);
      j.key("offset").value(block_offset(a.start_block));
      j.key("length").value(block_offset(a.blocks)).end_object();
    }
    j.end_array();
    j.key("features").begin_object();
    j.key("compat").value(sb.feature_compat);
    j.key("ro_compat").value(sb.feature_ro_compat);
    j.key("incompat").value(sb.feature_incompat);
    j.key("names").begin_array();
    for (const auto& n : feature_names(sb.feature_incompat)) j.value(n);
    j.end_array().end_object();
    j.key("state").value(state_key(sb, live));
    j.key("state_source").value(primary.is_ok() ? "primary" : "backup");
    j.key("mount").begin_object();
    j.key("pid").value(sb.mount_pid);
    j.key("host").value(sb.mount_host);
    j.key("mountpoint").value(sb.mount_point);
    j.end_object();
    j.key("mount_count").value(sb.mount_count);
    j.key("mkfs_time_ns").value(sb.mkfs_time_ns);
    j.key("last_mount_time_ns").value(sb.last_mount_time_ns);
    j.key("last_check_time_ns").value(sb.last_check_time_ns);
    j.key("backup").begin_object();
    j.key("offset").value(copies->backup_offset);
    j.key("agreement").value(agreement);
    j.key("primary_error").value(primary.is_ok() ? "" : primary.status().to_string());
    j.key("backup_error").value(backup.is_ok() ? "" : backup.status().to_string());
    j.key("differs").begin_array();
    for (const auto& d : differ) j.value(d);
    j.end_array();
    j.key("state_differs").begin_array();
    for (const auto& d : lag) j.value(d);
    j.end_array();
    j.end_object();
    j.end_object();
    std::fputs(j.finish().c_str(), stdout);
  } else {
    std::printf("%s (%s)\n", path.c_str(), live ? "asked the running daemon" : "region read-only");
    std::printf("  label             %s\n", sb.label.empty() ? "(none)" : sb.label.c_str());
    std::printf("  uuid              %s\n", uuid_text(sb.uuid).c_str());
    std::printf("  format version    %u\n", sb.version);
    std::printf("  features          compat %#x, ro_compat %#x, incompat %#x", sb.feature_compat,
                sb.feature_ro_compat, sb.feature_incompat);
    for (const auto& n : feature_names(sb.feature_incompat)) std::printf(" %s", n.c_str());
    std::printf("\n  region size       %s (%llu bytes)\n", human(g.region_size).c_str(),
                static_cast<unsigned long long>(g.region_size));
    std::printf("  block size        %u\n", format::kBlockSize);
    std::printf("  device alignment  %s\n", human(g.device_alignment).c_str());
    std::printf("  inodes            %llu (root %llu)\n",
                static_cast<unsigned long long>(g.inode_count),
                static_cast<unsigned long long>(sb.root_ino));
    std::printf("  areas:\n");
    for (const Area& a : areas_of(g)) {
      std::printf("    %-11s at %-8s %s\n", a.name, exact_offset(block_offset(a.start_block)).c_str(),
                  human(block_offset(a.blocks)).c_str());
    }
    std::printf("  state             %s\n",
                (primary.is_ok() ? state_text(sb, live) : backup_state_text(sb)).c_str());
    const std::string who = sb.describe_last_mount();
    std::printf("  last mount        %s\n", who.empty() ? "never" : who.c_str());
    std::printf("  mount count       %llu\n", static_cast<unsigned long long>(sb.mount_count));
    std::printf("  created           %s\n", time_text(sb.mkfs_time_ns).c_str());
    std::printf("  last checked      %s\n", time_text(sb.last_check_time_ns).c_str());
    std::string backup_text = agreement;
    if (!primary.is_ok()) backup_text = "used: primary is bad (" + primary.status().to_string() + ")";
    if (!backup.is_ok()) backup_text = "bad (" + backup.status().to_string() + ")";
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
      return s;
    };
    if (!differ.empty()) backup_text = "DIFFERS in " + list(differ);
    if (differ.empty() && !lag.empty()) {
      backup_text += " (identity and geometry; written at mkfs and while mounted, never at "
                     "unmount, so " + list(lag) + " lag)";
    }
    std::printf("  backup copy       at %s: %s\n", exact_offset(copies->backup_offset).c_str(),
                backup_text.c_str());
  }
  return primary.is_ok() && backup.is_ok() && differ.empty() ? kExitOk : kExitSomeFailed;
}

}  // namespace sealfs::layout
