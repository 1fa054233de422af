// What sealfs_map and sealfs_extend share: asking the daemon for extents
// (MAP or EXTEND, both answered by a MAP_REPLY), checking that they tile
// the granted range, and mapping them.
#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "client/client_internal.h"

namespace sealfs::client {

int ask_for_extents(const std::shared_ptr<Connection>& conn, int fd, wire::Type type, void* body,
                    size_t body_size, uint32_t* flags, struct sealfs_map* extends,
                    Answer* answer, wire::MapReply* reply, std::vector<wire::WireExtent>* extents) {
  const uint32_t asked_flags = *flags;
  for (;;) {
    const bool flush = conn->flush_before_map.load(std::memory_order_relaxed);
    // The system call itself: libsealfs-preload wraps fdatasync(3).
    if (flush && syscall(SYS_fdatasync, fd) != 0) {
      return fail(errno, "writing the file's cached pages back before mapping it: " +
                             std::string(strerror(errno)));
    }
    *flags = asked_flags | (flush ? wire::kMapFlushed : 0u);
    *answer = call(conn, type, body, body_size, fd, extends);
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
      if (answer->fd >= 0) close(answer->fd);
      continue;
    }
    if (reply->error != 0) {
      return fail(reply->error, std::string("sealfs: ") + wire::refusal_text(reply->detail) +
                                    " (" + strerror(reply->error) + ")");
    }
    const size_t count =
        (answer->message.size() - sizeof(h) - sizeof(*reply)) / sizeof(wire::WireExtent);
    const uint8_t* p = answer->message.data() + sizeof(h) + sizeof(*reply);
    extents->clear();
    extents->reserve(count);
    for (size_t i = 0; i < count; ++i) {
      extents->push_back(wire::load<wire::WireExtent>(p + i * sizeof(wire::WireExtent)));
    }
    return 0;
  }
}

bool extents_tile(const wire::MapReply& reply, const std::vector<wire::WireExtent>& extents) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t at = reply.offset;
  for (const auto& e : extents) {
    if (e.file_offset != at || e.length == 0 || e.length % page || e.region_offset % page) {
      return false;
    }
    at += e.length;
  }
  return at == reply.offset + reply.length;
}

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

}  // namespace sealfs::client
