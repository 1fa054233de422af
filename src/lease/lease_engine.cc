#include "lease/lease_engine.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <set>
#include <vector>

#include "lease/lease_server.h"
#include "lease/meta_layout_source.h"
#include "lease/restored_holders.h"
#include "lease/socket_path.h"
#include "media/region_pmem2.h"
#include "sealfs/sealfs.h"
#include "util/log.h"
#include "util/mountinfo.h"
#include "util/proc_file.h"

namespace sealfs::lease {
namespace {

uint32_t region_flags_of(RegionKind kind) {
  switch (kind) {
    case RegionKind::kDevDax: return wire::kRegionDevdax;
    case RegionKind::kFsDax: return wire::kRegionFsdax;
    case RegionKind::kFile: return 0;
  }
  return 0;
}

// A private directory for the socket: $XDG_RUNTIME_DIR when it is ours,
// /tmp otherwise. World-searchable so that trusted users other than the
// daemon's can reach the socket; trust is decided per peer.
Result<std::string> make_socket_dir() {
  std::string base = "/tmp";
  if (const char* xdg = getenv("XDG_RUNTIME_DIR"); xdg != nullptr && xdg[0] == '/') {
    struct stat st;
    if (stat(xdg, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid()) base = xdg;
  }
  // Daemons killed before they could remove theirs leave one behind each.
  remove_dead_socket_dirs(base);
  std::string templ = base + "/sealfs.XXXXXX";
  std::vector<char> path(templ.begin(), templ.end());
  path.push_back('\0');
  if (mkdtemp(path.data()) == nullptr) return Status::from_errno(errno, "mkdtemp " + templ);
  if (chmod(path.data(), 0755) != 0) {
    int err = errno;
    rmdir(path.data());
    return Status::from_errno(err, "chmod " + std::string(path.data()));
  }
  return std::string(path.data());
}

EngineOptions with_canonical_mountpoint(EngineOptions options) {
  char real[PATH_MAX];
  if (realpath(options.mountpoint.c_str(), real) != nullptr) options.mountpoint = real;
  return options;
}

}  // namespace

// MetaLayoutSource, plus what the engine adds at a grant: the writeback
// rule, the record of leased inodes (before the lease exists) and the
// observer's attribute notice.
//
// The observer is never asked to invalidate pages: the kernel runs that
// under the writing thread, which then waits for every page lock of the
// inode, and a page is locked for as long as a READ of it waits for this
// daemon. A daemon killed or exiting then never answers, the invalidating
// thread never leaves the kernel, it keeps /dev/fuse open, so the
// connection is never aborted and everything on the mount hangs (found by
// the lease stress test). Every open of a regular file already drops its
// cached pages. Attributes are another matter: ALLOCATE and RELOCATE
// change st_blocks, EXTEND the size.
class LeaseEngine::Source final : public LayoutSource {
 public:
  Source(LeaseEngine& owner, LayoutSource& inner) : owner_(owner), inner_(inner) {}

  std::unique_ptr<Lock> lock_layout(uint64_t ino) override { return inner_.lock_layout(ino); }
  Result<LayoutAnswer> layout_for_lease(const Lock& held, uint64_t ino, uint64_t offset,
                                        uint64_t length, uint32_t flags) override {
    // With a writeback cache the kernel may hold written data the region
    // does not have yet (and a size the daemon has not seen): the client
    // writes the file's pages back first (docs/daemon.md "Caching and
    // coherence"). It cannot be done from here: the writeback needs the
    // daemon's request threads and the layout lock this grant holds.
    if (unflushed(flags)) return flush_first();
    auto answer = inner_.layout_for_lease(held, ino, offset, length, flags);
    if (answer.is_ok() && answer->refusal == wire::Refusal::kNone) {
      owner_.note_leased(ino, (flags & wire::kMapExclusive) != 0);
    }
    // Allocation and relocation commit as they go, before the answer is
    // decided: a refused or failed request may have changed the block
    // count as well.
    if ((flags & (wire::kMapAllocate | wire::kMapRelocate)) != 0) owner_.attributes_changed(ino);
    return answer;
  }
  Result<LayoutAnswer> extend_for_lease(const Lock& held, uint64_t ino, uint64_t offset,
                                        uint64_t old_length, uint64_t new_length,
                                        uint32_t flags) override {
    if (unflushed(flags)) return flush_first();
    auto answer = inner_.extend_for_lease(held, ino, offset, old_length, new_length, flags);
    // The size and the block count may have changed even when refused.
    owner_.attributes_changed(ino);
    return answer;
  }
  void undo_extend(const Lock& held, uint64_t ino, uint64_t old_size) override {
    inner_.undo_extend(held, ino, old_size);
    owner_.attributes_changed(ino);
  }
  void direct_stores_possible(uint64_t ino) override {
    inner_.direct_stores_possible(ino);
    owner_.attributes_changed(ino);  // the kernel would show the old times for a day
  }
  RegionInfo region() const override { return inner_.region(); }
  Result<FileInspection> inspect_file(uint64_t ino) override { return inner_.inspect_file(ino); }
  Result<wire::SuperRecord> inspect_super() override { return inner_.inspect_super(); }
  Result<SpaceInspection> inspect_space() override { return inner_.inspect_space(); }

 private:
  bool unflushed(uint32_t flags) const {
    return owner_.require_flushed_maps_.load() && (flags & wire::kMapFlushed) == 0;
  }
  static LayoutAnswer flush_first() {
    LayoutAnswer refusal;
    refusal.refusal = wire::Refusal::kFlushFirst;
    return refusal;
  }

  LeaseEngine& owner_;
  LayoutSource& inner_;
};

LeaseEngine::LeaseEngine(EngineOptions options)
    : options_(with_canonical_mountpoint(std::move(options))) {}

LeaseEngine::~LeaseEngine() { stop(); }

std::shared_ptr<LeaseServer> LeaseEngine::current_server() const {
  MutexLock lock(server_mu_);
  return server_;
}

bool LeaseEngine::sealed(Ino ino) {
  auto server = current_server();
  return server != nullptr && server->core().sealed(ino);
}

void LeaseEngine::free_deferred(Ino ino) {
  Filesystem* fs = fs_;
  may_change_layout(ino, SEALFS_BREAK_UNLINK, [fs, ino](Status s) {
    // On error (unmount) the inode stays an orphan: freed at the next mount.
    if (s.is_ok() && fs != nullptr) fs->retry_free(ino);
  });
}

Status LeaseEngine::start(Filesystem& fs, const RegionPmem2& region, LeaseObserver* observer) {
  if (running() || fs_ != nullptr) return Status(Code::kBusy, "lease engine already started");
  fs_ = &fs;
  observer_ = observer;
  restored_ = std::make_unique<RestoredHolderWatch>(fs, fs.restored_holders());
  // On a read-only mount the engine still serves read-only mappings: a
  // PROT_WRITE request needs an O_RDWR descriptor, which the kernel refuses.

  // Our mount is the newest fuse mount on that point (read here rather than
  // by fstat of the mount point, which would send a request to ourselves
  // before the loop runs).
  ASSIGN_OR_RETURN(std::vector<MountInfoEntry> mounts, read_mountinfo());
  std::optional<MountInfoEntry> ours;
  for (MountInfoEntry& m : mounts) {
    if (m.mount_point == options_.mountpoint && m.fstype.rfind("fuse", 0) == 0) ours = m;
  }
  if (!ours) return Status(Code::kNotFound, "no fuse mount on " + options_.mountpoint);

  if (options_.control_socket.empty()) {
    ASSIGN_OR_RETURN(socket_dir_, make_socket_dir());
    socket_path_ = socket_dir_ + "/control";
  } else {
    socket_path_ = options_.control_socket;
  }

  const uint32_t flags =
      region_flags_of(region.kind()) | (options_.write_through ? wire::kMountWriteThrough : 0u);
  meta_source_ = std::make_unique<MetaLayoutSource>(fs, region.fd(), flags);
  source_ = std::make_unique<Source>(*this, *meta_source_);
  sink_ = std::make_unique<MetaQuarantineSink>(fs);

  ServerOptions server_options;
  server_options.socket_path = socket_path_;
  server_options.mnt_id = ours->mount_id;
  // Bind mounts of this filesystem in our namespace are the same files.
  const uint32_t major = ours->major, minor = ours->minor;
  server_options.also_accept = [major, minor](uint64_t mnt_id) {
    auto now = read_mountinfo();
    if (!now.is_ok()) return false;  // cannot tell: not accepted
    for (const MountInfoEntry& m : *now) {
      if (m.mount_id == mnt_id) return m.major == major && m.minor == minor;
    }
    return false;
  };
  server_options.daemon_uid = geteuid();
  server_options.dax_group = options_.dax_group;
  server_options.lease.break_time_ns = uint64_t{options_.break_time_s} * 1'000'000'000ull;
  server_options.lease.max_break_time_ns =
      std::max<uint64_t>(server_options.lease.max_break_time_ns, server_options.lease.break_time_ns);
  server_options.lease.policy = options_.revoke_policy;
  auto server = LeaseServer::start(std::move(server_options), *source_, sink_.get());
  if (!server.is_ok()) {
    socket_path_.clear();
    return server.status().with_context("lease engine");
  }
  {
    MutexLock lock(server_mu_);
    server_ = std::move(server).value();
  }
  // A media error makes the mount read-only, and the holders of writable
  // mappings must then stop storing behind it: they are broken and fall
  // back to the mount, which refuses the changes. (A fault before this
  // point found no lease to break.)
  // The server, not the engine: a faulting thread that copied the observer
  // just before stop() removed it may call it after the engine is gone.
  region_ = &region;
  std::weak_ptr<LeaseServer> weak_server = current_server();
  region.on_first_fault([weak_server] {
    if (std::shared_ptr<LeaseServer> s = weak_server.lock()) s->break_writable_leases(SEALFS_BREAK_OTHER);
  });
  log().info("lease engine: control socket {}, break time {} s", socket_path_,
             options_.break_time_s);
  return Status::ok();
}

bool LeaseEngine::running() const { return current_server() != nullptr; }

void LeaseEngine::stop() {
  if (region_ != nullptr) {
    region_->on_first_fault({});
    region_ = nullptr;
  }
  if (std::shared_ptr<LeaseServer> server = current_server(); server != nullptr) {
    break_for_unmount(*server);
    // No message is handled from here on; then no breaker waits any more;
    // then every lease still out becomes quarantine (persistent pins of
    // live holders are what the next mount rebuilds it from).
    server->stop_thread();
    server->core().shutdown();
    server->core().revoke_all();
    {
      MutexLock lock(server_mu_);
      server_.reset();
    }
    // Closes the connections (each library fences its mappings) unless a
    // gate question still holds the server; then its thread does, and
    // there is nothing left to fence against: every lease was revoked.
    server.reset();
  }
  restored_.reset();
  if (!socket_dir_.empty()) {
    rmdir(socket_dir_.c_str());
    socket_dir_.clear();
  }
}

void LeaseEngine::break_for_unmount(LeaseServer& server) {
  std::set<uint64_t> inos;
  for (const LeaseInfo& l : server.core().leases()) {
    if (l.state == LeaseState::kActive || l.state == LeaseState::kBreaking) inos.insert(l.ino);
  }
  if (inos.empty()) return;
  struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    size_t left = 0;
  };
  auto pending = std::make_shared<Pending>();
  pending->left = inos.size();
  for (uint64_t ino : inos) {
    server.may_change_layout(ino, 0, UINT64_MAX, SEALFS_BREAK_UNMOUNT, [pending](Status) {
      std::lock_guard lock(pending->mu);
      --pending->left;
      pending->cv.notify_all();
    });
  }
  // Cooperative holders let go at once and keep nothing quarantined; an
  // unmount does not wait a whole break time for the others. When the break
  // time is short enough the engine revokes them itself within the wait
  // (fence: the acknowledged fence counts as a release), hence the margin.
  const auto wait = std::chrono::seconds(std::min<uint32_t>(options_.break_time_s, 5)) +
                    std::chrono::milliseconds(500);
  std::unique_lock lock(pending->mu);
  if (!pending->cv.wait_for(lock, wait, [&] { return pending->left == 0; })) {
    log().warn("unmount: {} leased file(s) not released in time; revoking", pending->left);
  }
}

void LeaseEngine::may_change_layout(Ino ino, uint32_t reason, Continuation then) {
  auto server = current_server();
  if (server == nullptr) return then(Status(Code::kIoError, "lease engine not running"));
  server->may_change_layout(ino, 0, UINT64_MAX, reason, std::move(then));
}

uint64_t LeaseEngine::file_opened(Ino ino, uint32_t tid) {
  auto server = current_server();
  if (server == nullptr) return 0;
  return server->core().file_opened(ino, Opener{tid, boot_ticks_now()});
}

void LeaseEngine::file_closed(Ino ino, uint64_t handle) {
  if (handle == 0) return;
  auto server = current_server();
  if (server != nullptr) server->core().file_closed(ino, handle);
}

bool LeaseEngine::open_blocked(Ino ino, uint32_t tid) {
  auto server = current_server();
  return server != nullptr && server->core().open_blocked(ino, Opener{tid, boot_ticks_now()});
}

void LeaseEngine::may_open(Ino ino, uint32_t tid, Continuation then) {
  auto server = current_server();
  if (server == nullptr) return then(Status(Code::kIoError, "lease engine not running"));
  server->core().may_open(ino, Opener{tid, boot_ticks_now()}, std::move(then));
}

void LeaseEngine::file_synced(Ino ino) {
  auto server = current_server();
  if (server != nullptr && source_ != nullptr && server->core().writable_lease_held(ino)) {
    source_->direct_stores_possible(ino);
  }
}

bool LeaseEngine::had_shared_lease(Ino ino) const {
  MutexLock lock(leased_mu_);
  return shared_leased_.count(ino) != 0;
}

void LeaseEngine::note_leased(Ino ino, bool exclusive) {
  if (exclusive) return;
  MutexLock lock(leased_mu_);
  shared_leased_.insert(ino);
}

void LeaseEngine::attributes_changed(Ino ino) {
  if (observer_ != nullptr) observer_->attributes_changed(ino);
}

}  // namespace sealfs::lease
