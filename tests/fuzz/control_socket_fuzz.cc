// Fuzz target: the lease engine's control-socket server (src/lease) reading
// bytes and descriptors from an untrusted peer.
//
// A real LeaseServer runs in this process over a fake LayoutSource that maps
// one file of a temporary directory onto a region file. Each input is
// replayed by a forked child (the peer, so that its exit cleans up the
// leases it was granted, as a real client's does), as chunks:
//   u8 control: bits 0-2 pick a descriptor to attach (0 none, see kFds),
//               bit 6: wait for the server's answers, then have the parent
//               start a layout break on the file (BREAK, REVOKE, kill),
//               bit 7: wait for the server's answers before sending
//   u16 length, then the chunk's bytes (a short tail is sent as it is).
// The child then reads the answers, half-closes and reads until the server
// closes. A server
// that neither answers nor closes within 10 s is a finding, as is any crash
// or sanitizer report in the server thread.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "wire/fd_passing.h"
#include "lease/lease_server.h"
#include "lease/peer.h"
#include "sealfs/sealfs.h"
#include "util/log.h"

namespace sealfs::fuzz {
namespace {

using lease::LayoutAnswer;
using lease::LayoutSource;
using lease::MapExtent;

constexpr uint64_t kFileSize = 256 << 10;
constexpr uint64_t kRegionSize = 1 << 20;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "control_socket_fuzz: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

// One regular file of 256 KiB whose data lives in the region in two extents
// (second half first), and answers to every inspection request.
class FileSource final : public LayoutSource {
 public:
  struct Held final : Lock {
    explicit Held(std::mutex& mu) : hold(mu) {}
    std::unique_lock<std::mutex> hold;
  };
  std::unique_ptr<Lock> lock_layout(uint64_t) override { return std::make_unique<Held>(mu_); }
  Result<LayoutAnswer> layout_for_lease(const Lock&, uint64_t ino, uint64_t offset,
                                        uint64_t length, uint32_t) override {
    LayoutAnswer answer;
    if (ino != file_ino) {
      answer.refusal = wire::Refusal::kNotRegular;
    } else if (offset > kFileSize || length > kFileSize - offset) {
      answer.refusal = wire::Refusal::kPastEof;
      answer.where = kFileSize;
    } else {
      const uint64_t half = kFileSize / 2;
      for (uint64_t at = offset; at < offset + length;) {
        const bool first = at < half;
        const uint64_t end = std::min(offset + length, first ? half : kFileSize);
        answer.extents.push_back({at, first ? half + at : at - half, end - at});
        at = end;
      }
    }
    return answer;
  }
  lease::RegionInfo region() const override {
    lease::RegionInfo r;
    r.fd = region_fd;
    r.flags = wire::kRegionFsdax;
    return r;
  }
  Result<FileInspection> inspect_file(uint64_t ino) override {
    if (ino != file_ino) return Status(Code::kNotFound, "not the fuzz file");
    FileInspection f;
    f.size = kFileSize;
    f.mode = S_IFREG | 0644;
    f.extents = {{0, kFileSize / 2, kFileSize / 2, 0, 0}, {kFileSize / 2, 0, kFileSize / 2, 0, 0}};
    return f;
  }
  Result<wire::SuperRecord> inspect_super() override {
    wire::SuperRecord r{};
    r.region_size = kRegionSize;
    r.backup_offset = kRegionSize - 4096;
    return r;
  }
  Result<SpaceInspection> inspect_space() override {
    SpaceInspection s;
    s.data_start = kFileSize;
    s.data_length = kRegionSize - kFileSize;
    for (uint64_t i = 0; i < 3000; ++i) {  // more than one page (kMaxRecords)
      s.pieces.push_back({kFileSize + i * 8192, 4096, 0, 0, 0, wire::kSpaceFree});
    }
    return s;
  }
  uint64_t file_ino = 0;
  int region_fd = -1;

 private:
  std::mutex mu_;
};

class NullSink final : public lease::QuarantineSink {
 public:
  Status pin(const lease::HolderId&, uint64_t, uint64_t, const std::vector<MapExtent>&) override {
    return Status::ok();
  }
  void unpin(const lease::HolderId&, uint64_t) override {}
  Status quarantine(const lease::HolderId&, uint64_t, const std::vector<MapExtent>&) override {
    return Status::ok();
  }
  void release_holder(const lease::HolderId&) override {}
};

// Descriptors a chunk may carry (index = control & 7; 0 carries none).
enum : int { kNone, kFileRead, kFileWrite, kFilePath, kRegion, kDirectory, kDevNull, kPipe };
int fds[8] = {-1, -1, -1, -1, -1, -1, -1, -1};

struct World {
  std::string dir;
  FileSource source;
  NullSink sink;
  std::unique_ptr<lease::LeaseServer> server;
};
World* world = nullptr;

void set_up() {
  world = new World;
  char dir[] = "/tmp/sealfs-fuzz-XXXXXX";
  if (!mkdtemp(dir)) die("mkdtemp");
  world->dir = dir;
  const std::string file = world->dir + "/file", region = world->dir + "/region";
  int f = open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  int r = open(region.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (f < 0 || r < 0 || ftruncate(f, kFileSize) != 0 || ftruncate(r, kRegionSize) != 0) {
    die("files");
  }
  struct stat st {};
  if (fstat(f, &st) != 0) die("fstat");
  world->source.file_ino = st.st_ino;
  world->source.region_fd = r;
  fds[kFileRead] = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  fds[kFileWrite] = f;
  fds[kFilePath] = open(file.c_str(), O_PATH | O_CLOEXEC);
  fds[kRegion] = r;
  fds[kDirectory] = open(world->dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  fds[kDevNull] = open("/dev/null", O_RDWR | O_CLOEXEC);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) die("pipe");
  fds[kPipe] = p[0];
  lease::ServerOptions options;
  options.socket_path = world->dir + "/control";
  auto mnt = lease::mount_id_of(f);
  if (!mnt.is_ok()) die("mount id");
  options.mnt_id = *mnt;
  options.daemon_uid = geteuid();
  // Short times, so a break runs to the revoke and the kill within an input.
  options.lease.break_time_ns = 20'000'000;
  options.lease.max_break_time_ns = 50'000'000;
  options.lease.revoke_grace_ns = 20'000'000;
  options.lease.policy = wire::kPolicyFence;
  options.warning_interval_ns = UINT64_MAX;
  auto server = lease::LeaseServer::start(options, world->source, &world->sink);
  if (!server.is_ok()) {
    std::fprintf(stderr, "control_socket_fuzz: %s\n", server.status().to_string().c_str());
    std::abort();
  }
  world->server = std::move(*server);
}

// The peer. Runs in the forked child: system calls only, no allocation
// (another thread of the parent may have held the allocator's lock).
[[noreturn]] void peer(const uint8_t* data, size_t size, int to_parent) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, world->server->socket_path().c_str(), sizeof(addr.sun_path) - 1);
  if (s < 0 || connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(2);
  uint8_t sink[65536];
  // Reads what has arrived, waiting up to `ms`; false once the server closed.
  auto drain = [&](int ms) {
    for (;;) {
      struct pollfd p {s, POLLIN, 0};
      if (poll(&p, 1, ms) != 1) return true;
      ssize_t n = recv(s, sink, sizeof(sink), 0);
      if (n <= 0) return false;
      ms = 0;
    }
  };
  size_t pos = 0;
  while (pos < size) {
    uint8_t control = 0;
    size_t length = size - pos;
    if (size - pos >= 3) {
      control = data[pos];
      length = std::min<size_t>(data[pos + 1] | (data[pos + 2] << 8), size - pos - 3);
      pos += 3;
    }
    if (control & 0xc0) {
      if (!drain(20)) _exit(0);
    }
    if (control & 0x40) {
      char go = 'b';
      if (write(to_parent, &go, 1) != 1) _exit(2);
      if (!drain(30)) _exit(0);
    }
    const int fd = fds[control & 7];
    if (wire::send_with_fd(s, data + pos, length, fd, MSG_NOSIGNAL) < 0) _exit(0);
    pos += length;
  }
  // The answers before the half-close: a MAP is answered only after the
  // server closed its copy of the descriptor on another thread, and the
  // server drops a connection, and its pending answers, at end of file.
  // Up to 100 ms for the first bytes, then until 10 ms pass without more.
  if (drain(100)) {
    for (int i = 0; i < 100; ++i) {
      struct pollfd p {s, POLLIN, 0};
      if (poll(&p, 1, 10) != 1) break;
      if (recv(s, sink, sizeof(sink), 0) <= 0) _exit(0);
    }
  }
  shutdown(s, SHUT_WR);
  // A well-behaved server closes once the peer half-closes.
  for (int waited = 0; waited < 10000; waited += 100) {
    if (!drain(100)) _exit(0);
  }
  _exit(3);
}

}  // namespace
}  // namespace sealfs::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sealfs::set_log_level("off");
  signal(SIGPIPE, SIG_IGN);
  sealfs::fuzz::set_up();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sealfs::fuzz;
  int link[2];
  if (pipe2(link, O_CLOEXEC) != 0) die("pipe");
  const pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(link[0]);
    peer(data, size, link[1]);
  }
  close(link[1]);
  // Break requests from the peer, until it exits (end of file on the pipe).
  char go;
  while (read(link[0], &go, 1) == 1) {
    world->server->may_change_layout(world->source.file_ino, 0, UINT64_MAX, SEALFS_BREAK_TRUNCATE,
                                     [](sealfs::Status) {});
  }
  close(link[0]);
  int status = 0;
  if (waitpid(child, &status, 0) != child) die("waitpid");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
    std::fprintf(stderr, "control_socket_fuzz: the server neither answered nor closed\n");
    std::abort();
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 2) die("peer setup");
  // The connection is gone before the next input, so inputs do not share
  // state (a killed peer's connection closes when the server sees it).
  for (int i = 0; i < 1000 && world->server->connection_count() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return 0;
}
