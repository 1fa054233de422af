// sealfs_extend: grow a live mapping, its lease and (if needed) its file,
// without a break (docs/protocol.md "The native API").
//
// Races (the mapping is shared with the reader, the callback thread and the
// program's other threads): m->extending, set under State::mu for the whole
// call, makes sealfs_unmap wait and a second sealfs_extend fail (EBUSY);
// the added extents are mapped under State::mu and only into a mapping
// that was not fenced meanwhile, so a REVOKE (or a lost daemon), which
// fences under the same lock before it is acknowledged, either fences the
// added pages too or finds them never mapped.
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>

#include "client/client_internal.h"
#include "client/write_tracking.h"
#include "util/sync_point.h"

namespace sealfs::client {
namespace {

// Makes [addr, addr+len) address space of ours: PROT_NONE, no memory.
// With `replace`, over whatever is there (pages of ours); else only if the
// range is free.
bool own_addresses(void* addr, size_t len, bool replace) {
  const int how = replace ? MAP_FIXED : MAP_FIXED_NOREPLACE;
  void* p = mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | how, -1, 0);
  if (p == MAP_FAILED) return false;
  if (p != addr) {  // a kernel without MAP_FIXED_NOREPLACE treats it as a hint
    munmap(p, len);
    return false;
  }
  return true;
}

// Ends the call's hold on m (sealfs_unmap may go on). mu held.
void end_extending_locked(struct sealfs_map* m) {
  m->extending = false;
  state().cv.notify_all();
}

}  // namespace

}  // namespace sealfs::client

using namespace sealfs::client;
namespace wire = sealfs::wire;

extern "C" int sealfs_extend(struct sealfs_map* m, int fd, size_t new_length) {
  if (m == nullptr) return fail(EINVAL, "map is NULL");
  if (fd < 0) return fail(EBADF, "bad file descriptor");
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t want = (new_length + page - 1) / page * page;
  State& s = state();
  std::shared_ptr<Connection> conn;
  size_t old_length = 0, room = 0;
  uint8_t* base = nullptr;
  uint64_t offset = 0;
  int prot = 0;
  wire::ExtendRequest req{};
  {
    std::lock_guard lock(s.mu);
    check_fork_locked();
    if (m->pid != getpid() || !m->mapped || m->released) return fail(EINVAL, "not a live mapping");
    if (m->extending) return fail(EBUSY, "another sealfs_extend of this mapping is running");
    if (m->state != 0) return fail(ENXIO, "the mapping's lease is breaking");
    if ((m->prot & PROT_WRITE) == 0) return fail(EACCES, "a read-only mapping cannot grow");
    if (want <= m->length) return fail(EINVAL, "new_length must be larger than the mapping");
    m->extending = true;
    conn = m->conn;
    old_length = m->length;
    room = std::max(m->reserved, old_length);
    base = static_cast<uint8_t*>(m->addr);
    offset = uint64_t(m->offset);
    prot = m->prot;
    req.lease_id = m->lease_id;
  }
  // Address space first: a refusal here costs the daemon nothing.
  bool took = false;
  if (want > room) {
    if (!own_addresses(base + room, want - room, false)) {
      std::lock_guard lock(s.mu);
      end_extending_locked(m);
      return fail(ENOMEM, "the addresses after the mapping are taken (map with sealfs_map_reserve)");
    }
    took = true;
  }
  Answer answer;
  wire::MapReply reply{};
  std::vector<wire::WireExtent> extents;
  req.new_length = want;
  int err = ask_for_extents(conn, fd, wire::Type::kExtend, &req, sizeof(req), &req.flags, m,
                            &answer, &reply, &extents);
  if (err == 0) {
    SEALFS_SYNC_POINT("client.extend.replied");  // no lock held
    const bool tiles = reply.offset == offset + old_length &&
                       reply.length == want - old_length && extents_tile(reply, extents);
    err = answer.fd < 0 || !tiles
              ? fail(EPROTO, "the daemon's extents do not tile the added range")
              : 0;
  }
  std::lock_guard lock(s.mu);
  if (err == 0 && (m->state == 2 || m->released)) {
    // Revoked (or the daemon lost) since the answer: the acknowledgement
    // may have gone and the blocks be someone else's; they stay unmapped.
    err = fail(ENXIO, "the mapping's lease was revoked while it grew");
  }
  if (err == 0) {
    if (int e = map_extents(base, offset, extents, reply, answer.fd, prot); e != 0) {
      err = fail(e, map_error_text(e, reply));
    }
  }
  if (answer.fd >= 0) close(answer.fd);
  if (err != 0) {
    // Back to what it was: the added pages (if any were mapped) become
    // reserved address space again, beyond the old reservation unmapped.
    // The daemon's lease may cover the added range; it goes with the lease.
    if (std::min(want, room) > old_length) {
      own_addresses(base + old_length, std::min(want, room) - old_length, true);
    }
    if (took) munmap(base + room, want - room);
    end_extending_locked(m);
    return err;
  }
  SEALFS_SYNC_POINT("client.extend.mapped");  // under State::mu
  madvise(base + old_length, want - old_length, MADV_DONTFORK);
  // Unregistered, the added pages would make every scan of the map fail
  // (and its persists flush all of it).
  if (m->tracks_writes) (void)track_writes(base + old_length, want - old_length, want);
  m->length = want;
  m->reserved = std::max(room, want);
  end_extending_locked(m);
  return 0;
}
