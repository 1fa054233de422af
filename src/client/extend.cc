// sealfs_extend: grow a live mapping, its lease and (if needed) its file,
// without a break (docs/protocol.md "The native API"); and the extent
// mapping it shares with sealfs_map.
#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "client/client_internal.h"

namespace sealfs::client {

int map_extents(void* base, uint64_t base_offset, const std::vector<wire::WireExtent>& extents,
                const wire::MapReply& reply, int region_fd, int prot) {
  for (const auto& e : extents) {
    void* at = static_cast<uint8_t*>(base) + (e.file_offset - base_offset);
    void* p = MAP_FAILED;
    if (reply.region_flags & wire::kRegionFsdax) {
      p = mmap(at, e.length, prot, MAP_SHARED_VALIDATE | MAP_SYNC | MAP_FIXED, region_fd,
               off_t(e.region_offset));
      // Only a page-granularity (emulated) region may do without MAP_SYNC.
      if (p == MAP_FAILED && errno == EOPNOTSUPP && reply.granularity != wire::kGranularityPage) {
        return EOPNOTSUPP;
      }
    }
    if (p == MAP_FAILED) {
      p = mmap(at, e.length, prot, MAP_SHARED | MAP_FIXED, region_fd, off_t(e.region_offset));
      if (p == MAP_FAILED) return errno;
    }
  }
  return 0;
}

std::string map_error_text(int err, const wire::MapReply& reply) {
  return err == EOPNOTSUPP && (reply.region_flags & wire::kRegionFsdax)
             ? "MAP_SYNC refused on an fsdax region"
             : "mmap of the region: " + std::string(strerror(err));
}

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

// One EXTEND round trip; on success *answer holds the MAP_REPLY and the
// region descriptor. Asks again after fdatasync on a kFlushFirst refusal.
int ask(struct sealfs_map* m, const std::shared_ptr<Connection>& conn, int fd, size_t new_length,
        Answer* answer, wire::MapReply* reply) {
  for (;;) {
    const bool flush = conn->flush_before_map.load(std::memory_order_relaxed);
    if (flush && syscall(SYS_fdatasync, fd) != 0) {
      return fail(errno, "writing the file's cached pages back before extending: " +
                             std::string(strerror(errno)));
    }
    wire::ExtendRequest req{m->lease_id, new_length, flush ? wire::kMapFlushed : 0u, 0};
    *answer = call(conn, wire::Type::kExtend, &req, sizeof(req), fd, m);
    if (answer->error != 0) {
      return fail(answer->error, "lost the sealfs daemon: " + std::string(strerror(answer->error)));
    }
    const auto h = wire::load<wire::Header>(answer->message.data());
    if (static_cast<wire::Type>(h.type) != wire::Type::kMapReply) {
      return fail(EPROTO, "the daemon refused the request as malformed");
    }
    *reply = wire::load<wire::MapReply>(answer->message.data() + sizeof(h));
    if (reply->error != 0 && !flush &&
        reply->detail == static_cast<uint32_t>(wire::Refusal::kFlushFirst)) {
      conn->flush_before_map.store(true, std::memory_order_relaxed);
      continue;
    }
    if (reply->error != 0) {
      return fail(reply->error, std::string("sealfs: ") + wire::refusal_text(reply->detail) +
                                    " (" + strerror(reply->error) + ")");
    }
    return 0;
  }
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
  size_t old_length = 0;
  uint8_t* base = nullptr;
  {
    std::lock_guard lock(s.mu);
    check_fork_locked();
    if (m->pid != getpid() || !m->mapped || m->released) return fail(EINVAL, "not a live mapping");
    if (m->state != 0) return fail(ENXIO, "the mapping's lease is breaking");
    if ((m->prot & PROT_WRITE) == 0) return fail(EACCES, "a read-only mapping cannot grow");
    if (want <= m->length) return fail(EINVAL, "new_length must be larger than the mapping");
    conn = m->conn;
    old_length = m->length;
    base = static_cast<uint8_t*>(m->addr);
  }
  // Address space first: a refusal here costs the daemon nothing.
  const size_t room = std::max(m->reserved, old_length);
  bool took = false;
  if (want > room) {
    if (!own_addresses(base + room, want - room, false)) {
      return fail(ENOMEM, "the addresses after the mapping are taken (map with sealfs_map_reserve)");
    }
    took = true;
  }
  auto undo_addresses = [&] {
    // Back to what it was: the added pages (if any were mapped) become
    // reserved address space again, beyond the old reservation unmapped.
    own_addresses(base + old_length, std::min(want, room) - old_length, true);
    if (took) munmap(base + room, want - room);
  };
  Answer answer;
  wire::MapReply reply{};
  if (int r = ask(m, conn, fd, want, &answer, &reply); r != 0) {
    if (took) munmap(base + room, want - room);
    return r;
  }
  const size_t count = (answer.message.size() - sizeof(wire::Header) - sizeof(reply)) /
                       sizeof(wire::WireExtent);
  std::vector<wire::WireExtent> extents;
  const uint8_t* p = answer.message.data() + sizeof(wire::Header) + sizeof(reply);
  for (size_t i = 0; i < count; ++i) {
    extents.push_back(wire::load<wire::WireExtent>(p + i * sizeof(wire::WireExtent)));
  }
  // The added range, tiled in order by page-aligned extents.
  uint64_t at = reply.offset;
  bool tiles = reply.offset == uint64_t(m->offset) + old_length && reply.length == want - old_length;
  for (const auto& e : extents) {
    tiles &= e.file_offset == at && e.length != 0 && e.length % page == 0 && e.region_offset % page == 0;
    at += e.length;
  }
  tiles &= at == reply.offset + reply.length;
  int err = answer.fd < 0 ? EPROTO : !tiles ? EPROTO : 0;
  if (err == 0) err = map_extents(base, uint64_t(m->offset), extents, reply, answer.fd, m->prot);
  if (answer.fd >= 0) close(answer.fd);
  if (err != 0) {
    undo_addresses();
    // The daemon's lease covers the added range; it goes with the lease.
    return fail(err, err == EPROTO ? "the daemon's extents do not tile the added range"
                                   : map_error_text(err, reply));
  }
  madvise(base + old_length, want - old_length, MADV_DONTFORK);
  std::lock_guard lock(s.mu);
  m->length = want;
  m->reserved = std::max(room, want);
  if (m->state == 2) {
    // Fenced while the added pages went in: fence them too.
    m->state = 1;
    fence_locked(m);
  }
  return 0;
}
