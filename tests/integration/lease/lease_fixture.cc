#include "lease_fixture.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "pattern.h"

namespace sealfs::itest {
namespace {

const std::string& holder_bin() {
  static const std::string bin = [] {
    const char* v = std::getenv("SEALFS_LEASE_HOLDER");
    if (v == nullptr || *v == '\0') {
      ADD_FAILURE() << "SEALFS_LEASE_HOLDER is not set (meson sets it)";
      return std::string();
    }
    return std::string(v);
  }();
  return bin;
}

int ms_left(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

// ---- HolderProcess ----

HolderProcess::HolderProcess(const Options& options) {
  const std::string& bin = holder_bin();
  if (bin.empty()) return;
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return;
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return;
  }
  std::string mode = options.coop ? "coop" : "manual";
  std::string bin_copy = bin;
  char* argv[] = {bin_copy.data(), mode.data(), nullptr};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    if (options.uid) {
      if (setgroups(0, nullptr) != 0 || setresgid(options.gid, options.gid, options.gid) != 0 ||
          setresuid(*options.uid, *options.uid, *options.uid) != 0) {
        _exit(126);
      }
    }
    execv(argv[0], argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  if (pid < 0) {
    close(in[1]);
    close(out[0]);
    return;
  }
  pid_ = pid;
  to_holder_ = in[1];
  from_holder_ = out[0];
  if (!expect("ready", 10s)) {
    ADD_FAILURE() << "holder did not start: " << transcript();
  }
}

HolderProcess::~HolderProcess() {
  if (to_holder_ >= 0) close(to_holder_);
  if (pid_ > 0 && !status_) {
    kill(pid_, SIGKILL);
    kill(pid_, SIGCONT);
    wait_exit(10s);
  }
  if (from_holder_ >= 0) close(from_holder_);
}

void HolderProcess::send(const std::string& line) {
  std::string text = line + "\n";
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = write(to_holder_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ADD_FAILURE() << "cannot send '" << line << "' to the holder: " << std::strerror(errno);
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

bool HolderProcess::read_some(int timeout_ms) {
  if (eof_ || from_holder_ < 0) return false;
  pollfd p{from_holder_, POLLIN, 0};
  int rc = poll(&p, 1, timeout_ms);
  if (rc <= 0) return false;
  char buf[4096];
  ssize_t n = read(from_holder_, buf, sizeof buf);
  if (n <= 0) {
    if (n == 0 || errno != EINTR) eof_ = true;
    return false;
  }
  partial_.append(buf, static_cast<size_t>(n));
  size_t nl;
  while ((nl = partial_.find('\n')) != std::string::npos) {
    lines_.push_back(partial_.substr(0, nl));
    consumed_.push_back(false);
    partial_.erase(0, nl + 1);
  }
  return true;
}

std::optional<std::string> HolderProcess::expect(std::string_view prefix,
                                                 std::chrono::milliseconds timeout) {
  return expect_any({prefix}, timeout);
}

std::optional<std::string> HolderProcess::expect_any(
    const std::vector<std::string_view>& prefixes, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t scanned = 0;
  while (true) {
    for (; scanned < lines_.size(); ++scanned) {
      if (consumed_[scanned]) continue;
      for (std::string_view prefix : prefixes) {
        if (starts_with(lines_[scanned], prefix)) {
          consumed_[scanned] = true;
          return lines_[scanned];
        }
      }
    }
    if (eof_) return std::nullopt;
    int left = ms_left(deadline);
    if (left == 0 && !read_some(0)) return std::nullopt;
    if (left > 0) read_some(left);
  }
}

int HolderProcess::count(std::string_view prefix) {
  while (read_some(0)) {
  }
  int n = 0;
  for (const auto& l : lines_) n += starts_with(l, prefix) ? 1 : 0;
  return n;
}

bool HolderProcess::sync(std::chrono::milliseconds timeout) {
  send("ping");
  return expect("pong", timeout).has_value();
}

std::string HolderProcess::transcript() const {
  std::string out = "holder " + std::to_string(pid_) + " said:\n";
  for (const auto& l : lines_) out += "  " + l + "\n";
  if (!partial_.empty()) out += "  (partial) " + partial_ + "\n";
  return out;
}

void HolderProcess::send_map(const std::string& path, uint64_t offset, uint64_t length,
                             const std::string& prot, unsigned flags,
                             const std::string& open_mode, uint64_t break_ms) {
  send("map " + path + " " + std::to_string(offset) + " " + std::to_string(length) + " " + prot +
       " " + std::to_string(flags) + " " + open_mode + " " + std::to_string(break_ms));
}

MapReply HolderProcess::map_reply(std::chrono::milliseconds timeout) {
  MapReply reply;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    // Either answer; whichever comes first.
    for (size_t i = 0; i < lines_.size(); ++i) {
      if (consumed_[i]) continue;
      const std::string& l = lines_[i];
      if (starts_with(l, "mapped ") || starts_with(l, "maperr ")) {
        consumed_[i] = true;
        reply.text = l;
        std::istringstream in(l);
        std::string word;
        in >> word;
        if (word == "maperr") {
          in >> reply.rc;
        } else {
          std::string k;
          in >> reply.index >> k >> reply.lease_id >> k >> reply.generation >> k >> reply.length;
        }
        return reply;
      }
    }
    int left = ms_left(deadline);
    if (eof_ || left == 0) break;
    read_some(left);
  }
  reply.rc = -ETIMEDOUT;
  reply.text = "no answer to map; " + transcript();
  return reply;
}

MapReply HolderProcess::map(const std::string& path, uint64_t offset, uint64_t length,
                            const std::string& prot, unsigned flags,
                            const std::string& open_mode, uint64_t break_ms) {
  send_map(path, offset, length, prot, flags, open_mode, break_ms);
  return map_reply();
}

std::optional<int> HolderProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  if (pid_ <= 0) return std::nullopt;
  auto st = wait_child(pid_, timeout);
  if (st) status_ = st;
  return status_;
}

void HolderProcess::signal(int sig) {
  if (pid_ > 0 && !status_) kill(pid_, sig);
}

bool HolderProcess::stop() {
  if (pid_ <= 0 || status_ || kill(pid_, SIGSTOP) != 0) return false;
  siginfo_t info{};
  while (waitid(P_PID, static_cast<id_t>(pid_), &info, WSTOPPED) != 0) {
    if (errno != EINTR) return false;
  }
  return info.si_code == CLD_STOPPED;
}

int break_reason(const std::string& line) {
  std::istringstream in(line);
  std::string word, id, key;
  int reason = -1;
  in >> word >> id >> key >> reason;
  return word == "break" && key == "reason" ? reason : -1;
}

// ---- TimedOp ----

TimedOp::TimedOp(std::function<int()> op) : started_(std::chrono::steady_clock::now()) {
  thread_ = std::thread([this, op = std::move(op)] {
    errno = 0;
    int rc = op();
    int err = rc < 0 ? errno : 0;
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    std::lock_guard lock(mu_);
    result_ = OpResult{rc, err, seconds};
    cv_.notify_all();
  });
}

TimedOp::~TimedOp() {
  if (thread_.joinable()) thread_.join();
}

bool TimedOp::done() {
  std::lock_guard lock(mu_);
  return result_.has_value();
}

std::optional<OpResult> TimedOp::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return result_.has_value(); });
  return result_;
}

// ---- LeaseFixture ----

void LeaseFixture::TearDown() {
  // Holders first: a daemon unmounting with live leases would wait for them.
  holders_.clear();
  MountFixture::TearDown();
}

void LeaseFixture::mount_with(unsigned break_time, const std::string& options,
                              uint64_t region_size, std::vector<std::string> mkfs_args) {
  MountConfig config;
  config.region_size = region_size;
  config.mkfs_args = std::move(mkfs_args);
  config.options = "lease_break_time=" + std::to_string(break_time);
  if (!options.empty()) config.options += "," + options;
  ASSERT_NO_FATAL_FAILURE(format_and_mount(config));
}

HolderProcess& LeaseFixture::holder(bool coop, std::optional<TestUser> user) {
  HolderProcess::Options options;
  options.coop = coop;
  if (user) {
    options.uid = user->uid;
    options.gid = user->gid;
  }
  holders_.push_back(std::make_unique<HolderProcess>(options));
  return *holders_.back();
}

void LeaseFixture::make_file(const std::string& name, uint64_t size, uint64_t seed) {
  int fd = open(path(name).c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0666);
  ASSERT_GE(fd, 0) << name << ": " << std::strerror(errno);
  fchmod(fd, 0666);
  std::vector<uint8_t> buf(std::min<uint64_t>(size, 1 * kMiB));
  for (uint64_t off = 0; off < size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
    fill_lease_pattern(buf.data(), n, seed, off);
    ssize_t w = pwrite(fd, buf.data(), n, static_cast<off_t>(off));
    ASSERT_EQ(w, static_cast<ssize_t>(n)) << name << ": " << std::strerror(errno);
    off += n;
  }
  ASSERT_EQ(fsync(fd), 0) << std::strerror(errno);
  close(fd);
}

::testing::AssertionResult LeaseFixture::file_has_pattern(const std::string& name, uint64_t size,
                                                          uint64_t seed, uint64_t offset) {
  int fd = open(path(name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ::testing::AssertionFailure() << "open " << name << ": " << std::strerror(errno);
  std::vector<uint8_t> buf(1 * kMiB);
  uint64_t off = offset;
  const uint64_t end = offset + size;
  while (off < end) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - off));
    ssize_t n = pread(fd, buf.data(), want, static_cast<off_t>(off));
    if (n <= 0) {
      int err = errno;
      close(fd);
      return ::testing::AssertionFailure() << name << ": read at " << off << " gave " << n
                                           << (n < 0 ? std::string(" ") + std::strerror(err) : "");
    }
    size_t bad = lease_pattern_mismatch(buf.data(), static_cast<size_t>(n), seed, off);
    if (bad < static_cast<size_t>(n)) {
      close(fd);
      return ::testing::AssertionFailure()
             << name << ": byte " << off + bad << " is " << int(buf[bad]) << ", pattern "
             << seed << " has " << int(lease_pattern_byte(seed, off + bad));
    }
    off += static_cast<uint64_t>(n);
  }
  close(fd);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult LeaseFixture::file_is_zero(const std::string& name, uint64_t offset,
                                                      uint64_t length) {
  int fd = open(path(name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ::testing::AssertionFailure() << "open " << name << ": " << std::strerror(errno);
  std::vector<uint8_t> buf(1 * kMiB);
  uint64_t off = offset;
  while (off < offset + length) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), offset + length - off));
    ssize_t n = pread(fd, buf.data(), want, static_cast<off_t>(off));
    if (n <= 0) {
      close(fd);
      return ::testing::AssertionFailure() << name << ": short read at " << off;
    }
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[static_cast<size_t>(i)] != 0) {
        close(fd);
        return ::testing::AssertionFailure() << name << ": byte " << off + static_cast<uint64_t>(i)
                                             << " is " << int(buf[static_cast<size_t>(i)]);
      }
    }
    off += static_cast<uint64_t>(n);
  }
  close(fd);
  return ::testing::AssertionSuccess();
}

uint64_t LeaseFixture::file_size(const std::string& name) {
  struct stat st {};
  if (stat(path(name).c_str(), &st) != 0) {
    ADD_FAILURE() << "stat " << name << ": " << std::strerror(errno);
    return 0;
  }
  return static_cast<uint64_t>(st.st_size);
}

uint64_t LeaseFixture::free_blocks() {
  struct statvfs s {};
  if (statvfs(mountpoint().c_str(), &s) != 0) {
    ADD_FAILURE() << "statvfs: " << std::strerror(errno);
    return 0;
  }
  return static_cast<uint64_t>(s.f_bfree) * s.f_frsize / 4096;
}

uint64_t LeaseFixture::fill_filesystem(const std::string& name, uint64_t seed) {
  int fd = open(path(name).c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) {
    ADD_FAILURE() << "create " << name << ": " << std::strerror(errno);
    return 0;
  }
  std::vector<uint8_t> buf(1 * kMiB);
  uint64_t off = 0;
  size_t chunk = buf.size();
  while (chunk >= 4096) {
    fill_lease_pattern(buf.data(), chunk, seed, off);
    ssize_t n = pwrite(fd, buf.data(), chunk, static_cast<off_t>(off));
    if (n == static_cast<ssize_t>(chunk)) {
      off += chunk;
      continue;
    }
    if (n > 0) {
      // A short write: keep whole blocks only, then try smaller chunks.
      uint64_t whole = static_cast<uint64_t>(n) / 4096 * 4096;
      off += whole;
      if (whole != static_cast<uint64_t>(n) && ftruncate(fd, static_cast<off_t>(off)) != 0) {
        ADD_FAILURE() << "ftruncate " << name << ": " << std::strerror(errno);
        break;
      }
    } else if (errno != ENOSPC) {
      ADD_FAILURE() << "write " << name << " at " << off << ": " << std::strerror(errno);
      break;
    }
    chunk /= 2;
  }
  if (fsync(fd) != 0) ADD_FAILURE() << "fsync " << name << ": " << std::strerror(errno);
  close(fd);
  return off;
}

bool LeaseFixture::wait_free_blocks(uint64_t at_least, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (free_blocks() >= at_least) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    // statfs cannot be waited on: poll at a short interval.
    usleep(20 * 1000);
  }
}

// ---- paths ----

bool wait_for_path(const std::string& path, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string dir = path.substr(0, path.rfind('/'));
  int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (in >= 0) inotify_add_watch(in, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_ATTRIB);
  bool found = false;
  while (true) {
    if (access(path.c_str(), F_OK) == 0) {
      found = true;
      break;
    }
    int left = ms_left(deadline);
    if (left == 0) break;
    pollfd p{in, POLLIN, 0};
    if (in >= 0 && poll(&p, 1, std::min(left, 100)) > 0) {
      char buf[4096];
      while (read(in, buf, sizeof buf) > 0) {
      }
    } else if (in < 0) {
      usleep(10 * 1000);
    }
  }
  if (in >= 0) close(in);
  return found;
}

void touch_path(const std::string& path) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) {
    ADD_FAILURE() << "create " << path << ": " << std::strerror(errno);
    return;
  }
  close(fd);
}

}  // namespace sealfs::itest
