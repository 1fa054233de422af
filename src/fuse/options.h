// Command line of the sealfs daemon.
//
//   sealfs [options] TARGET MOUNTPOINT
//
// The same form is what mount.fuse3 runs for `mount -t fuse.sealfs` and for
// /etc/fstab lines, so every option mount(8) may hand down (rw, nodev,
// _netdev, nofail, defaults, ...) is either forwarded to the kernel or
// deliberately ignored; anything else is an error, never silently dropped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace sealfs::fuse {

enum class RevokePolicy { kFence, kKill, kQuarantine };
const char* revoke_policy_name(RevokePolicy policy);

// One day: as long as "until the daemon says otherwise" in practice, short
// enough that the kernel's jiffies arithmetic never overflows.
inline constexpr double kDefaultCacheTimeoutS = 86400.0;
inline constexpr double kMaxCacheTimeoutS = 31536000.0;  // a year

struct DaemonOptions {
  std::string target;
  std::string mountpoint;

  bool foreground = false;
  bool single_threaded = false;
  bool show_help = false;
  bool show_version = false;
  std::string log_level = "warn";
  // --log-file=PATH or -o log_file=PATH (fstab): the log goes there too,
  // and only there once detached (fuse/log_sink.h); "" = syslog.
  std::string log_file;

  bool read_only = false;
  bool emulate_pmem = false;
  unsigned max_threads = 10;
  bool clone_fd = false;

  // Lease engine settings: parsed and validated now, used by src/lease.
  uint32_t lease_break_time_s = 45;
  RevokePolicy revoke = RevokePolicy::kFence;
  std::string dax_group;
  std::optional<uint32_t> dax_gid;  // dax_group resolved at parse time
  std::string control_socket;       // "" = a fresh private directory
  bool strict_write_break = false;
  bool background_verify = false;  // MountOptions::background_verify
  std::optional<uint64_t> inode_cache;  // MountOptions::inode_cache; unset: its default
  // Set FUSE_HANDLE_KILLPRIV_V2 in the INIT reply (-o no_killpriv_v2 to
  // leave set-id clearing to the kernel; docs/daemon.md "Set-id bits").
  bool killpriv_v2 = true;
  // The kernel's writeback cache (docs/daemon.md "Caching and coherence").
  bool writeback_cache = false;
  // How long the kernel may trust a name, a name's absence and an inode's
  // attributes without asking again (docs/daemon.md "Caching and
  // coherence": long by default because only this daemon changes the
  // filesystem and it invalidates what it changes on its own).
  double entry_timeout_s = kDefaultCacheTimeoutS;
  double negative_timeout_s = kDefaultCacheTimeoutS;
  double attr_timeout_s = kDefaultCacheTimeoutS;

  // Options for the kernel / fusermount3, in -o form, in the order given.
  // Always ends with default_permissions, fsname= and subtype= unless the
  // user gave their own fsname or subtype.
  std::vector<std::string> fuse_options;
  // The atime family (noatime, relatime, strictatime, ...) in the order
  // given: the daemon's own atime policy.
  std::vector<std::string> atime_options;
};

// Parses argv (argv[0] is the program name). kInvalid with a message a person
// can act on for anything not understood.
Result<DaemonOptions> parse_command_line(int argc, const char* const* argv);

// The -o string handed to fuse_session_new ("a,b,c").
std::string join_fuse_options(const DaemonOptions& options);

void print_usage(const char* program);

}  // namespace sealfs::fuse
