#include "fuse/daemon.h"

#include <fuse_lowlevel.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "fuse/context.h"
#include "fuse/detach.h"
#include "fuse/direct_io_mmap.h"
#include "fuse/kernel_cache.h"
#include "fuse/log_sink.h"
#include "fuse/operations.h"
#include "fuse/startup_checks.h"
#include "fuse/test_hooks.h"
#include "lease/lease_engine.h"
#include "media/media_fault.h"
#include "media/region_pmem2.h"
#include "meta/filesystem.h"
#include "util/log.h"
#include "util/mountinfo.h"
#include "util/sync_point.h"
#include "wire/wire.h"

namespace sealfs::fuse {
namespace {

// Why a mount was refused, with what to do about it: damage needs fsck, a
// region without a superblock's magic was most likely never formatted.
std::string mount_refusal(const std::string& target, const Status& status) {
  const bool damage = status.code() == Code::kCorruption || status.code() == Code::kBadCrc;
  if (damage && status.message().ends_with("superblock: bad magic")) {
    return "not a sealfs filesystem (bad magic); run mkfs.sealfs to create one";
  }
  std::string text = status.to_string();
  // Neither superblock is usable (a good backup would have been taken):
  // fsck -y cannot help either, it repairs from a valid copy.
  if (damage && status.message().starts_with("superblock")) {
    return text + "; no superblock copy is usable, and fsck.sealfs repairs only from a usable "
                  "one: keep a copy of " + target + " before anything writes to it (docs/fsck.md)";
  }
  if (damage && text.find("fsck.sealfs") == std::string::npos) {
    text += "; run fsck.sealfs -n " + target + " to see the damage, fsck.sealfs -y " + target +
            " to repair it";
  }
  return text;
}

int serve(fuse_session* se, const DaemonOptions& options) {
  if (options.single_threaded) return fuse_session_loop(se);
  fuse_loop_config* config = fuse_loop_cfg_create();
  if (config == nullptr) return -ENOMEM;
  fuse_loop_cfg_set_max_threads(config, options.max_threads);
  fuse_loop_cfg_set_clone_fd(config, options.clone_fd ? 1 : 0);
  int rc = fuse_session_loop_mt(se, config);
  fuse_loop_cfg_destroy(config);
  return rc;
}

// The kernel leaves a FUSE file's atime to the daemon: the mount's choice,
// the last one given winning as in mount(8).
AtimePolicy atime_policy(const DaemonOptions& options) {
  AtimePolicy policy = AtimePolicy::kRelative;
  for (const std::string& o : options.atime_options) {
    if (o == "noatime") {
      policy = AtimePolicy::kNever;
    } else if (o == "strictatime" || o == "norelatime") {
      policy = AtimePolicy::kStrict;
    } else if (o == "relatime" || o == "nostrictatime" ||
               (o == "atime" && policy == AtimePolicy::kNever)) {
      policy = AtimePolicy::kRelative;
    }
  }
  return policy;
}

MountRecord mount_record(const DaemonOptions& options) {
  MountRecord record;
  record.pid = static_cast<uint32_t>(getpid());
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) record.host = host;
  std::error_code ec;
  std::filesystem::path point = std::filesystem::absolute(options.mountpoint, ec);
  record.mount_point = ec ? options.mountpoint : point.lexically_normal().string();
  return record;
}

uint32_t wire_policy_of(RevokePolicy policy) {
  switch (policy) {
    case RevokePolicy::kFence: return wire::kPolicyFence;
    case RevokePolicy::kKill: return wire::kPolicyKill;
    case RevokePolicy::kQuarantine: return wire::kPolicyQuarantine;
  }
  return wire::kPolicyFence;
}

lease::EngineOptions lease_engine_options(const DaemonOptions& options) {
  lease::EngineOptions e;
  e.mountpoint = options.mountpoint;
  e.control_socket = options.control_socket;
  e.break_time_s = options.lease_break_time_s;
  e.revoke_policy = wire_policy_of(options.revoke);
  e.dax_group = options.dax_gid;
  // Asked for, the writeback cache may still be refused by the kernel;
  // then clients are told less than they could be, never more.
  e.write_through = !options.writeback_cache;
  return e;
}

// The mount point as an absolute path: a detached daemon works from "/",
// and libfuse unmounts (at SIGTERM, SIGINT, SIGHUP) by the path it mounted
// with, so a relative one missed the mount and left it dead (ENOTCONN).
std::string absolute_mountpoint(const std::string& given) {
  char* real = realpath(given.c_str(), nullptr);
  if (real == nullptr) return given;  // check_mountpoint says why
  std::string path = real;
  free(real);
  return path;
}

// What is mounted on `path` already, for a failed mount's message ("" if
// nothing): fusermount3 says only "Permission denied" then.
std::string mounted_there(const std::string& path) {
  auto entries = read_mountinfo();
  if (!entries.is_ok()) return "";
  std::string found;
  for (const MountInfoEntry& e : *entries) {
    if (e.mount_point == path) found = e.fstype + " from " + e.source;  // the newest wins
  }
  return found;
}

}  // namespace

int run_daemon(const DaemonOptions& given) {
  DaemonOptions options = given;
  options.mountpoint = absolute_mountpoint(given.mountpoint);
  Detacher detacher(options.foreground);
  auto fail = [&](const std::string& message) {
    std::fprintf(stderr, "sealfs: %s\n", message.c_str());
    error_to_log_file(message);
    detacher.failed(1);
    return 1;
  };
  if (Status st = check_mountpoint(options.mountpoint); !st.is_ok()) return fail(st.message());
  if (Status st = check_control_socket(options); !st.is_ok()) return fail(st.message());
  const auto exposure = warn_if_region_exposed(options);

  // Before the region is mapped: a SIGBUS on the mapping (backing store
  // full, poison) then fails the request that touched it, not the daemon.
  if (!install_media_fault_handler()) {
    log().warn("cannot install the SIGBUS handler ({}): a media error will kill the daemon",
               std::strerror(errno));
  }
  RegionOptions region_options;
  region_options.read_only = options.read_only;
  region_options.emulate_pmem = options.emulate_pmem;
  region_options.warn_if_not_dax = true;
  // One owner per region (media/region_owner.h): `umount; mount` waits for
  // the old daemon instead of failing.
  region_options.claim = tool_claim_request(
      options.read_only ? OwnerRole::kDaemonReadOnly : OwnerRole::kDaemon, "sealfs",
      options.target);
  auto region = RegionPmem2::open(options.target, region_options);
  if (!region.is_ok()) {
    return fail("cannot open " + options.target + ": " + region.status().to_string());
  }

  arm_sync_points_from_env();
  // The gate must exist before the mount; the engine behind it starts once
  // the kernel mount does (its mount id is part of the capability check).
  KernelCacheObserver kernel_cache;
  lease::LeaseEngine leases(lease_engine_options(options));
  MountOptions mount_options;
  mount_options.read_only = options.read_only;
  mount_options.gate = &leases;
  mount_options.gate_every_write = options.strict_write_break;
  mount_options.background_verify = options.background_verify;
  if (options.inode_cache) mount_options.inode_cache = *options.inode_cache;
  mount_options.owner = mount_record(options);
  mount_options.atime = atime_policy(options);
  const RegionPmem2& region_ref = **region;
  FsckLikeStats stats;
  auto mounted = Filesystem::mount(std::move(region).value(), mount_options, &stats);
  if (!mounted.is_ok()) {
    return fail("cannot mount " + options.target + ": " +
                mount_refusal(options.target, mounted.status()));
  }
  std::unique_ptr<Filesystem> fs = std::move(mounted).value();
  if (stats.transactions_replayed > 0 || stats.orphans_freed > 0) {
    log().info("{}: recovered: {} transactions replayed, {} orphans freed{}", options.target,
               stats.transactions_replayed, stats.orphans_freed,
               stats.torn_tail ? ", torn journal tail ignored" : "");
  }

  DaemonContext ctx;
  ctx.fs = fs.get();
  ctx.options = &options;
  ctx.entry_timeout_s = options.entry_timeout_s;
  ctx.negative_timeout_s = options.negative_timeout_s;
  ctx.attr_timeout_s = options.attr_timeout_s;
  ctx.leases = &leases;
  ctx.before_unmount = [&leases] { leases.stop(); };

  std::string fuse_option_list = join_fuse_options(options);
  if (fs->read_only() && !options.read_only) {
    // The filesystem chose read-only (unknown ro_compat features, a
    // read-only region): the kernel's mount says so too, in /proc/mounts,
    // and refuses writes before they reach the daemon.
    fuse_option_list += fuse_option_list.empty() ? "ro" : ",ro";
    log().warn("{}: mounted read-only", options.target);
  }
  std::vector<const char*> argv = {"sealfs", "-o", fuse_option_list.c_str()};
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
  const fuse_lowlevel_ops& ops = operations();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), &ctx);
  if (se == nullptr) {
    Status st = ctx.unmount_once();
    (void)st;
    return fail("cannot start a FUSE session with options '" + fuse_option_list + "'");
  }
  ctx.session = se;
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    Status st = ctx.unmount_once();
    (void)st;
    return fail("cannot install signal handlers");
  }
  if (fuse_session_mount(se, options.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    Status st = ctx.unmount_once();
    (void)st;
    const std::string there = mounted_there(options.mountpoint);
    if (!there.empty()) {
      return fail("cannot mount on " + options.mountpoint + ": it is a mount point already (" +
                  there + "); unmount that first, or choose another directory");
    }
    return fail("cannot mount on " + options.mountpoint);
  }
  // Lets files that had a lease be mmapped (direct_io_mmap.h).
  if (Status st = request_direct_io_mmap(se, options.killpriv_v2); !st.is_ok()) {
    log().warn("{}", st.to_string());
  }
  SEALFS_SYNC_POINT("daemon.mounted.before_leases");  // no lock held
  kernel_cache.set_session(se);
  if (Status st = leases.start(*fs, region_ref, &kernel_cache); !st.is_ok()) {
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    Status unmounted = ctx.unmount_once();
    // The kernel mount was removed (umount right after the mount showed)
    // before there was anything to serve: an ordinary, clean end.
    if (st.code() == Code::kNotFound && unmounted.is_ok()) {
      log().info("{} was unmounted before it was served", options.mountpoint);
      return 0;
    }
    return fail("cannot start the lease engine: " + st.to_string());
  }
  log().info("{} mounted on {}; direct mappings: control socket {}, revoke={}", options.target,
             options.mountpoint, leases.control_socket(), revoke_policy_name(options.revoke));
  if (!options.foreground) {
    detacher.succeeded();
    log_after_detach(options);
    // Said on stderr already (and in the log file, if any); now in syslog too.
    if (exposure && options.log_file.empty()) log().warn("{}", *exposure);
  }

  int rc = serve(se, options);
  if (rc < 0) log().error("request loop failed: {}", std::strerror(-rc));
  // The kernel mount is gone: tell a waiting successor that what is left is
  // our own unmount, which it should wait for rather than refuse.
  if (RegionClaim* claim = region_ref.claim(); claim != nullptr) {
    if (Status st = claim->change_role(OwnerRole::kDaemonClosing); !st.is_ok()) {
      log().warn("{}: {}", options.target, st.to_string());
    }
  }
  SEALFS_SYNC_POINT("daemon.unmount.closing");  // no lock held

  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  // Before the session goes: the engine's observer notifies through it.
  // (When INIT happened the destroy callback would stop it too.)
  leases.stop();
  fuse_session_destroy(se);  // runs the destroy callback if init happened
  Status st = ctx.unmount_once();
  // Everything durable is written (or, after an error, deliberately not).
  // The DRAM structures die with the process: tearing them down one by one
  // took seconds with a few hundred thousand cached inodes, and a successor
  // waits for this process to exit (region_owner.h).
  static Filesystem* const abandoned_at_exit = fs.release();
  (void)abandoned_at_exit;
  if (!st.is_ok()) {
    log().error("unmount of {}: {}", options.target, st.to_string());
    return 1;
  }
  // Nothing writes the region any more: a successor may have it now, even
  // if this process's exit then waits for a close of a client's descriptor
  // that it cannot interrupt (a FUSE file whose server never answers).
  if (RegionClaim* claim = region_ref.claim(); claim != nullptr) claim->release();
  log().info("{} unmounted cleanly", options.target);
  return rc < 0 ? 1 : 0;
}

}  // namespace sealfs::fuse
