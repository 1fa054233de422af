#include "fuse/direct_io_mmap.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace sealfs::fuse {
namespace {

// The parts of the kernel's FUSE ABI used here (include/uapi/linux/fuse.h;
// libfuse 3.14 does not install fuse_kernel.h). The layouts are fixed ABI.
constexpr uint32_t kOpInit = 26;
constexpr uint32_t kInitExt = 1u << 30;               // flags: flags2 is valid
constexpr uint32_t kDirectIoAllowMmapHigh = 1u << 4;  // flags2: bit 36 of the 64
// The daemon clears set-id bits itself (ops_setid.cc), so the kernel may
// stop asking for security.capability before every write: with this flag it
// sets SB_NOSEC, and an inode whose first write found no set-id bit and no
// capability is marked S_NOSEC and skips the probe from then on.
constexpr uint32_t kHandleKillprivV2 = 1u << 28;

struct InHeader {
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid, gid, pid;
  uint16_t total_extlen, padding;
};
static_assert(sizeof(InHeader) == 40);

struct InitIn {
  uint32_t major, minor, max_readahead, flags, flags2;
};
static_assert(sizeof(InitIn) == 20);

struct OutHeader {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};
static_assert(sizeof(OutHeader) == 16);

constexpr size_t kInitOutFlags = 12;   // offsetof(fuse_init_out, flags)
constexpr size_t kInitOutFlags2 = 32;  // offsetof(fuse_init_out, flags2)

// One session per process. After INIT is answered, each message costs one
// relaxed load here.
std::atomic<bool> g_init_read{false};
std::atomic<bool> g_init_answered{false};
std::atomic<uint64_t> g_init_unique{0};
std::atomic<bool> g_offered{false};
std::atomic<bool> g_granted{false};
std::atomic<bool> g_killpriv_wanted{false};
std::atomic<bool> g_killpriv_offered{false};
std::atomic<bool> g_killpriv_granted{false};

// INIT is always the first request and arrives through read(), never splice:
// libfuse splices only once INIT has negotiated it.
ssize_t read_hook(int fd, void* buf, size_t len, void*) {
  ssize_t n = read(fd, buf, len);
  if (n >= static_cast<ssize_t>(sizeof(InHeader) + sizeof(InitIn)) &&
      !g_init_read.load(std::memory_order_relaxed)) {
    InHeader h;
    std::memcpy(&h, buf, sizeof h);
    if (h.opcode == kOpInit) {
      InitIn in;
      std::memcpy(&in, static_cast<const char*>(buf) + sizeof h, sizeof in);
      g_offered.store((in.flags & kInitExt) != 0 && (in.flags2 & kDirectIoAllowMmapHigh) != 0);
      g_killpriv_offered.store(g_killpriv_wanted.load() && (in.flags & kHandleKillprivV2) != 0);
      g_init_unique.store(h.unique);
      g_init_read.store(true, std::memory_order_release);
    }
  }
  return n;
}

void patch_u32(void* base, size_t offset, uint32_t bits) {
  uint32_t v;
  std::memcpy(&v, static_cast<char*>(base) + offset, sizeof v);
  v |= bits;
  std::memcpy(static_cast<char*>(base) + offset, &v, sizeof v);
}

// libfuse sends a reply as one writev: the header, then the argument.
ssize_t writev_hook(int fd, iovec* iov, int count, void*) {
  if (!g_init_answered.load(std::memory_order_relaxed) &&
      g_init_read.load(std::memory_order_acquire) && count >= 2 &&
      iov[0].iov_len == sizeof(OutHeader)) {
    OutHeader h;
    std::memcpy(&h, iov[0].iov_base, sizeof h);
    if (h.unique == g_init_unique.load() && h.unique != 0) {
      g_init_answered.store(true);
      if (h.error == 0 && g_killpriv_offered.load() && iov[1].iov_len >= kInitOutFlags + 4) {
        patch_u32(iov[1].iov_base, kInitOutFlags, kHandleKillprivV2);
        g_killpriv_granted.store(true);
      }
      if (h.error == 0 && g_offered.load() && iov[1].iov_len >= kInitOutFlags2 + 4) {
        patch_u32(iov[1].iov_base, kInitOutFlags, kInitExt);
        patch_u32(iov[1].iov_base, kInitOutFlags2, kDirectIoAllowMmapHigh);
        g_granted.store(true);
      }
    }
  }
  return writev(fd, iov, count);
}

// Pass-through, so that installing custom I/O does not take splice away
// (libfuse offers the splice capabilities only when these exist).
ssize_t splice_hook(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                    unsigned int flags, void*) {
  static_assert(sizeof(off_t) == sizeof(loff_t));
  return splice(fdin, reinterpret_cast<loff_t*>(offin), fdout, reinterpret_cast<loff_t*>(offout),
                len, flags);
}

}  // namespace

Status request_direct_io_mmap(fuse_session* se, bool killpriv_v2) {
  g_killpriv_wanted.store(killpriv_v2);
  fuse_custom_io io{};
  io.read = read_hook;
  io.writev = writev_hook;
  io.splice_receive = splice_hook;
  io.splice_send = splice_hook;
  int rc = fuse_session_custom_io(se, &io, fuse_session_fd(se));
  if (rc != 0) return Status::from_errno(-rc, "fuse_session_custom_io");
  return Status::ok();
}

bool direct_io_mmap_granted() { return g_granted.load(std::memory_order_relaxed); }

bool killpriv_v2_granted() { return g_killpriv_granted.load(std::memory_order_relaxed); }

}  // namespace sealfs::fuse
