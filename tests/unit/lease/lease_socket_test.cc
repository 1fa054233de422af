// The lease engine over a real control socket, with real holder processes
// (tests/unit/lease/lease_holder.cc) and no FUSE: a fake LayoutSource maps a
// test file's inode onto extents of a region file.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <mutex>
#include <string>

#include "lease/lease_server.h"
#include "lease/peer.h"
#include "lease_fakes.h"
#include "sealfs/sealfs.h"
#include "support/piped_child.h"

namespace sealfs::lease {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kRegionSize = 16 * kMiB;
constexpr uint64_t kFileSize = 4 * kMiB;
constexpr uint64_t kFileAt = 4 * kMiB;  // the file's data in the region

class FakeLayoutSource final : public LayoutSource {
 public:
  struct Lock final : LayoutSource::Lock {
    explicit Lock(std::mutex& mu) : hold(mu) {}
    std::unique_lock<std::mutex> hold;
  };
  std::unique_ptr<LayoutSource::Lock> lock_layout(uint64_t) override {
    return std::make_unique<Lock>(mu_);
  }
  Result<LayoutAnswer> layout_for_lease(const LayoutSource::Lock&, uint64_t ino, uint64_t offset,
                                        uint64_t length, uint32_t) override {
    LayoutAnswer answer;
    auto it = files_.find(ino);
    if (it == files_.end()) {
      answer.refusal = wire::Refusal::kNotRegular;
    } else if (offset + length > it->second) {
      answer.refusal = wire::Refusal::kPastEof;
      answer.where = it->second;
    } else {
      // Two extents, in reverse order on the region, to prove stitching.
      const uint64_t half = kFileSize / 2;
      for (uint64_t at = offset; at < offset + length;) {
        const bool first = at < half;
        const uint64_t end = std::min(offset + length, first ? half : kFileSize);
        const uint64_t region = first ? kFileAt + half + at : kFileAt + (at - half);
        answer.extents.push_back({at, region, end - at});
        at = end;
      }
    }
    return answer;
  }
  RegionInfo region() const override {
    RegionInfo r;
    r.fd = region_fd;
    r.alignment = 4096;
    r.granularity = wire::kGranularityPage;
    return r;
  }
  // Where file offset `off` lives in the region.
  static uint64_t region_offset(uint64_t off) {
    const uint64_t half = kFileSize / 2;
    return off < half ? kFileAt + half + off : kFileAt + (off - half);
  }
  void add(uint64_t ino, uint64_t size) { files_[ino] = size; }
  int region_fd = -1;

  void direct_stores_possible(uint64_t ino) override {
    std::lock_guard lock(stamps_mu_);
    stamps_.push_back(ino);
  }
  std::vector<uint64_t> stamps() {
    std::lock_guard lock(stamps_mu_);
    return stamps_;
  }

 private:
  std::mutex stamps_mu_;
  std::vector<uint64_t> stamps_;
  std::mutex mu_;
  std::map<uint64_t, uint64_t> files_;
};

// A holder process (SEALFS_LEASE_HOLDER MODE FILE LENGTH) talking through
// pipes; a line not complete within 10 s is "timeout".
class Holder : public testing_support::PipedChild {
 public:
  Holder(const std::string& socket, const std::vector<std::string>& args)
      : PipedChild(holder_argv(args), {{"SEALFS_CONTROL_SOCKET", socket}}) {}
  std::string line(int timeout_ms = 10000) { return PipedChild::line(timeout_ms); }
  void send(const std::string& cmd) { (void)PipedChild::send(cmd); }

 private:
  static std::vector<std::string> holder_argv(const std::vector<std::string>& args) {
    const char* exe = getenv("SEALFS_LEASE_HOLDER");
    std::vector<std::string> argv{exe != nullptr ? exe : ""};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
};

class LeaseSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(getenv("SEALFS_LEASE_HOLDER"), nullptr);
    char tmpl[] = "/tmp/sealfs-lease-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    chmod(dir_.c_str(), 0755);
    region_fd_ = open((dir_ + "/region").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(region_fd_, 0);
    ASSERT_EQ(ftruncate(region_fd_, kRegionSize), 0);
    file_ = dir_ + "/file";
    int fd = open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    ASSERT_GE(fd, 0);
    fchmod(fd, 0666);
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    ino_ = st.st_ino;
    auto mnt = mount_id_of(fd);
    ASSERT_TRUE(mnt.is_ok()) << mnt.status().to_string();
    close(fd);
    source_.region_fd = region_fd_;
    source_.add(ino_, kFileSize);
    start_server();
  }
  void start_server(uint32_t policy = wire::kPolicyFence) {
    ServerOptions options;
    options.socket_path = dir_ + "/control";
    int fd = open(file_.c_str(), O_RDONLY | O_CLOEXEC);
    options.mnt_id = *mount_id_of(fd);
    close(fd);
    options.daemon_uid = geteuid();
    options.lease.break_time_ns = 1'000'000'000;  // 1 s
    options.lease.revoke_grace_ns = 200'000'000;
    options.lease.policy = policy;
    auto server = LeaseServer::start(options, source_, &sink_);
    ASSERT_TRUE(server.is_ok()) << server.status().to_string();
    server_ = std::move(*server);
  }
  void TearDown() override {
    server_.reset();
    if (region_fd_ >= 0) close(region_fd_);
    std::filesystem::remove_all(dir_);
  }

  // Starts a break and returns a waiter that yields the continuation's time.
  struct Breaker {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    Clock::time_point started, finished;
    bool wait(std::chrono::milliseconds limit) {
      std::unique_lock lock(mu);
      return cv.wait_for(lock, limit, [&] { return done; });
    }
    double elapsed_ms() const {
      return std::chrono::duration<double, std::milli>(finished - started).count();
    }
  };
  std::shared_ptr<Breaker> start_break(uint32_t reason = SEALFS_BREAK_TRUNCATE) {
    auto b = std::make_shared<Breaker>();
    b->started = Clock::now();
    server_->may_change_layout(ino_, 0, UINT64_MAX, reason, [b](Status s) {
      EXPECT_TRUE(s.is_ok()) << s.to_string();
      std::lock_guard lock(b->mu);
      b->finished = Clock::now();
      b->done = true;
      b->cv.notify_all();
    });
    return b;
  }
  std::string region_bytes(uint64_t file_offset, size_t n) {
    std::string s(n, '\0');
    EXPECT_EQ(pread(region_fd_, s.data(), n, off_t(FakeLayoutSource::region_offset(file_offset))),
              ssize_t(n));
    return s;
  }
  Holder holder(const std::string& mode, uint64_t length = 2 * kMiB) {
    return Holder(dir_ + "/control", {mode, file_, std::to_string(length)});
  }

  std::string dir_, file_;
  int region_fd_ = -1;
  uint64_t ino_ = 0;
  FakeLayoutSource source_;
  testing::RecordingSink sink_;
  std::unique_ptr<LeaseServer> server_;
};

TEST_F(LeaseSocketTest, StoresReachTheRegionAndCooperativeHolderReleasesPromptly) {
  Holder h = holder("coop", kFileSize);  // spans both extents
  std::string mapped = h.line();
  ASSERT_EQ(mapped.rfind("mapped ", 0), 0u) << mapped;
  EXPECT_EQ(region_bytes(0, 32).substr(0, strlen("holder ")), "holder ");
  EXPECT_NE(region_bytes(0, 32).find(std::to_string(h.pid())), std::string::npos);
  EXPECT_EQ(region_bytes(kFileSize - 1, 1), "Z");  // last byte lives in the other extent
  auto b = start_break();
  ASSERT_TRUE(b->wait(std::chrono::milliseconds(900))) << "continuation waited for the deadline";
  EXPECT_EQ(h.line(), "released reason 1");
  EXPECT_TRUE(sink_.quarantined.empty());
  std::printf("[ measure ] cooperative break round trip: %.3f ms\n", b->elapsed_ms());
  RecordProperty("break_round_trip_us", int(b->elapsed_ms() * 1000));
  h.send("exit");
  EXPECT_EQ(h.wait_status(), 0);
}

TEST_F(LeaseSocketTest, BreakRoundTripOverManyBreaks) {
  double total = 0, worst = 0;
  constexpr int kRounds = 20;
  for (int i = 0; i < kRounds; ++i) {
    Holder h = holder("coop");
    ASSERT_EQ(h.line().rfind("mapped ", 0), 0u);
    auto b = start_break();
    ASSERT_TRUE(b->wait(std::chrono::milliseconds(900)));
    total += b->elapsed_ms();
    worst = std::max(worst, b->elapsed_ms());
    h.send("exit");
    h.wait_status();
  }
  std::printf("[ measure ] break round trip over %d holders: mean %.3f ms, worst %.3f ms\n",
              kRounds, total / kRounds, worst);
}

TEST_F(LeaseSocketTest, BreakHandlerMayUnmapFromTheCallbackThread) {
  Holder h = holder("handler");
  ASSERT_EQ(h.line().rfind("mapped ", 0), 0u);
  auto b = start_break(SEALFS_BREAK_WRITE);
  EXPECT_EQ(h.line(), "handler reason 3 unmap 0");
  ASSERT_TRUE(b->wait(std::chrono::milliseconds(900)));
}

TEST_F(LeaseSocketTest, BreakSignalCarriesTheLeaseId) {
  Holder h = holder("signal");
  ASSERT_EQ(h.line().rfind("mapped ", 0), 0u);
  auto b = start_break();
  EXPECT_EQ(h.line(), "signal " + std::to_string(SIGUSR1) + " lease-match 1");
  ASSERT_TRUE(b->wait(std::chrono::milliseconds(900)));
}

TEST_F(LeaseSocketTest, StubbornHolderIsFencedAtDeadlineAndGetsSigbus) {
  Holder h = holder("stubborn");
  ASSERT_EQ(h.line().rfind("mapped ", 0), 0u);
  auto b = start_break();
  ASSERT_TRUE(b->wait(std::chrono::milliseconds(3000)));
  EXPECT_GE(b->elapsed_ms(), 1000.0);
  EXPECT_LT(b->elapsed_ms(), 2000.0);
  // The library acknowledged the REVOKE within the grace: no quarantine.
  EXPECT_TRUE(sink_.quarantined.empty());
  h.send("events");
  EXPECT_EQ(h.line(), "event reason 1");
  EXPECT_EQ(h.line(), "state 2");
  h.send("touch");
  int status = h.wait_status();
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGBUS);
}

TEST_F(LeaseSocketTest, KillPolicySigkillsHolderAndFreesQuarantineAfterExit) {
  Holder h = holder("kill");
  ASSERT_EQ(h.line().rfind("mapped ", 0), 0u);
  auto b = start_break();
  ASSERT_TRUE(b->wait(std::chrono::milliseconds(3000)));
  EXPECT_GE(b->elapsed_ms(), 1000.0);
  int status = h.wait_status();
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  std::unique_lock lock(sink_.mu);
  ASSERT_EQ(sink_.quarantined.size(), 1u);
  EXPECT_EQ(sink_.quarantined[0].holder.pid, uint32_t(h.pid()));
  ASSERT_TRUE(sink_.cv.wait_for(lock, std::chrono::seconds(5), [&] { return !sink_.released.empty(); }));
  EXPECT_EQ(sink_.released[0].pid, uint32_t(h.pid()));
}

TEST_F(LeaseSocketTest, QuarantinePolicyKeepsMappingAndReleasesOnlyAfterExit) {
  Holder h = holder("quarantine");
  ASSERT_EQ(h.line().rfind("mapped ", 0), 0u);
  auto b = start_break();
  ASSERT_TRUE(b->wait(std::chrono::milliseconds(3000)));
  EXPECT_GE(b->elapsed_ms(), 1000.0);
  {
    std::lock_guard lock(sink_.mu);
    ASSERT_EQ(sink_.quarantined.size(), 1u);
    EXPECT_EQ(sink_.quarantined[0].ino, ino_);
    EXPECT_EQ(sink_.quarantined[0].extents.size(), 1u);
    EXPECT_EQ(sink_.quarantined[0].extents[0].region_offset, FakeLayoutSource::region_offset(0));
    EXPECT_TRUE(sink_.released.empty());
  }
  h.send("touch");  // still mapped: its stores land in quarantined blocks
  EXPECT_EQ(h.line(), "touched state 1");
  {
    std::lock_guard lock(sink_.mu);
    EXPECT_TRUE(sink_.released.empty());
  }
  h.send("exit");
  EXPECT_EQ(h.wait_status(), 0);
  std::unique_lock lock(sink_.mu);
  ASSERT_TRUE(sink_.cv.wait_for(lock, std::chrono::seconds(5), [&] { return !sink_.released.empty(); }));
  EXPECT_EQ(sink_.released[0].pid, uint32_t(h.pid()));
}

TEST_F(LeaseSocketTest, SigkilledHolderReleasesItsLease) {
  Holder h = holder("stubborn");
  ASSERT_EQ(h.line().rfind("mapped ", 0), 0u);
  kill(h.pid(), SIGKILL);
  h.wait_status();
  auto b = start_break();
  ASSERT_TRUE(b->wait(std::chrono::milliseconds(900)));
  std::unique_lock lock(sink_.mu);
  // If the close was seen before the exit, the blocks passed through
  // quarantine; either way they are free once the holder is gone.
  ASSERT_TRUE(sink_.cv.wait_for(lock, std::chrono::seconds(5),
                                [&] { return sink_.released.size() == sink_.quarantined.size(); }));
}

TEST_F(LeaseSocketTest, ReadOnlyDescriptorCannotMapWritable) {
  Holder h = holder("rdonly-write");
  std::string l = h.line();
  EXPECT_EQ(l.rfind("result -13 ", 0), 0u) << l;
  EXPECT_NE(l.find("open mode"), std::string::npos) << l;
}

TEST_F(LeaseSocketTest, ReadOnlyLeaseGetsReadOnlyRegion) {
  ASSERT_EQ(pwrite(region_fd_, "R", 1, off_t(FakeLayoutSource::region_offset(0))), 1);
  Holder h = holder("read-only");
  std::string l = h.line();
  EXPECT_NE(l.find("first 82 remap failed"), std::string::npos) << l;
}

TEST_F(LeaseSocketTest, UntrustedUidIsRefused) {
  Holder h = holder("untrusted");
  std::string l = h.line();
  EXPECT_EQ(l.rfind("result -13 ", 0), 0u) << l;
  EXPECT_NE(l.find("not trusted"), std::string::npos) << l;
}

TEST_F(LeaseSocketTest, RangePastEofIsRefused) {
  Holder h = holder("stubborn", kFileSize + 4096);
  std::string l = h.line();
  EXPECT_EQ(l.rfind("result -34 ", 0), 0u) << l;
}

TEST_F(LeaseSocketTest, GrantDuringBreakIsNxioOrWaitsForTheNewGeneration) {
  Holder a = holder("manual");
  std::string mapped = a.line();
  ASSERT_EQ(mapped.rfind("mapped ", 0), 0u) << mapped;
  const uint64_t gen_a = std::stoull(mapped.substr(mapped.find("gen ") + 4));
  auto b = start_break();
  EXPECT_EQ(a.line(), "break reason 1");
  Holder refused = holder("stubborn");
  std::string l = refused.line();
  EXPECT_EQ(l.rfind("result -6 ", 0), 0u) << l;
  Holder waiter = holder("wait");
  EXPECT_EQ(waiter.line(200), "timeout");  // parked until the break commits
  a.send("release");
  EXPECT_EQ(a.line(), "released");
  ASSERT_TRUE(b->wait(std::chrono::milliseconds(900)));
  std::string regranted = waiter.line();
  ASSERT_EQ(regranted.rfind("mapped ", 0), 0u) << regranted;
  EXPECT_GT(std::stoull(regranted.substr(regranted.find("gen ") + 4)), gen_a);
}

TEST_F(LeaseSocketTest, RegistrationsEachGetOneCallbackAndLateOnesAreRefused) {
  Holder h = holder("register");
  ASSERT_EQ(h.line().rfind("mapped ", 0), 0u);
  EXPECT_EQ(h.line(), "registered 0 0");
  auto b = start_break(SEALFS_BREAK_FALLOCATE);
  std::set<std::string> callbacks{h.line(), h.line()};
  EXPECT_EQ(callbacks, (std::set<std::string>{"reg 1 reason 2", "reg 2 reason 2"}));
  EXPECT_EQ(h.line(), "late register -6");
  EXPECT_EQ(h.line(), "released");
  ASSERT_TRUE(b->wait(std::chrono::milliseconds(900)));
}

TEST_F(LeaseSocketTest, ForkedChildDoesNotInheritTheMapping) {
  Holder h = holder("fork");
  ASSERT_EQ(h.line().rfind("mapped ", 0), 0u);
  EXPECT_EQ(h.line(), "child mincore -1 errno 12 unmap 0");
  EXPECT_EQ(h.line(), "parent still sees h");
}

TEST_F(LeaseSocketTest, DaemonDeathFencesEveryMapping) {
  Holder h = holder("stubborn");
  ASSERT_EQ(h.line().rfind("mapped ", 0), 0u);
  server_.reset();
  // The library notices EOF on its own thread; ask until it has.
  std::string state;
  for (int i = 0; i < 100 && state != "state 2"; ++i) {
    h.send("events");
    for (std::string l = h.line(); ; l = h.line()) {
      if (l.rfind("state ", 0) == 0) {
        state = l;
        break;
      }
      EXPECT_EQ(l, "event reason 8");
    }
    if (state != "state 2") usleep(10000);
  }
  ASSERT_EQ(state, "state 2");
  h.send("touch");
  int status = h.wait_status();
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGBUS);
}

TEST_F(LeaseSocketTest, LayoutLeaseInProcess) {
  setenv("SEALFS_CONTROL_SOCKET", (dir_ + "/control").c_str(), 1);
  int fd = open(file_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct sealfs_layout* l = nullptr;
  ASSERT_EQ(sealfs_layout_lease(fd, 0, kFileSize, 0, &l), 0) << sealfs_last_error();
  close(fd);
  struct sealfs_extent ext[4];
  ASSERT_EQ(sealfs_layout_extents(l, ext, 4), 2u);
  EXPECT_EQ(ext[0].file_offset, 0u);
  EXPECT_EQ(ext[0].region_offset, FakeLayoutSource::region_offset(0));
  EXPECT_EQ(ext[1].file_offset, kFileSize / 2);
  EXPECT_EQ(ext[1].length, kFileSize / 2);
  auto b = start_break(SEALFS_BREAK_UNLINK);
  struct pollfd p {sealfs_break_fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  struct sealfs_break_event ev;
  ASSERT_EQ(sealfs_next_break(&ev), 0);
  EXPECT_EQ(ev.map, nullptr);
  EXPECT_EQ(ev.lease_id, sealfs_layout_lease_id(l));
  EXPECT_EQ(ev.reason, SEALFS_BREAK_UNLINK);
  EXPECT_EQ(sealfs_next_break(&ev), -EAGAIN);
  EXPECT_FALSE(b->done);
  ASSERT_EQ(sealfs_layout_release(l), 0);
  ASSERT_TRUE(b->wait(std::chrono::milliseconds(900)));
}

// Raw protocol abuse: every malformed message gets an error and a closed
// connection, and the daemon keeps serving.
class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ~RawClient() { close(fd_); }
  void send_bytes(const void* p, size_t n, int pass_fd = -1) {
    struct iovec iov {const_cast<void*>(p), n};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (pass_fd >= 0) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    ASSERT_EQ(sendmsg(fd_, &msg, MSG_NOSIGNAL), ssize_t(n));
  }
  // The type of the next message (0 when none comes within 5 s).
  uint16_t read_one() {
    wire::Header h{};
    size_t got = 0;
    struct pollfd p {fd_, POLLIN, 0};
    while (got < sizeof(h) && poll(&p, 1, 5000) == 1) {
      ssize_t n = read(fd_, reinterpret_cast<char*>(&h) + got, sizeof(h) - got);
      if (n <= 0) return 0;
      got += size_t(n);
    }
    return got == sizeof(h) ? h.type : 0;
  }
  // Reads until EOF; returns the message types seen.
  std::vector<uint16_t> drain() {
    std::string all;
    char buf[4096];
    struct pollfd p {fd_, POLLIN, 0};
    while (poll(&p, 1, 5000) == 1) {
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) break;
      all.append(buf, size_t(n));
    }
    std::vector<uint16_t> types;
    for (size_t at = 0; at + sizeof(wire::Header) <= all.size();) {
      auto h = wire::load<wire::Header>(all.data() + at);
      types.push_back(h.type);
      if (h.length < sizeof(h)) break;
      at += h.length;
    }
    return types;
  }

 private:
  int fd_ = -1;
};

// STORES: the holder of a writable lease says it stored through it, and
// the file's times move (the source is told); a read-only mapping cannot
// send it, and STORES naming a lease of another connection is ignored
// without closing the sender's connection.
TEST_F(LeaseSocketTest, StoresMessageMovesTheTimesOfTheHoldersFileOnly) {
  setenv("SEALFS_CONTROL_SOCKET", (dir_ + "/control").c_str(), 1);
  int fd = open(file_.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct sealfs_map* m = nullptr;
  ASSERT_EQ(sealfs_map(fd, 0, kFileSize, PROT_READ | PROT_WRITE, 0, &m), 0) << sealfs_last_error();
  struct sealfs_map* ro = nullptr;
  ASSERT_EQ(sealfs_map(fd, 0, kFileSize, PROT_READ, 0, &ro), 0) << sealfs_last_error();
  close(fd);
  EXPECT_EQ(sealfs_note_stores(ro), -EINVAL);
  EXPECT_EQ(sealfs_note_stores(nullptr), -EINVAL);

  // Another connection names both leases (and one that does not exist).
  RawClient other(dir_ + "/control");
  for (uint64_t id : {sealfs_map_lease_id(m), sealfs_map_lease_id(ro), uint64_t{987654}}) {
    struct {
      wire::Header h;
      wire::LeaseRef r;
    } stores{wire::make_header(wire::Type::kStores, sizeof(stores), 0), {id}};
    other.send_bytes(&stores, sizeof(stores));
  }
  struct {
    wire::Header h;
    wire::LeaseRef r;
  } release{wire::make_header(wire::Type::kRelease, sizeof(release), 5), {987654}};
  other.send_bytes(&release, sizeof(release));
  EXPECT_EQ(other.read_one(), uint16_t(wire::Type::kReply)) << "the sender's connection was closed";
  EXPECT_TRUE(source_.stamps().empty());

  ASSERT_EQ(sealfs_note_stores(m), 0);
  for (int i = 0; i < 500 && source_.stamps().empty(); ++i) usleep(10'000);
  EXPECT_EQ(source_.stamps(), std::vector<uint64_t>{ino_});
  sealfs_unmap(ro);
  sealfs_unmap(m);
}

TEST_F(LeaseSocketTest, MalformedMessagesGetAnErrorAndTheDaemonSurvives) {
  const auto error = uint16_t(wire::Type::kError);
  const std::string path = dir_ + "/control";
  {  // garbage
    RawClient c(path);
    char junk[64];
    std::memset(junk, 0xa5, sizeof(junk));
    c.send_bytes(junk, sizeof(junk));
    EXPECT_EQ(c.drain(), std::vector<uint16_t>{error});
  }
  {  // unknown type
    RawClient c(path);
    auto h = wire::make_header(static_cast<wire::Type>(99), sizeof(wire::Header), 7);
    c.send_bytes(&h, sizeof(h));
    EXPECT_EQ(c.drain(), std::vector<uint16_t>{error});
  }
  {  // a daemon-to-client type from a client
    RawClient c(path);
    struct {
      wire::Header h;
      wire::LeaseRef r;
    } m{wire::make_header(wire::Type::kRevoke, sizeof(m), 1), {1}};
    c.send_bytes(&m, sizeof(m));
    EXPECT_EQ(c.drain(), std::vector<uint16_t>{error});
  }
  {  // a length that lies
    RawClient c(path);
    auto h = wire::make_header(wire::Type::kRelease, 1u << 30, 1);
    c.send_bytes(&h, sizeof(h));
    EXPECT_EQ(c.drain(), std::vector<uint16_t>{error});
  }
  {  // MAP without a descriptor
    RawClient c(path);
    struct {
      wire::Header h;
      wire::MapRequest r;
    } m{wire::make_header(wire::Type::kMap, sizeof(m), 1), {}};
    m.r.length = 4096;
    m.r.prot = wire::kProtRead;
    c.send_bytes(&m, sizeof(m));
    EXPECT_EQ(c.drain(), std::vector<uint16_t>{error});
  }
  {  // a well-formed MAP with bad fields gets EINVAL, not a crash
    RawClient c(path);
    struct {
      wire::Header h;
      wire::MapRequest r;
    } m{wire::make_header(wire::Type::kMap, sizeof(m), 1), {}};
    m.r.length = 4096;
    m.r.prot = 0x7;
    m.r.flags = 0x100;
    int fd = open(file_.c_str(), O_RDONLY | O_CLOEXEC);
    c.send_bytes(&m, sizeof(m), fd);
    close(fd);
    // Releasing someone else's lease is an ENOENT, too.
    struct {
      wire::Header h;
      wire::LeaseRef r;
    } rel{wire::make_header(wire::Type::kRelease, sizeof(rel), 2), {12345}};
    c.send_bytes(&rel, sizeof(rel));
  }
  // Still serving.
  Holder h = holder("coop");
  ASSERT_EQ(h.line().rfind("mapped ", 0), 0u);
  auto b = start_break();
  ASSERT_TRUE(b->wait(std::chrono::milliseconds(900)));
}

TEST_F(LeaseSocketTest, DescriptorFromAnotherMountIsRefused) {
  setenv("SEALFS_CONTROL_SOCKET", (dir_ + "/control").c_str(), 1);
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct sealfs_map* m = nullptr;
  EXPECT_EQ(sealfs_map(fd, 0, 4096, PROT_READ, 0, &m), -EXDEV);
  close(fd);
}

}  // namespace
}  // namespace sealfs::lease
