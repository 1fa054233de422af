#include "fuse/options.h"

#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <string_view>

namespace sealfs::fuse {
namespace {

// Forwarded verbatim to libfuse / the kernel / fusermount3.
constexpr std::array kFuseFlags = {
    "allow_other", "allow_root", "auto_unmount", "default_permissions", "rw", "ro",
    "suid", "nosuid", "dev", "nodev", "exec", "noexec", "async", "sync", "dirsync",
    "atime", "noatime",
};
// atime policy: the daemon keeps FUSE files' times, so it applies these
// itself (AtimePolicy, meta/filesystem.h). libfuse 3.14 refuses all but
// atime and noatime, so the rest are not forwarded.
constexpr std::array kAtimeFlags = {
    "atime", "noatime", "relatime", "norelatime", "strictatime", "nostrictatime",
    "diratime", "nodiratime",
};
constexpr std::array kFuseValued = {
    "fsname=", "subtype=", "max_read=", "context=", "fscontext=", "defcontext=",
    "rootcontext=",
};
// Options that mean something to mount(8) or fstab only. mount.fuse3 passes
// some of them on; they have no meaning for the daemon.
constexpr std::array kIgnoredFlags = {
    "defaults", "_netdev", "nofail", "auto", "noauto", "user", "users", "nouser",
    "owner", "group", "lazytime", "nolazytime", "iversion", "noiversion",
};
constexpr std::array kIgnoredPrefixes = {"x-", "comment=", "user=", "owner=", "group=",
                                         "uhelper=", "helper="};

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

template <typename T>
bool parse_uint(std::string_view text, T min, T max, T* out) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return false;
  }
  *out = value;
  return true;
}

// Seconds, whole or decimal ("0.5"), from 0 to kMaxCacheTimeoutS.
bool parse_timeout(std::string_view text, double* out) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value,
                                   std::chars_format::fixed);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !(value >= 0) ||
      value > kMaxCacheTimeoutS) {
    return false;
  }
  *out = value;
  return true;
}

Status invalid(std::string message) { return Status(Code::kInvalid, std::move(message)); }

// Splits a -o list on commas; "\," is a literal comma (libfuse's escape).
std::vector<std::string> split_option_list(std::string_view list) {
  std::vector<std::string> out;
  std::string current;
  for (size_t i = 0; i < list.size(); ++i) {
    char c = list[i];
    if (c == '\\' && i + 1 < list.size()) {
      current += '\\';
      current += list[++i];
    } else if (c == ',') {
      out.push_back(std::move(current));
      current.clear();
    } else {
      current += c;
    }
  }
  out.push_back(std::move(current));
  return out;
}

std::string escape_option_value(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

Status apply_option(const std::string& opt, DaemonOptions* o, bool* own_fsname,
                    bool* own_subtype) {
  if (opt.empty()) return Status::ok();
  auto eq = opt.find('=');
  std::string_view key = std::string_view(opt).substr(0, eq);
  std::string_view value =
      eq == std::string::npos ? std::string_view() : std::string_view(opt).substr(eq + 1);

  if (opt == "emulate_pmem") {
    o->emulate_pmem = true;
  } else if (opt == "strict_write_break") {
    o->strict_write_break = true;
  } else if (opt == "background_verify") {
    o->background_verify = true;
  } else if (opt == "killpriv_v2") {
    o->killpriv_v2 = true;
  } else if (opt == "no_killpriv_v2") {
    o->killpriv_v2 = false;
  } else if (opt == "writeback_cache") {
    o->writeback_cache = true;
  } else if (opt == "clone_fd") {
    o->clone_fd = true;
  } else if (opt == "debug") {
    o->log_level = "debug";
  } else if (key == "lease_break_time" && eq != std::string::npos) {
    if (!parse_uint<uint32_t>(value, 0, 3600, &o->lease_break_time_s)) {
      return invalid("lease_break_time=" + std::string(value) +
                     ": expected whole seconds from 0 to 3600");
    }
  } else if (key == "revoke" && eq != std::string::npos) {
    if (value == "fence") {
      o->revoke = RevokePolicy::kFence;
    } else if (value == "kill") {
      o->revoke = RevokePolicy::kKill;
    } else if (value == "quarantine") {
      o->revoke = RevokePolicy::kQuarantine;
    } else {
      return invalid("revoke=" + std::string(value) + ": expected fence, kill or quarantine");
    }
  } else if (key == "dax_group" && eq != std::string::npos) {
    if (value.empty()) return invalid("dax_group= needs a group name");
    std::array<char, 16384> buf{};
    struct group entry {};
    struct group* found = nullptr;
    std::string name(value);
    int rc = getgrnam_r(name.c_str(), &entry, buf.data(), buf.size(), &found);
    gid_t gid = 0;
    if (rc == 0 && found != nullptr) {
      gid = found->gr_gid;
    } else if (!parse_uint<gid_t>(value, 0, static_cast<gid_t>(-2), &gid)) {
      // A numeric gid is accepted as well, as chown(1) does.
      return invalid("dax_group=" + name + ": no such group");
    }
    o->dax_group = name;
    o->dax_gid = gid;
  } else if (key == "control_socket" && eq != std::string::npos) {
    if (value.empty() || value[0] != '/') {
      return invalid("control_socket=" + std::string(value) + ": expected an absolute path");
    }
    if (value.size() >= 108) {
      return invalid("control_socket=" + std::string(value) + ": longer than a socket path may be");
    }
    o->control_socket = std::string(value);
  } else if (key == "log_file" && eq != std::string::npos) {
    if (value.empty()) return invalid("log_file= needs a path");
    o->log_file = std::string(value);
  } else if ((key == "entry_timeout" || key == "negative_timeout" || key == "attr_timeout") &&
             eq != std::string::npos) {
    double* field = key == "entry_timeout"      ? &o->entry_timeout_s
                    : key == "negative_timeout" ? &o->negative_timeout_s
                                                : &o->attr_timeout_s;
    if (!parse_timeout(value, field)) {
      return invalid(std::string(key) + "=" + std::string(value) +
                     ": expected seconds from 0 to 31536000 (decimals allowed)");
    }
  } else if (key == "inode_cache" && eq != std::string::npos) {
    uint64_t bound = 0;
    if (!parse_uint<uint64_t>(value, 0, uint64_t{1} << 40, &bound)) {
      return invalid("inode_cache=" + std::string(value) +
                     ": expected a number of inodes (0: no bound)");
    }
    o->inode_cache = bound;
  } else if (key == "max_threads" && eq != std::string::npos) {
    if (!parse_uint<unsigned>(value, 1, 1024, &o->max_threads)) {
      return invalid("max_threads=" + std::string(value) + ": expected a number from 1 to 1024");
    }
  } else if (std::find(kFuseFlags.begin(), kFuseFlags.end(), std::string_view(opt)) !=
                 kFuseFlags.end() ||
             std::find(kAtimeFlags.begin(), kAtimeFlags.end(), std::string_view(opt)) !=
                 kAtimeFlags.end()) {
    if (opt == "ro") o->read_only = true;
    if (opt == "rw") o->read_only = false;
    if (std::find(kAtimeFlags.begin(), kAtimeFlags.end(), std::string_view(opt)) !=
        kAtimeFlags.end()) {
      o->atime_options.push_back(opt);
    }
    if (std::find(kFuseFlags.begin(), kFuseFlags.end(), std::string_view(opt)) !=
        kFuseFlags.end()) {
      o->fuse_options.push_back(opt);
    }
  } else if (std::any_of(kFuseValued.begin(), kFuseValued.end(),
                         [&](const char* p) { return starts_with(opt, p); })) {
    if (key == "fsname") *own_fsname = true;
    if (key == "subtype") *own_subtype = true;
    o->fuse_options.push_back(opt);
  } else if (std::find(kIgnoredFlags.begin(), kIgnoredFlags.end(), std::string_view(opt)) !=
                 kIgnoredFlags.end() ||
             std::any_of(kIgnoredPrefixes.begin(), kIgnoredPrefixes.end(),
                         [&](const char* p) { return starts_with(opt, p); })) {
    // mount(8)/fstab bookkeeping; nothing for the daemon to do.
  } else {
    return invalid("unknown mount option '" + opt + "' (see sealfs -h)");
  }
  return Status::ok();
}

}  // namespace

const char* revoke_policy_name(RevokePolicy policy) {
  switch (policy) {
    case RevokePolicy::kFence: return "fence";
    case RevokePolicy::kKill: return "kill";
    case RevokePolicy::kQuarantine: return "quarantine";
  }
  return "?";
}

Result<DaemonOptions> parse_command_line(int argc, const char* const* argv) {
  DaemonOptions o;
  std::vector<std::string> positional;
  std::vector<std::string> option_lists;
  bool only_positional = false;

  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (only_positional || arg.empty() || arg[0] != '-' || arg == "-") {
      positional.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positional = true;
    } else if (arg == "--help") {
      o.show_help = true;
    } else if (arg == "--version") {
      o.show_version = true;
    } else if (arg == "--foreground") {
      o.foreground = true;
    } else if (arg == "--debug") {
      o.log_level = "debug";
    } else if (starts_with(arg, "--log-level=")) {
      o.log_level = std::string(arg.substr(12));
    } else if (arg == "--log-level") {
      if (i + 1 >= argc) return invalid("--log-level needs a level");
      o.log_level = argv[++i];
    } else if (starts_with(arg, "--log-file=")) {
      o.log_file = std::string(arg.substr(11));
      if (o.log_file.empty()) return invalid("--log-file= needs a path");
    } else if (arg == "--log-file") {
      if (i + 1 >= argc) return invalid("--log-file needs a path");
      o.log_file = argv[++i];
    } else if (starts_with(arg, "--")) {
      return invalid("unknown option '" + std::string(arg) + "' (see sealfs -h)");
    } else if (arg == "-o") {
      if (i + 1 >= argc) return invalid("-o needs a comma-separated option list");
      option_lists.emplace_back(argv[++i]);
    } else if (starts_with(arg, "-o")) {
      option_lists.emplace_back(arg.substr(2));
    } else {
      // Clusters of single-letter flags: -fd.
      for (char c : arg.substr(1)) {
        switch (c) {
          case 'f': o.foreground = true; break;
          case 'd': o.log_level = "debug"; break;
          case 's': o.single_threaded = true; break;
          case 'h': o.show_help = true; break;
          case 'V': o.show_version = true; break;
          default:
            return invalid(std::string("unknown option '-") + c + "' (see sealfs -h)");
        }
      }
    }
  }
  if (o.show_help || o.show_version) return o;

  static constexpr std::array kLevels = {"trace", "debug", "info", "warn",
                                         "error", "critical", "off"};
  if (std::find(kLevels.begin(), kLevels.end(), std::string_view(o.log_level)) ==
      kLevels.end()) {
    return invalid("--log-level=" + o.log_level +
                   ": expected trace, debug, info, warn, error, critical or off");
  }

  bool own_fsname = false;
  bool own_subtype = false;
  for (const auto& list : option_lists) {
    for (const auto& opt : split_option_list(list)) {
      RETURN_IF_ERROR(apply_option(opt, &o, &own_fsname, &own_subtype));
    }
  }

  if (positional.size() != 2) {
    return invalid(positional.size() < 2 ? "missing TARGET or MOUNTPOINT (see sealfs -h)"
                                         : "too many arguments: '" + positional[2] + "'");
  }
  o.target = positional[0];
  o.mountpoint = positional[1];

  // The kernel checks permissions: the metadata layer does not.
  if (std::find(o.fuse_options.begin(), o.fuse_options.end(), "default_permissions") ==
      o.fuse_options.end()) {
    o.fuse_options.emplace_back("default_permissions");
  }
  if (!own_fsname) {
    // Absolute, so that the mount table names the region whatever the
    // daemon's working directory was (region_owner.h finds a live daemon's
    // mount by it).
    std::error_code ec;
    std::string source = std::filesystem::absolute(o.target, ec).lexically_normal().string();
    o.fuse_options.push_back("fsname=" + escape_option_value(ec ? o.target : source));
  }
  if (!own_subtype) o.fuse_options.emplace_back("subtype=sealfs");
  return o;
}

std::string join_fuse_options(const DaemonOptions& options) {
  std::string out;
  for (const auto& opt : options.fuse_options) {
    if (!out.empty()) out += ',';
    out += opt;
  }
  return out;
}

void print_usage(const char* program) {
  std::printf(
      "usage: %s [options] TARGET MOUNTPOINT\n"
      "\n"
      "Serves the sealfs filesystem on TARGET (a devdax device, a file on a DAX\n"
      "filesystem, or an ordinary file formatted by mkfs.sealfs) at MOUNTPOINT.\n"
      "\n"
      "  -f, --foreground        stay in the foreground\n"
      "  -d, --debug             log at debug level (same as --log-level=debug)\n"
      "  --log-level=LEVEL       trace|debug|info|warn|error|critical|off (default warn)\n"
      "  --log-file=PATH         append the log to PATH as well, and only there once\n"
      "                          detached (default: syslog once detached)\n"
      "  -s                      single-threaded request loop\n"
      "  -o OPT[,OPT...]         mount options (below)\n"
      "  -h, --help              this text\n"
      "  -V, --version           print the version\n"
      "\n"
      "sealfs options:\n"
      "  emulate_pmem            persist with cache flushes on a DRAM-backed file (NOT durable\n"
      "                          on disk-backed files; for benchmarks)\n"
      "  max_threads=N           worker threads of the request loop (default 10)\n"
      "  clone_fd                one /dev/fuse descriptor per worker thread\n"
      "  lease_break_time=SECS   time a direct-mapping holder gets to let go (default 45)\n"
      "  revoke=fence|kill|quarantine  what happens to a holder that does not let go\n"
      "  dax_group=GROUP         members may hold direct mappings (besides root and owner)\n"
      "  strict_write_break      write(2) breaks direct-mapping leases, as the kernel did\n"
      "  background_verify       go live before every inode is read and cross-checked;\n"
      "                          metadata changes wait until a thread has done it\n"
      "  killpriv_v2             ask for FUSE_HANDLE_KILLPRIV_V2 (the default): no\n"
      "                          security.capability lookup before each write\n"
      "  no_killpriv_v2          do not: the kernel clears set-id bits where it can\n"
      "  writeback_cache         the kernel caches write(2) data until writeback or fsync\n"
      "                          (faster small writes; a daemon killed before then loses it)\n"
      "  inode_cache=N           inodes kept in DRAM once the kernel has forgotten them\n"
      "                          (default 65536; 0: all, until the unmount)\n"
      "  entry_timeout=SECS      how long the kernel caches a name (default 86400)\n"
      "  negative_timeout=SECS   how long it caches a name's absence (default 86400)\n"
      "  attr_timeout=SECS       how long it caches attributes (default 86400)\n"
      "  log_file=PATH           as --log-file=PATH, for fstab lines\n"
      "  control_socket=PATH     where the lease control socket is created (default: a\n"
      "                          private directory under $XDG_RUNTIME_DIR or /tmp)\n"
      "\n"
      "FUSE and mount options: ro, rw, allow_other, allow_root, auto_unmount,\n"
      "default_permissions (always on), fsname=, subtype=, max_read=, [no]suid, [no]dev,\n"
      "[no]exec, [no]atime, [no]diratime, [no]relatime, [no]strictatime, sync, async,\n"
      "dirsync, context options. Ignored (fstab bookkeeping): defaults, _netdev, nofail,\n"
      "auto, noauto, user, users, nouser, owner, group, x-*, comment=.\n",
      program);
}

}  // namespace sealfs::fuse
