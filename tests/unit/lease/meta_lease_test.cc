// The lease engine over real files, without FUSE: a formatted region file
// (RegionPmem2), the metadata layer, MetaLayoutSource/MetaQuarantineSink and
// real holder processes (lease_holder "inspect"). The holder opens a host
// file only as its capability; a thin translation maps that file's st_ino
// to an inode of the sealfs image, as the FUSE mount does with one ino space.
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "lease/lease_server.h"
#include "lease/meta_layout_source.h"
#include "lease/peer.h"
#include "media/formatter.h"
#include "media/region_pmem2.h"
#include "meta/holder_liveness.h"
#include "sealfs/sealfs.h"
#include "support/descriptors.h"
#include "support/piped_child.h"

namespace sealfs::lease {
namespace {

constexpr uint64_t kKiB = 1024, kMiB = 1024 * kKiB;
constexpr uint64_t kAlign = 64 * kKiB;  // device alignment given to mkfs

uint64_t fnv(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Host st_ino <-> sealfs inode.
struct InoMap {
  std::map<uint64_t, uint64_t> to_meta, to_host;
  void link(uint64_t host, uint64_t meta) {
    to_meta[host] = meta;
    to_host[meta] = host;
  }
};

class TranslatingSource final : public LayoutSource {
 public:
  TranslatingSource(LayoutSource& inner, const InoMap& map) : inner_(inner), map_(map) {}
  std::unique_ptr<Lock> lock_layout(uint64_t ino) override { return inner_.lock_layout(meta(ino)); }
  Result<LayoutAnswer> layout_for_lease(const Lock& held, uint64_t ino, uint64_t offset,
                                        uint64_t length, uint32_t flags) override {
    return inner_.layout_for_lease(held, meta(ino), offset, length, flags);
  }
  RegionInfo region() const override { return inner_.region(); }

 private:
  uint64_t meta(uint64_t host) const {
    auto it = map_.to_meta.find(host);
    return it == map_.to_meta.end() ? 0 : it->second;
  }
  LayoutSource& inner_;
  const InoMap& map_;
};

// The daemon's gate: a sealfs inode is sealed when the engine says so.
class EngineGate final : public LayoutGate {
 public:
  explicit EngineGate(const InoMap& map) : map_(map) {}
  bool sealed(Ino ino) override {
    auto it = map_.to_host.find(ino);
    return core != nullptr && it != map_.to_host.end() && core->sealed(it->second);
  }
  LeaseCore* core = nullptr;

 private:
  const InoMap& map_;
};

// Forwards to the real sink until the "daemon" dies.
class RelaySink final : public QuarantineSink {
 public:
  Status pin(const HolderId& h, uint64_t id, uint64_t ino, const std::vector<MapExtent>& e) override {
    return target ? target->pin(h, id, ino, e) : Status::ok();
  }
  void unpin(const HolderId& h, uint64_t id) override {
    if (target) target->unpin(h, id);
  }
  Status quarantine(const HolderId& h, uint64_t ino, const std::vector<MapExtent>& e) override {
    return target ? target->quarantine(h, ino, e) : Status::ok();
  }
  void release_holder(const HolderId& h) override {
    if (target) target->release_holder(h);
  }
  QuarantineSink* target = nullptr;
};

// A holder process (SEALFS_LEASE_HOLDER inspect FILE LENGTH FLAGS) talking
// through pipes; line() waits as long as it takes.
class HolderProc : public testing_support::PipedChild {
 public:
  HolderProc(const std::string& socket, const std::string& file, uint64_t length, unsigned flags)
      : PipedChild(holder_argv(file, length, flags), {{"SEALFS_CONTROL_SOCKET", socket}}) {}
  std::string line() { return PipedChild::line(-1); }
  void send(const std::string& cmd) { EXPECT_TRUE(PipedChild::send(cmd)) << cmd; }
  void finish() {
    send("exit");
    wait_status();
  }
  HolderId id() const { return {uint32_t(pid()), *process_start_time(uint32_t(pid()))}; }

 private:
  static std::vector<std::string> holder_argv(const std::string& file, uint64_t length,
                                              unsigned flags) {
    const char* exe = getenv("SEALFS_LEASE_HOLDER");
    return {exe != nullptr ? exe : "", "inspect", file, std::to_string(length),
            std::to_string(flags)};
  }
};

class MetaLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(getenv("SEALFS_LEASE_HOLDER"), nullptr);
    char tmpl[] = "/tmp/sealfs-metalease-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    region_path_ = dir_ + "/region";
    int fd = open(region_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 32 * kMiB), 0);
    close(fd);
    auto region = RegionPmem2::open(region_path_, {});
    ASSERT_TRUE(region.is_ok()) << region.status().to_string();
    FormatOptions options;
    options.layout.device_alignment = kAlign;
    options.layout.inode_count = 256;
    options.layout.journal_bytes = 2 * kMiB;
    auto sb = Formatter::format(**region, options);
    ASSERT_TRUE(sb.is_ok()) << sb.status().to_string();
    region->reset();
    mount();
    start_server();
  }
  void TearDown() override {
    server_.reset();
    if (fs_) {
      EXPECT_TRUE(fs_->unmount().is_ok());
    }
    fs_.reset();
    if (host_fd_ >= 0) close(host_fd_);
    std::filesystem::remove_all(dir_);
  }
  void mount() {
    auto region = RegionPmem2::open(region_path_, {});
    ASSERT_TRUE(region.is_ok()) << region.status().to_string();
    region_fd_ = (*region)->fd();
    MountOptions options;
    options.gate = &gate_;
    auto fs = Filesystem::mount(std::move(*region), options);
    ASSERT_TRUE(fs.is_ok()) << fs.status().to_string();
    fs_ = std::move(*fs);
    meta_source_ = std::make_unique<MetaLayoutSource>(*fs_, region_fd_, 0);
    sink_ = std::make_unique<MetaQuarantineSink>(*fs_);
    relay_.target = sink_.get();
    source_ = std::make_unique<TranslatingSource>(*meta_source_, inos_);
  }
  void start_server() {
    ServerOptions options;
    options.socket_path = dir_ + "/control";
    options.mnt_id = *mount_id_of(host_fd());
    options.daemon_uid = geteuid();
    options.lease.break_time_ns = 300'000'000;
    options.lease.revoke_grace_ns = 100'000'000;
    auto server = LeaseServer::start(options, *source_, &relay_);
    ASSERT_TRUE(server.is_ok()) << server.status().to_string();
    server_ = std::move(*server);
    gate_.core = &server_->core();
  }
  // A host file that stands for the sealfs file `name` (created here).
  std::string file(const std::string& name, uint64_t* meta_ino) {
    std::string path = dir_ + "/" + name;
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    fstat(fd, &st);
    close(fd);
    auto a = fs_->create(kRootIno(), name, S_IFREG | 0644, O_RDWR, Cred{});
    EXPECT_TRUE(a.is_ok()) << a.status().to_string();
    *meta_ino = a->ino;
    fs_->release(a->ino);
    inos_.link(st.st_ino, a->ino);
    return path;
  }
  static Ino kRootIno() { return 1; }
  int host_fd() {
    if (host_fd_ < 0) host_fd_ = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return host_fd_;
  }
  std::string pattern(uint64_t length, char seed) {
    std::string s(length, '\0');
    for (uint64_t i = 0; i < length; ++i) s[i] = char(seed + i % 61);
    return s;
  }
  void write_all(Ino ino, uint64_t offset, const std::string& s, size_t piece = 1 << 30) {
    for (size_t at = 0; at < s.size(); at += piece) {
      size_t n = std::min(piece, s.size() - at);
      auto w = fs_->write(ino, offset + at, s.data() + at, n, false);
      ASSERT_TRUE(w.is_ok()) << w.status().to_string();
    }
  }
  std::string read_all(Ino ino, uint64_t offset, uint64_t length) {
    std::string out(length, '\0');
    auto n = fs_->read_copy(ino, offset, out.data(), length);
    EXPECT_TRUE(n.is_ok());
    out.resize(n.is_ok() ? *n : 0);
    return out;
  }
  // Runs a layout change through the engine's gate, as the daemon does:
  // the change runs (on the engine thread or here) once no lease blocks it.
  Status change_layout(Ino ino, const std::function<Status()>& change) {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Status> result;
    server_->may_change_layout(inos_.to_host.at(ino), 0, UINT64_MAX, SEALFS_BREAK_TRUNCATE,
                               [&](Status s) {
                                 Status r = s.is_ok() ? change() : s;
                                 std::lock_guard lock(mu);
                                 result = r;
                                 cv.notify_all();
                               });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return result.has_value(); });
    return *result;
  }

  std::string dir_, region_path_;
  int region_fd_ = -1, host_fd_ = -1;
  InoMap inos_;
  EngineGate gate_{inos_};
  std::unique_ptr<Filesystem> fs_;
  std::unique_ptr<MetaLayoutSource> meta_source_;
  RelaySink relay_;
  std::unique_ptr<MetaQuarantineSink> sink_;
  std::unique_ptr<TranslatingSource> source_;
  std::unique_ptr<LeaseServer> server_;
};

TEST_F(MetaLeaseTest, GrantOnWrittenFileShowsItsBytes) {
  Ino ino;
  std::string path = file("full", &ino);
  const std::string data = pattern(256 * kKiB, 'a');
  write_all(ino, 0, data);
  HolderProc h(server_->socket_path(), path, data.size(), 0);
  char expect[64];
  snprintf(expect, sizeof(expect), "sum %llx", (unsigned long long)fnv(data));
  std::string got = h.line();
  EXPECT_NE(got.find(expect), std::string::npos) << got;
  EXPECT_TRUE(gate_.sealed(ino));
  // A layout change without the engine fails, with no side effect.
  SetAttr shrink;
  shrink.valid = SetAttr::kSize;
  EXPECT_EQ(fs_->setattr(ino, shrink).status().code(), Code::kLayoutSealed);
  h.finish();
}

TEST_F(MetaLeaseTest, RefusalsAreDistinct) {
  Ino ino;
  std::string path = file("sparse", &ino);
  write_all(ino, 0, pattern(kAlign, 'b'));
  write_all(ino, 2 * kAlign, pattern(kAlign, 'c'));  // hole at [kAlign, 2 kAlign)
  ASSERT_TRUE(fs_->fallocate(ino, 0, 3 * kAlign, kAlign).is_ok());  // unwritten
  auto refusal = [&](uint64_t offset, uint64_t length, uint32_t flags, uint64_t* where) {
    auto lock = fs_->lock_layout(ino);
    EXPECT_TRUE(lock.is_ok());
    return fs_->layout_extents(**lock, offset, length, flags, where).status().code();
  };
  uint64_t where = 0;
  EXPECT_EQ(refusal(0, 2 * kAlign, 0, &where), Code::kNoData);
  EXPECT_EQ(where, kAlign);
  EXPECT_EQ(refusal(3 * kAlign, kAlign, 0, &where), Code::kAgain);
  EXPECT_EQ(where, 3 * kAlign);
  EXPECT_EQ(refusal(0, 5 * kAlign, 0, &where), Code::kRange);
  // Small writes land in unaligned fragments (after a one-block file).
  Ino pad;
  file("pad", &pad);
  write_all(pad, 0, "p");
  Ino frag;
  file("frag", &frag);
  for (int i = 0; i < 4; ++i) write_all(frag, i * 4096, pattern(4096, 'd'));
  {
    auto lock = fs_->lock_layout(frag);
    ASSERT_TRUE(lock.is_ok());
    auto r = fs_->layout_extents(**lock, 0, 16 * kKiB, 0);
    EXPECT_EQ(r.status().code(), Code::kInvalid) << r.status().to_string();
  }
  // Through the protocol: each refusal is its own errno + detail.
  HolderProc hole(server_->socket_path(), path, 2 * kAlign, 0);
  EXPECT_EQ(hole.line().rfind("result " + std::to_string(-ENODATA), 0), 0u);
  HolderProc past(server_->socket_path(), path, 8 * kAlign, 0);
  EXPECT_EQ(past.line().rfind("result " + std::to_string(-ERANGE), 0), 0u);
}

TEST_F(MetaLeaseTest, AllocateGivesZerosNeverStaleData) {
  // Fill the free space with a pattern, free it, then ALLOCATE a sparse file.
  Ino old;
  file("old", &old);
  write_all(old, 0, std::string(4 * kMiB, 'X'));
  ASSERT_TRUE(fs_->unlink(kRootIno(), "old").is_ok());
  fs_->forget(old, 1);
  Ino ino;
  std::string path = file("sparse", &ino);
  SetAttr grow;
  grow.valid = SetAttr::kSize;
  grow.size = 2 * kMiB;
  ASSERT_TRUE(fs_->setattr(ino, grow).is_ok());
  ASSERT_TRUE(fs_->fallocate(ino, FALLOC_FL_KEEP_SIZE, 0, kMiB).is_ok());  // half unwritten
  HolderProc h(server_->socket_path(), path, 2 * kMiB, SEALFS_MAP_ALLOCATE);
  char expect[64];
  snprintf(expect, sizeof(expect), "sum %llx",
           (unsigned long long)fnv(std::string(2 * kMiB, '\0')));
  std::string got = h.line();
  EXPECT_NE(got.find(expect), std::string::npos) << got;
  EXPECT_EQ(read_all(ino, 0, 2 * kMiB), std::string(2 * kMiB, '\0'));
  h.finish();
}

TEST_F(MetaLeaseTest, RelocateAlignsAndKeepsBytes) {
  Ino pad;
  file("pad", &pad);
  write_all(pad, 0, "p");
  Ino ino;
  std::string path = file("frag", &ino);
  const std::string data = pattern(128 * kKiB, 'e');
  write_all(ino, 0, data, 4096);  // 4 KiB pieces: unaligned fragments
  HolderProc refused(server_->socket_path(), path, data.size(), 0);
  EXPECT_EQ(refused.line().rfind("result " + std::to_string(-EINVAL), 0), 0u);
  HolderProc h(server_->socket_path(), path, data.size(), SEALFS_MAP_RELOCATE);
  char expect[64];
  snprintf(expect, sizeof(expect), "sum %llx", (unsigned long long)fnv(data));
  std::string got = h.line();
  EXPECT_NE(got.find(expect), std::string::npos) << got;
  EXPECT_EQ(read_all(ino, 0, data.size()), data);
  auto lock = fs_->lock_layout(ino);
  auto pieces = fs_->layout_extents(**lock, 0, data.size(), 0);
  ASSERT_TRUE(pieces.is_ok()) << pieces.status().to_string();
  for (const LayoutPiece& p : *pieces) EXPECT_EQ(p.region_offset % kAlign, 0u);
  lock->reset();
  h.finish();
}

TEST_F(MetaLeaseTest, RevokedHolderWritesLandInQuarantineNotInNewFile) {
  Ino ino;
  std::string path = file("leased", &ino);
  const uint64_t size = 1 * kMiB;
  write_all(ino, 0, pattern(size, 'f'));
  HolderProc h(server_->socket_path(), path, size, SEALFS_MAP_POLICY_QUARANTINE);
  ASSERT_EQ(h.line().rfind("mapped", 0), 0u);
  const HolderId holder = h.id();
  ASSERT_EQ(kill(h.pid(), SIGSTOP), 0);
  // The truncate waits for the break deadline, then its blocks leave the
  // file into quarantine.
  SetAttr shrink;
  shrink.valid = SetAttr::kSize;
  shrink.size = 0;
  Status s = change_layout(ino, [&] { return fs_->setattr(ino, shrink).status(); });
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  auto q = fs_->quarantine_entries();
  uint64_t quarantined = 0;
  for (auto& e : q) {
    EXPECT_EQ(e.holder, (Holder{holder.pid, holder.start_time}));
    quarantined += e.extent.count * 4096;
  }
  EXPECT_EQ(quarantined, size);
  // A new file takes all the free space: none of the quarantined blocks.
  Ino fresh;
  file("fresh", &fresh);
  // (less a margin for the new file's own extent blocks)
  const uint64_t free_bytes = fs_->statfs().free_blocks * 4096 - 64 * kKiB;
  const std::string fill(free_bytes, 'N');
  write_all(fresh, 0, fill);
  // The stale holder writes through its old mapping...
  ASSERT_EQ(kill(h.pid(), SIGCONT), 0);
  h.send("fill Q");
  EXPECT_EQ(h.line(), "filled");
  // ...and the new file is untouched.
  EXPECT_EQ(read_all(fresh, 0, free_bytes) == fill, true);
  // The holder exits: its blocks are freed.
  const uint64_t before = fs_->statfs().free_blocks;
  h.finish();
  for (int i = 0; i < 500 && !fs_->quarantine_entries().empty(); ++i) usleep(10000);
  EXPECT_TRUE(fs_->quarantine_entries().empty());
  EXPECT_EQ(fs_->statfs().free_blocks, before + size / 4096);
}

TEST_F(MetaLeaseTest, RestartKeepsLiveHoldersBlocksOutOfFreeSpace) {
  Ino ino;
  std::string path = file("leased", &ino);
  const uint64_t size = 512 * kKiB;
  write_all(ino, 0, pattern(size, 'g'));
  HolderProc h(server_->socket_path(), path, size, 0);
  ASSERT_EQ(h.line().rfind("mapped", 0), 0u);
  const HolderId id = h.id();
  const Holder holder{id.pid, id.start_time};
  ASSERT_EQ(fs_->restored_holders().size(), 0u);
  // The daemon dies: no release reaches the filesystem. (The server goes
  // first; its holder's pins are then dropped by nothing.)
  gate_.core = nullptr;
  relay_.target = nullptr;  // the engine's unpin must not reach the filesystem
  server_.reset();
  ASSERT_TRUE(fs_->unmount().is_ok());
  fs_.reset();
  mount();
  ASSERT_EQ(fs_->restored_holders(), std::vector<Holder>{holder});
  // Truncating the file now quarantines the pinned blocks.
  SetAttr shrink;
  shrink.valid = SetAttr::kSize;
  shrink.size = 0;
  const uint64_t free_before = fs_->statfs().free_blocks;
  ASSERT_TRUE(fs_->setattr(ino, shrink).is_ok());
  EXPECT_EQ(fs_->statfs().free_blocks, free_before);
  auto q = fs_->quarantine_entries();
  ASSERT_FALSE(q.empty());
  EXPECT_EQ(q[0].holder, holder);
  // The holder goes; the daemon releases it.
  h.finish();
  ASSERT_TRUE(fs_->release_holder(holder).is_ok());
  EXPECT_TRUE(fs_->quarantine_entries().empty());
  EXPECT_EQ(fs_->statfs().free_blocks, free_before + size / 4096);
}


// Device dax maps whole alignment units: a range ending inside one is
// refused (the client's mmap would fail, or expose the next file's bytes),
// while an ordinary file or fsdax maps the short tail.
TEST_F(MetaLeaseTest, DevdaxRefusesARangeEndingInsideAnAlignmentUnit) {
  Ino ino;
  file("dd", &ino);
  const uint64_t size = 2 * kAlign + kAlign / 2;
  write_all(ino, 0, pattern(size, 'd'));
  MetaLayoutSource devdax(*fs_, region_fd_, wire::kRegionDevdax);
  MetaLayoutSource plain(*fs_, region_fd_, 0);
  {
    auto lock = devdax.lock_layout(ino);
    auto tail = devdax.layout_for_lease(*lock, ino, 0, size, wire::kMapRelocate);
    ASSERT_TRUE(tail.is_ok()) << tail.status().to_string();
    EXPECT_EQ(tail->refusal, wire::Refusal::kDevdaxLength);
    EXPECT_EQ(tail->where, size);
    auto whole_units = devdax.layout_for_lease(*lock, ino, 0, 2 * kAlign, wire::kMapRelocate);
    ASSERT_TRUE(whole_units.is_ok());
    EXPECT_EQ(whole_units->refusal, wire::Refusal::kNone);
    auto odd_start = devdax.layout_for_lease(*lock, ino, kAlign / 2, kAlign, wire::kMapRelocate);
    ASSERT_TRUE(odd_start.is_ok());
    EXPECT_EQ(odd_start->refusal, wire::Refusal::kDevdaxLength);
  }
  auto lock = plain.lock_layout(ino);
  auto tail = plain.layout_for_lease(*lock, ino, 0, size, wire::kMapRelocate);
  ASSERT_TRUE(tail.is_ok());
  EXPECT_EQ(tail->refusal, wire::Refusal::kNone);
}

// A holder whose liveness /proc cannot tell (here: out of descriptors) is
// alive: its quarantined blocks must not be reused while it may still map
// them. Only "gone" or another start time makes it dead.
TEST(HolderLivenessTest, CannotTellIsAliveNotDead) {
  const auto self = static_cast<uint32_t>(getpid());
  Result<uint64_t> started = process_start_time(self);
  ASSERT_TRUE(started.is_ok());
  EXPECT_TRUE(holder_process_alive(self, *started));
  EXPECT_FALSE(holder_process_alive(self, *started + 1));  // a successor under this pid
  bool alive_when_unknown = false;
  testing_support::with_no_free_descriptor(
      [&] { alive_when_unknown = holder_process_alive(self, *started + 1); });
  EXPECT_TRUE(alive_when_unknown);
}

}  // namespace
}  // namespace sealfs::lease
