// The C API: map/unmap, layout leases, registrations, break delivery.
#include <errno.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "client/client_internal.h"
#include "client/write_tracking.h"
#include "wire/fdinfo.h"
#include "util/sync_point.h"

using namespace sealfs::client;
namespace wire = sealfs::wire;

namespace {

constexpr uint64_t kHugePage = 2ull << 20;

int control_path(int fd, std::string* out) {
  char buf[4096];
  ssize_t n = fgetxattr(fd, "user.sealfs.control", buf, sizeof(buf) - 1);
  if (n > 0) {
    out->assign(buf, static_cast<size_t>(n));
    while (!out->empty() && out->back() == '\0') out->pop_back();
    return 0;
  }
  int err = n < 0 ? errno : ENODATA;
  if (err == EBADF) return fail(EBADF, "bad file descriptor");
  if (const char* env = getenv("SEALFS_CONTROL_SOCKET"); env != nullptr && *env != '\0') {
    *out = env;
    return 0;
  }
  return fail(EOPNOTSUPP, "not a sealfs file: no user.sealfs.control xattr (" +
                              std::string(strerror(err)) + ") and SEALFS_CONTROL_SOCKET unset");
}

// The mount a descriptor is on (statx, else /proc/self/fdinfo): no request
// to the daemon (a getxattr is a FUSE round trip, the largest part of a map).
std::optional<uint64_t> mount_id_of(int fd) {
  wire::FdInfoFields f;
  if (!wire::identify_fd(fd, &f) || !f.has_mnt_id) return std::nullopt;
  return f.mnt_id;
}

// Control socket paths by mount id, so the xattr is read once per mount.
std::mutex g_paths_mu;
std::unordered_map<uint64_t, std::string> g_paths;

bool cached_control_path(uint64_t mount, std::string* path) {
  std::lock_guard lock(g_paths_mu);
  auto it = g_paths.find(mount);
  if (it == g_paths.end()) return false;
  *path = it->second;
  return true;
}
void remember_control_path(uint64_t mount, const std::string& path) {
  std::lock_guard lock(g_paths_mu);
  g_paths[mount] = path;
}
void forget_control_path(uint64_t mount) {
  std::lock_guard lock(g_paths_mu);
  g_paths.erase(mount);
}

// One MAP request on a connection.
int request_once(const std::shared_ptr<Connection>& conn, int fd, off_t offset, size_t length,
                 int prot, unsigned flags, uint64_t break_time_ns, uint32_t wire_flags,
                 Answer* answer, wire::MapReply* reply, std::vector<wire::WireExtent>* extents) {
  wire::MapRequest req{};
  req.offset = static_cast<uint64_t>(offset);
  req.length = length;
  req.prot = (prot & PROT_WRITE) ? (wire::kProtRead | wire::kProtWrite) : wire::kProtRead;
  req.flags = wire_flags;
  if (flags & SEALFS_MAP_ALLOCATE) req.flags |= wire::kMapAllocate;
  if (flags & SEALFS_MAP_RELOCATE) req.flags |= wire::kMapRelocate;
  if (flags & SEALFS_MAP_WAIT_BREAK) req.flags |= wire::kMapWaitBreak;
  if (flags & SEALFS_MAP_EXCLUSIVE) req.flags |= wire::kMapExclusive;
  req.policy = (flags & SEALFS_MAP_POLICY_MASK) >> 8;
  req.break_time_ns = break_time_ns;
  return ask_for_extents(conn, fd, wire::Type::kMap, &req, sizeof(req), &req.flags, nullptr,
                         answer, reply, extents);
}

// Asks for a lease; on success *reply and *extents are filled and the
// answer's map/layout object is registered with the connection.
int request_lease(int fd, off_t offset, size_t length, int prot, unsigned flags,
                  uint64_t break_time_ns, uint32_t wire_flags, Answer* answer,
                  wire::MapReply* reply, std::vector<wire::WireExtent>* extents) {
  const long page = sysconf(_SC_PAGESIZE);
  if (fd < 0) return fail(EBADF, "bad file descriptor");
  if (offset < 0 || offset % page != 0) return fail(EINVAL, "offset must be a multiple of the page size");
  if (length == 0) return fail(EINVAL, "length must not be zero");
  const unsigned known = SEALFS_MAP_ALLOCATE | SEALFS_MAP_RELOCATE | SEALFS_MAP_WAIT_BREAK |
                         SEALFS_MAP_EXCLUSIVE | SEALFS_MAP_POLICY_MASK;
  if (flags & ~known) return fail(EINVAL, "unknown flags");
  // A cached socket path may be stale (the mount id was reused by a later
  // mount): connecting fails, or that daemon says the descriptor is not on
  // its mount. Then the path is looked up again, once.
  for (int attempt = 0;; ++attempt) {
    bool cached = false;
    std::string path;
    const std::optional<uint64_t> mount = mount_id_of(fd);
    if (mount && attempt == 0) cached = cached_control_path(*mount, &path);
    if (!cached) {
      if (int r = control_path(fd, &path); r != 0) return r;
      if (mount) remember_control_path(*mount, path);
    }
    *reply = wire::MapReply{};
    extents->clear();
    std::shared_ptr<Connection> conn;
    int r = connection_for(path, &conn);
    if (r == 0) {
      r = request_once(conn, fd, offset, length, prot, flags, break_time_ns, wire_flags, answer,
                       reply, extents);
    }
    if (r == 0 || !cached) return r;
    const bool stale =
        conn == nullptr ||
        (reply->error != 0 && reply->detail == static_cast<uint32_t>(wire::Refusal::kWrongMount));
    if (!stale) return r;
    forget_control_path(*mount);
  }
}

void release_lease(const std::shared_ptr<Connection>& conn, uint64_t lease_id) {
  wire::LeaseRef ref{lease_id};
  Answer ignored = call(conn, wire::Type::kRelease, &ref, sizeof(ref));
  (void)ignored;
}

void* reserve(size_t length, uint64_t alignment) {
  const uint64_t align = alignment >= kHugePage ? std::min<uint64_t>(alignment, 1ull << 30) : 0;
  const size_t total = length + align;
  void* p = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  if (align == 0) return p;
  auto base = reinterpret_cast<uintptr_t>(p);
  uintptr_t aligned = (base + align - 1) & ~(align - 1);
  if (aligned > base) munmap(p, aligned - base);
  const uintptr_t end = base + total, want_end = aligned + length;
  if (end > want_end) munmap(reinterpret_cast<void*>(want_end), end - want_end);
  return reinterpret_cast<void*>(aligned);
}

void forget_map_locked(struct sealfs_map* m) {
  if (m->conn) {
    auto it = m->conn->maps.find(m->lease_id);
    if (it != m->conn->maps.end() && it->second == m) m->conn->maps.erase(it);
  }
}

// sealfs_map_ex, sealfs_map_reserve and sealfs_map_at: `fixed` is the
// caller's address, or nullptr for a range the library reserves itself
// (`reserve_bytes` of it at least).
int map_impl(void* fixed, int fd, off_t offset, size_t length, int prot, unsigned flags,
             uint64_t break_time_ns, size_t reserve_bytes, struct sealfs_map** out) {
  if (out == nullptr) return fail(EINVAL, "out is NULL");
  *out = nullptr;
  if ((prot & ~(PROT_READ | PROT_WRITE)) != 0 || (prot & PROT_READ) == 0) {
    return fail(EINVAL, "prot must be PROT_READ or PROT_READ|PROT_WRITE");
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (fixed != nullptr && reinterpret_cast<uintptr_t>(fixed) % page != 0) {
    return fail(EINVAL, "addr must be a multiple of the page size");
  }
  Answer answer;
  wire::MapReply reply{};
  std::vector<wire::WireExtent> extents;
  if (int r = request_lease(fd, offset, length, prot, flags, break_time_ns, 0, &answer, &reply, &extents); r != 0) {
    return r;
  }
  struct sealfs_map* m = answer.map;
  State& s = state();
  auto give_up = [&](int err, const std::string& why) {
    if (answer.fd >= 0) close(answer.fd);
    if (m != nullptr) {
      if (m->addr) munmap(m->addr, std::max(m->length, m->reserved));
      std::shared_ptr<Connection> conn = m->conn;
      {
        std::lock_guard lock(s.mu);
        forget_map_locked(m);
      }
      release_lease(conn, m->lease_id);
      delete m;
    }
    return fail(err, why);
  };
  if (m == nullptr || answer.fd < 0) return give_up(EPROTO, "the daemon granted a mapping without a region");
  if (!extents_tile(reply, extents)) return give_up(EPROTO, "the daemon's extents do not tile the range");
  const uint64_t want = (length + page - 1) / page * page;
  if (fixed != nullptr && (reply.offset != uint64_t(offset) || reply.length != want)) {
    return give_up(EINVAL, "the daemon granted another range than the one asked at a fixed address");
  }
  const size_t reserved =
      fixed != nullptr ? reply.length
                       : std::max<size_t>(reply.length, (reserve_bytes + page - 1) / page * page);
  void* base = fixed != nullptr ? fixed : reserve(reserved, reply.alignment);
  if (base == nullptr) return give_up(ENOMEM, "cannot reserve address space");
  // At a fixed address the caller's pages are replaced only once every
  // extent is in place; a failure halfway puts an ordinary mapping of the
  // file back, so the range stays usable.
  if (fixed == nullptr) m->addr = base;
  m->length = reply.length;
  m->reserved = reserved;
  if (int err = map_extents(base, reply.offset, extents, reply, answer.fd, prot); err != 0) {
    if (fixed != nullptr) mmap(fixed, reply.length, prot, MAP_SHARED | MAP_FIXED, fd, offset);
    return give_up(err, map_error_text(err, reply));
  }
  m->addr = base;
  // A child must not inherit the blocks: the daemon could not know it can
  // still reach them after this process releases the lease.
  madvise(base, reply.length, MADV_DONTFORK);
  if (reply.length >= kHugePage) madvise(base, reply.length, MADV_HUGEPAGE);
  // Flushed line by line at a persist: worth knowing which pages were
  // written (client/write_tracking.h). Nothing was stored through them yet.
  if ((prot & PROT_WRITE) && reply.granularity == wire::kGranularityCacheLine) {
    m->tracks_writes = track_writes(base, reply.length, reply.length);
  }
  close(answer.fd);
  std::unique_lock lock(s.mu);
  m->generation = reply.generation;
  m->offset = off_t(reply.offset);
  m->prot = prot;
  m->granularity = reply.granularity;
  m->mount_flags = (reply.region_flags & wire::kMountWriteThrough) ? SEALFS_MOUNT_WRITE_THROUGH : 0u;
  m->mapped = true;
  if (m->fence_pending) {
    fence_locked(m);
    m->released = true;
    wire::LeaseRef ref{m->lease_id};
    std::shared_ptr<Connection> conn = m->conn;
    lock.unlock();
    send_only(*conn, wire::Type::kRevokeAck, &ref, sizeof(ref));
  }
  *out = m;
  return 0;
}

// sealfs_unmap and sealfs_unmap_to_file: replace_fd >= 0 puts an ordinary
// mapping of that file in place of the pages instead of unmapping them.
int unmap_impl(struct sealfs_map* m, int replace_fd) {
  if (m == nullptr) return fail(EINVAL, "map is NULL");
  State& s = state();
  std::unique_lock lock(s.mu);
  check_fork_locked();
  if (m->pid != getpid()) {  // inherited across fork: nothing mapped here
    delete m;
    return 0;
  }
  // A sealfs_extend of m (another thread's; a break callback's unmap while
  // the program grows the mapping) ends first: it uses m and maps into its
  // addresses. It waits for nothing this thread could hold back: its answer
  // is read by itself or the reader thread, never the callback thread.
  if (m->extending) SEALFS_SYNC_POINT("client.unmap.waits_for_extend");  // mu held
  s.cv.wait(lock, [&] { return !m->extending; });
  // Forgotten first: a REVOKE or a lost connection no longer fences these
  // addresses, which the caller may reuse as soon as we return.
  forget_map_locked(m);
  for (sealfs_reg* reg : m->regs) reg->dead = true;
  const bool on_callback_thread = std::this_thread::get_id() == s.callback_thread_id;
  s.cv.wait(lock, [&] {
    for (sealfs_reg* reg : m->regs) {
      if (reg->running > 0 && !on_callback_thread) return false;
    }
    return true;
  });
  for (sealfs_reg* reg : m->regs) reg->map = nullptr;
  const bool release = !m->released && m->conn && m->conn->alive;
  std::shared_ptr<Connection> conn = m->conn;
  lock.unlock();
  // The pages go before the lease: once the daemon hears RELEASE the
  // blocks may belong to someone else.
  int result = 0;
  if (m->addr && replace_fd >= 0) {
    // Stores made through the direct pages are made durable before those
    // pages leave: nothing flushes them once the addresses show the file.
    if (m->prot & PROT_WRITE) (void)sealfs_persist(m, m->addr, m->length);
    void* p = mmap(m->addr, m->length, m->prot, MAP_SHARED | MAP_FIXED, replace_fd, m->offset);
    if (p == MAP_FAILED) {
      result = fail(errno, "mmap of the file in place of the mapping: " + std::string(strerror(errno)));
      munmap(m->addr, m->length);
    }
    if (m->reserved > m->length) munmap(static_cast<uint8_t*>(m->addr) + m->length, m->reserved - m->length);
  } else if (m->addr) {
    munmap(m->addr, std::max(m->length, m->reserved));
  }
  if (release) release_lease(conn, m->lease_id);
  delete m;
  return result;
}

}  // namespace

extern "C" {

int sealfs_map_ex(int fd, off_t offset, size_t length, int prot, unsigned flags,
                  uint64_t break_time_ns, struct sealfs_map** out) {
  return map_impl(nullptr, fd, offset, length, prot, flags, break_time_ns, 0, out);
}

int sealfs_map_reserve(int fd, off_t offset, size_t length, size_t reserve, int prot,
                       unsigned flags, struct sealfs_map** out) {
  return map_impl(nullptr, fd, offset, length, prot, flags, 0, reserve, out);
}

int sealfs_map_at(void* addr, int fd, off_t offset, size_t length, int prot, unsigned flags,
                  struct sealfs_map** out) {
  if (addr == nullptr) {
    if (out != nullptr) *out = nullptr;
    return fail(EINVAL, "addr is NULL");
  }
  return map_impl(addr, fd, offset, length, prot, flags, 0, 0, out);
}

int sealfs_map(int fd, off_t offset, size_t length, int prot, unsigned flags, struct sealfs_map** out) {
  return sealfs_map_ex(fd, offset, length, prot, flags, 0, out);
}

void* sealfs_map_addr(const struct sealfs_map* m) { return m ? m->addr : nullptr; }
size_t sealfs_map_length(const struct sealfs_map* m) { return m ? m->length : 0; }
off_t sealfs_map_offset(const struct sealfs_map* m) { return m ? m->offset : 0; }
uint64_t sealfs_map_generation(const struct sealfs_map* m) { return m ? m->generation : 0; }
uint64_t sealfs_map_lease_id(const struct sealfs_map* m) { return m ? m->lease_id : 0; }
unsigned sealfs_map_mount_flags(const struct sealfs_map* m) { return m ? m->mount_flags : 0u; }

int sealfs_note_stores(const struct sealfs_map* m) {
  if (m == nullptr || (m->prot & PROT_WRITE) == 0 || m->pid != getpid()) return -EINVAL;
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(state().mu);
    if (!m->mapped || m->released || m->state == 2) return -EINVAL;
    conn = m->conn;
  }
  wire::LeaseRef ref{m->lease_id};
  send_only(*conn, wire::Type::kStores, &ref, sizeof(ref));
  return 0;
}
int sealfs_map_state(const struct sealfs_map* m) {
  if (m == nullptr) return -EINVAL;
  std::lock_guard lock(state().mu);
  return m->state;
}

int sealfs_unmap(struct sealfs_map* m) { return unmap_impl(m, -1); }

int sealfs_unmap_to_file(struct sealfs_map* m, int fd) {
  if (fd < 0) {
    if (m != nullptr) unmap_impl(m, -1);
    return fail(EBADF, "bad file descriptor");
  }
  return unmap_impl(m, fd);
}

int sealfs_break_fd(void) {
  State& s = state();
  std::lock_guard lock(s.mu);
  check_fork_locked();
  if (s.break_fd < 0) {
    s.break_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s.break_fd < 0) return fail(errno, "eventfd");
    if (!s.events.empty()) {
      uint64_t one = 1;
      ssize_t ignored = write(s.break_fd, &one, sizeof(one));
      (void)ignored;
    }
  }
  return s.break_fd;
}

int sealfs_next_break(struct sealfs_break_event* ev) {
  if (ev == nullptr) return fail(EINVAL, "ev is NULL");
  State& s = state();
  std::lock_guard lock(s.mu);
  check_fork_locked();
  if (s.events.empty()) return -EAGAIN;
  *ev = s.events.front();
  s.events.pop_front();
  if (s.events.empty() && s.break_fd >= 0) {
    uint64_t count;
    ssize_t ignored = read(s.break_fd, &count, sizeof(count));
    (void)ignored;
  }
  return 0;
}

int sealfs_set_break_handler(void (*cb)(struct sealfs_map*, const struct sealfs_break_event*, void*),
                             void* arg) {
  State& s = state();
  std::lock_guard lock(s.mu);
  check_fork_locked();
  s.handler = cb;
  s.handler_arg = arg;
  return 0;
}

int sealfs_set_break_signal(int signo) {
  if (signo < 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP) {
    return fail(EINVAL, "invalid signal");
  }
  State& s = state();
  std::lock_guard lock(s.mu);
  s.signo = signo;
  return 0;
}

int sealfs_register(struct sealfs_map* m,
                    void (*cb)(struct sealfs_map*, const struct sealfs_break_event*, void*), void* arg,
                    struct sealfs_reg** out) {
  if (m == nullptr || cb == nullptr || out == nullptr) return fail(EINVAL, "NULL argument");
  State& s = state();
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(s.mu);
    check_fork_locked();
    if (m->pid != getpid() || !m->mapped || m->released) return fail(EINVAL, "not a live mapping");
    if (m->state != 0) return fail(ENXIO, "the mapping's lease is breaking");
    conn = m->conn;
  }
  wire::LeaseRef ref{m->lease_id};
  Answer answer = call(conn, wire::Type::kRegister, &ref, sizeof(ref));
  if (answer.error != 0) return fail(answer.error, "lost the sealfs daemon");
  const auto reply = wire::load<wire::Reply>(answer.message.data() + sizeof(wire::Header));
  std::lock_guard lock(s.mu);
  // A BREAK may have overtaken the answer; the stream keeps them in order.
  if (reply.error == 0 && m->state != 0) return fail(ENXIO, "the mapping's lease is breaking");
  if (reply.error != 0) return fail(reply.error, wire::refusal_text(reply.detail));
  auto* reg = new sealfs_reg();
  reg->map = m;
  reg->cb = cb;
  reg->arg = arg;
  m->regs.push_back(reg);
  *out = reg;
  return 0;
}

int sealfs_unregister(struct sealfs_reg* reg) {
  if (reg == nullptr) return fail(EINVAL, "reg is NULL");
  State& s = state();
  std::unique_lock lock(s.mu);
  reg->dead = true;
  if (std::this_thread::get_id() != s.callback_thread_id) {
    s.cv.wait(lock, [&] { return reg->running == 0; });
  }
  if (reg->map != nullptr) std::erase(reg->map->regs, reg);
  if (reg->running == 0) {
    delete reg;
  }
  // else: unregistering from inside its own callback; the job frees nothing
  // and the registration leaks one small struct rather than racing.
  return 0;
}

int sealfs_layout_lease(int fd, off_t offset, size_t length, unsigned flags, struct sealfs_layout** out) {
  if (out == nullptr) return fail(EINVAL, "out is NULL");
  *out = nullptr;
  Answer answer;
  wire::MapReply reply{};
  std::vector<wire::WireExtent> extents;
  if (int r = request_lease(fd, offset, length, PROT_READ, flags & ~SEALFS_MAP_POLICY_MASK, 0,
                            wire::kMapLayoutOnly, &answer, &reply, &extents); r != 0) {
    return r;
  }
  if (answer.fd >= 0) close(answer.fd);
  sealfs_layout* l = answer.layout;
  if (l == nullptr) return fail(EPROTO, "the daemon answered a layout lease with a mapping");
  std::lock_guard lock(state().mu);
  l->generation = reply.generation;
  for (const auto& e : extents) l->extents.push_back({e.file_offset, e.region_offset, e.length});
  *out = l;
  return 0;
}

size_t sealfs_layout_extents(const struct sealfs_layout* l, struct sealfs_extent* out, size_t max) {
  if (l == nullptr) return 0;
  for (size_t i = 0; i < max && i < l->extents.size(); ++i) out[i] = l->extents[i];
  return l->extents.size();
}
uint64_t sealfs_layout_generation(const struct sealfs_layout* l) { return l ? l->generation : 0; }
uint64_t sealfs_layout_lease_id(const struct sealfs_layout* l) { return l ? l->lease_id : 0; }

int sealfs_layout_release(struct sealfs_layout* l) {
  if (l == nullptr) return fail(EINVAL, "layout is NULL");
  State& s = state();
  std::unique_lock lock(s.mu);
  check_fork_locked();
  std::shared_ptr<Connection> conn = l->conn;
  const bool release = l->pid == getpid() && conn && conn->alive;
  if (conn) conn->layouts.erase(l->lease_id);
  lock.unlock();
  if (release) release_lease(conn, l->lease_id);
  delete l;
  return 0;
}

}  // extern "C"
