#include "tools/layout/common.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "wire/fd_passing.h"

namespace sealfs::layout {

namespace {
constexpr const char* kControlXattr = "user.sealfs.control";
constexpr int kReplyTimeoutSeconds = 10;

// Blocking full read; false on EOF or error.
bool read_all(int fd, void* buf, size_t len) {
  auto* p = static_cast<uint8_t*>(buf);
  while (len > 0) {
    ssize_t n = recv(fd, p, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}
}  // namespace

void complain(const std::string& text) {
  std::fprintf(stderr, "sealfs-layout: %s\n", text.c_str());
}

Result<std::unique_ptr<DaemonConnection>> DaemonConnection::reach(int fd) {
  char path[sizeof(sockaddr_un::sun_path)];
  ssize_t n = fgetxattr(fd, kControlXattr, path, sizeof(path) - 1);
  if (n <= 0) {
    return Status(Code::kNotSupported, "not on a sealfs mount with a running daemon");
  }
  path[n] = '\0';
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path, static_cast<size_t>(n) + 1);
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return Status::from_errno(errno, "socket");
  if (connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(sock);
    return Status::from_errno(err, std::string("cannot reach the sealfs daemon at ") + path);
  }
  // A daemon that stops answering must not hang the tool.
  struct timeval tv {kReplyTimeoutSeconds, 0};
  setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return std::unique_ptr<DaemonConnection>(new DaemonConnection(sock, path));
}

DaemonConnection::~DaemonConnection() { close(sock_); }

Result<DaemonConnection::Answer> DaemonConnection::ask_page(wire::Type type, uint64_t cursor,
                                                            int fd) {
  const uint64_t id = next_request_++;
  wire::InspectRequest req{cursor, 0};
  uint8_t out[sizeof(wire::Header) + sizeof(req)];
  const wire::Header h = wire::make_header(type, sizeof(out), id);
  std::memcpy(out, &h, sizeof(h));
  std::memcpy(out + sizeof(h), &req, sizeof(req));
  ssize_t sent;
  do {
    sent = wire::send_with_fd(sock_, out, sizeof(out), fd, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent != static_cast<ssize_t>(sizeof(out))) {
    return Status::from_errno(sent < 0 ? errno : EPIPE, "sending to the daemon");
  }
  wire::Header in{};
  if (!read_all(sock_, &in, sizeof(in))) {
    return Status(Code::kIoError, "the daemon closed the connection or did not answer");
  }
  if (in.magic != wire::kMagic || in.length < sizeof(in) || in.length > wire::kMaxInspectMessage) {
    return Status(Code::kCorruption, "malformed answer from the daemon");
  }
  std::vector<uint8_t> body(in.length - sizeof(in));
  if (!read_all(sock_, body.data(), body.size())) {
    return Status(Code::kIoError, "the daemon closed the connection mid-answer");
  }
  const auto kind = static_cast<wire::Type>(in.type);
  if (kind == wire::Type::kError) {
    return Status(Code::kNotSupported,
                  "the daemon does not know this request (an older sealfs?)");
  }
  if (kind != wire::Type::kInspectReply || in.request_id != id ||
      body.size() < sizeof(wire::InspectReply)) {
    return Status(Code::kCorruption, "unexpected answer from the daemon");
  }
  Answer answer;
  answer.head = wire::load<wire::InspectReply>(body.data());
  if (answer.head.error != 0) return Status::from_errno(answer.head.error, "the daemon refused");
  const size_t size = wire::record_size(type);
  if (body.size() - sizeof(wire::InspectReply) != answer.head.count * size) {
    return Status(Code::kCorruption, "answer length does not match its record count");
  }
  answer.records.assign(body.begin() + sizeof(wire::InspectReply), body.end());
  answer.count = answer.head.count;
  return answer;
}

Result<DaemonConnection::Answer> DaemonConnection::ask(wire::Type type, int fd) {
  ASSIGN_OR_RETURN(Answer all, ask_page(type, 0, fd));
  uint64_t cursor = all.head.next_cursor;
  while (cursor != 0) {
    ASSIGN_OR_RETURN(Answer more, ask_page(type, cursor, fd));
    all.records.insert(all.records.end(), more.records.begin(), more.records.end());
    all.count += more.count;
    cursor = more.head.next_cursor;
  }
  return all;
}

std::string not_sealfs_or(const Status& status) {
  if (status.code() == Code::kCorruption && status.message().ends_with("bad magic")) {
    return "not a sealfs filesystem (bad magic)";
  }
  return "cannot read the filesystem: " + status.to_string();
}

Result<Target> resolve_target(const std::string& path) {
  Target target;
  target.path = path;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Status::from_errno(errno, path);
  if (!S_ISDIR(st.st_mode)) return target;
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::from_errno(errno, path);
  auto daemon = DaemonConnection::reach(fd);
  close(fd);
  if (!daemon.is_ok()) {
    return Status(daemon.status().code(), path + ": a directory, but " + daemon.status().message());
  }
  target.daemon = std::move(*daemon);
  return target;
}

Result<std::unique_ptr<RegionPmem2>> open_region(const std::string& region_path) {
  RegionOptions ro;
  ro.read_only = true;
  ro.claim = tool_claim_request(OwnerRole::kLayoutRead, "sealfs-layout", region_path);
  auto region = RegionPmem2::open(region_path, ro);
  if (!region.is_ok() && region.status().code() == Code::kBusy) {
    return Status(Code::kBusy, region.status().message() +
                                   ": a region in use by a writer cannot be read consistently; "
                                   "give its mount point instead");
  }
  return region;
}

Result<Image> open_image(const std::string& region_path) {
  ASSIGN_OR_RETURN(std::unique_ptr<RegionPmem2> region, open_region(region_path));
  MountOptions mo;
  mo.read_only = true;
  // Every holder counts as alive: a read-only mount cannot release the
  // quarantine of exited holders (that is a journal transaction), and the
  // tool shows what is on media; free marks the holders that are gone.
  mo.holder_alive = [](uint32_t, uint64_t) { return true; };
  Image image;
  auto fs = Filesystem::mount(std::move(region), mo);
  if (!fs.is_ok()) {
    return Status(fs.status().code(), region_path + ": " + not_sealfs_or(fs.status()));
  }
  image.fs = std::move(*fs);
  return image;
}

}  // namespace sealfs::layout
