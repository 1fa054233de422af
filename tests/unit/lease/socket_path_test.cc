// The control socket's path: what may be replaced at bind (only a socket
// nobody listens on), and which leftover default directories are removed.
#include "lease/socket_path.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <utime.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lease/lease_server.h"
#include "lease_fakes.h"

namespace sealfs::lease {
namespace {

namespace fsys = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A bound socket at path; listening unless told. The descriptor is returned.
int bind_socket(const std::string& path, bool listening) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
  if (listening) {
    EXPECT_EQ(listen(fd, 4), 0);
  }
  return fd;
}

// A socket file whose listener is gone, as a SIGKILLed daemon leaves it.
void dead_socket(const std::string& path) { close(bind_socket(path, true)); }

// No layout is ever asked for: these servers never see a MAP.
class NoLayouts final : public LayoutSource {
 public:
  std::unique_ptr<Lock> lock_layout(uint64_t) override { return nullptr; }
  Result<LayoutAnswer> layout_for_lease(const Lock&, uint64_t, uint64_t, uint64_t,
                                        uint32_t) override {
    return Status(Code::kInvalid, "unused");
  }
  RegionInfo region() const override { return RegionInfo{}; }
};

class SocketPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sealfs-sockpath-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fsys::remove_all(dir_); }

  Result<std::unique_ptr<LeaseServer>> start_at(const std::string& path) {
    ServerOptions options;
    options.socket_path = path;
    options.daemon_uid = geteuid();
    return LeaseServer::start(options, layouts_, &sink_);
  }

  std::string dir_;
  NoLayouts layouts_;
  testing::RecordingSink sink_;
};

TEST_F(SocketPathTest, RegularFileIsRefusedAndLeftIntact) {
  const std::string path = dir_ + "/precious";
  std::ofstream(path) << "do not delete\n";
  Status free = socket_path_free(path);
  EXPECT_EQ(free.code(), Code::kExists);
  EXPECT_NE(free.message().find("is a regular file, not a socket"), std::string::npos)
      << free.message();
  // The server refuses to bind there, and its failed start removes nothing.
  auto server = start_at(path);
  ASSERT_FALSE(server.is_ok());
  EXPECT_EQ(server.status().code(), Code::kExists) << server.status().to_string();
  EXPECT_EQ(slurp(path), "do not delete\n");
}

TEST_F(SocketPathTest, DirectoryAndSymlinkAreRefused) {
  ASSERT_EQ(mkdir((dir_ + "/d").c_str(), 0700), 0);
  EXPECT_EQ(socket_path_free(dir_ + "/d").code(), Code::kExists);
  std::ofstream(dir_ + "/target") << "x";
  ASSERT_EQ(symlink((dir_ + "/target").c_str(), (dir_ + "/link").c_str()), 0);
  EXPECT_EQ(clear_dead_socket(dir_ + "/link").code(), Code::kExists);
  EXPECT_TRUE(fsys::is_symlink(dir_ + "/link"));
  EXPECT_EQ(slurp(dir_ + "/target"), "x");
}

TEST_F(SocketPathTest, LiveSocketIsBusyAndKept) {
  const std::string path = dir_ + "/control";
  auto first = start_at(path);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  EXPECT_EQ(socket_path_free(path).code(), Code::kBusy);
  auto second = start_at(path);
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), Code::kBusy) << second.status().to_string();
  // The first server still owns its path and is reachable.
  struct stat st {};
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(socket_path_free(path).code(), Code::kBusy);
}

TEST_F(SocketPathTest, DeadSocketIsReplaced) {
  const std::string path = dir_ + "/control";
  dead_socket(path);
  EXPECT_TRUE(socket_path_free(path).is_ok());
  auto server = start_at(path);
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  EXPECT_EQ(socket_path_free(path).code(), Code::kBusy);
  server->reset();
  EXPECT_FALSE(fsys::exists(path)) << "the server removes the socket it bound";
}

TEST_F(SocketPathTest, OnlyOurDeadDefaultDirectoriesAreRemoved) {
  auto make_dir = [&](const std::string& name) {
    EXPECT_EQ(mkdir((dir_ + "/" + name).c_str(), 0755), 0) << name;
    return dir_ + "/" + name;
  };
  dead_socket(make_dir("sealfs.dead01") + "/control");
  int live = bind_socket(make_dir("sealfs.live01") + "/control", true);
  // Ours but holding something we never put there.
  const std::string extra = make_dir("sealfs.xtra01");
  dead_socket(extra + "/control");
  std::ofstream(extra + "/notes") << "keep";
  // Not our pattern.
  dead_socket(make_dir("sealfs-other") + "/control");
  dead_socket(make_dir("sealfs.toolong1") + "/control");
  // A symlink to a dead directory elsewhere is not followed.
  const std::string elsewhere = make_dir("elsewhere");
  dead_socket(elsewhere + "/control");
  ASSERT_EQ(symlink(elsewhere.c_str(), (dir_ + "/sealfs.link01").c_str()), 0);
  // Empty: a daemon may be about to bind; removed only once it is old.
  make_dir("sealfs.new001");
  const std::string old_empty = make_dir("sealfs.old001");
  struct utimbuf long_ago {time(nullptr) - 3600, time(nullptr) - 3600};
  ASSERT_EQ(utime(old_empty.c_str(), &long_ago), 0);
  // Another user's (root only: chown needs privilege).
  const bool as_root = geteuid() == 0;
  if (as_root) {
    const std::string theirs = make_dir("sealfs.them01");
    dead_socket(theirs + "/control");
    ASSERT_EQ(chown(theirs.c_str(), 12345, 12345), 0);
  }

  EXPECT_EQ(remove_dead_socket_dirs(dir_), 2);
  EXPECT_FALSE(fsys::exists(dir_ + "/sealfs.dead01"));
  EXPECT_FALSE(fsys::exists(old_empty));
  for (const char* kept : {"sealfs.live01/control", "sealfs.xtra01/control", "sealfs.xtra01/notes",
                           "sealfs-other/control", "sealfs.toolong1/control", "sealfs.new001",
                           "elsewhere/control"}) {
    EXPECT_TRUE(fsys::exists(fsys::symlink_status(dir_ + "/" + kept))) << kept;
  }
  EXPECT_TRUE(fsys::is_symlink(dir_ + "/sealfs.link01"));
  if (as_root) {
    EXPECT_TRUE(fsys::exists(dir_ + "/sealfs.them01/control"));
  }
  close(live);
}

}  // namespace
}  // namespace sealfs::lease
