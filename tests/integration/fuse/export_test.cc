// File handles on a real mount: name_to_handle_at(2) then
// open_by_handle_at(2) after the kernel has evicted the inode and after a
// daemon restart, for files and directories, and ESTALE for a file that was
// deleted, whether or not its inode number was reused since.
//
// The kernel finds an inode it no longer holds by asking the daemon for "."
// of the handle's node id (fs/fuse/inode.c fuse_get_dentry) and reconnects
// a directory by asking ".." of it; the daemon logs each such lookup at
// debug level (the fixture's level), which proves the inode was evicted and
// the answer came from the daemon, not from the kernel's cache.
//
// open_by_handle_at needs CAP_DAC_READ_SEARCH, and dropping the caches
// root: the suite runs as root.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "mount_fixture.h"

namespace sealfs::itest {
namespace {

using namespace std::chrono_literals;

// The handle FUSE encodes (fuse_encode_fh): node id high and low words,
// then the inode's generation; type 0x81 without the parent.
struct Handle {
  std::vector<unsigned char> storage;
  file_handle* fh() { return reinterpret_cast<file_handle*>(storage.data()); }
  const file_handle* fh() const { return reinterpret_cast<const file_handle*>(storage.data()); }
  uint32_t word(int i) const {
    uint32_t w = 0;
    std::memcpy(&w, fh()->f_handle + 4 * i, sizeof(w));
    return w;
  }
  uint64_t node_id() const { return (uint64_t{word(0)} << 32) | word(1); }
  uint32_t generation() const { return word(2); }
  bool operator==(const Handle& o) const { return storage == o.storage; }
};

class ExportTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_EQ(geteuid(), 0u) << "open_by_handle_at and drop_caches need root";
    ASSERT_NO_FATAL_FAILURE(format_and_mount());
  }

  Handle handle_of(const std::string& rel) {
    Handle h;
    h.storage.resize(sizeof(file_handle) + MAX_HANDLE_SZ);
    h.fh()->handle_bytes = MAX_HANDLE_SZ;
    int mount_id = 0;
    EXPECT_EQ(name_to_handle_at(AT_FDCWD, path(rel).c_str(), h.fh(), &mount_id, 0), 0)
        << rel << ": " << std::strerror(errno);
    h.storage.resize(sizeof(file_handle) + h.fh()->handle_bytes);
    EXPECT_EQ(h.fh()->handle_type, 0x81) << rel;
    EXPECT_EQ(h.fh()->handle_bytes, 12u) << rel;
    return h;
  }

  // An fd for the handle through the mount as it is now, or -1 with errno.
  int open_handle(const Handle& h, int flags) {
    int mount_fd = open(mountpoint().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    EXPECT_GE(mount_fd, 0) << std::strerror(errno);
    Handle copy = h;
    int fd = open_by_handle_at(mount_fd, copy.fh(), flags | O_CLOEXEC);
    int saved = errno;
    close(mount_fd);
    errno = saved;
    return fd;
  }

  // Unused dentries and inodes go, and with them the kernel's references
  // (FORGET): the next use of a handle must ask the daemon. An inode used
  // recently survives one pass of the shrinker (I_REFERENCED gives it a
  // second chance), hence three.
  static void evict_inodes() {
    sync();
    for (int pass = 0; pass < 3; ++pass) {
      int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
      ASSERT_GE(fd, 0) << std::strerror(errno);
      ASSERT_EQ(write(fd, "2", 1), 1) << std::strerror(errno);
      close(fd);
    }
  }

  // How many times the kernel asked the daemon for `name` ("." or "..") of
  // inode `ino`.
  size_t asked(const std::string& name, uint64_t ino) const {
    return log_count("lookup of '" + name + "' by inode number " + std::to_string(ino) + "\n");
  }

  uint64_t free_inodes() const {
    struct statvfs sv {};
    EXPECT_EQ(statvfs(mountpoint().c_str(), &sv), 0) << std::strerror(errno);
    return sv.f_ffree;
  }
  bool wait_free_inodes(uint64_t expected) const {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (free_inodes() != expected) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  static uint64_t ino_of(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(lstat(p.c_str(), &st), 0) << p << ": " << std::strerror(errno);
    return st.st_ino;
  }
  static std::string read_fd(int fd) {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  static std::string read_at(int dirfd, const char* name) {
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << name << ": " << std::strerror(errno);
    if (fd < 0) return {};
    std::string out = read_fd(fd);
    close(fd);
    return out;
  }
  static uint64_t ino_at(int dirfd, const char* name) {
    struct stat st {};
    EXPECT_EQ(fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW), 0) << name;
    return st.st_ino;
  }
};

TEST_F(ExportTest, FileHandleOpensAfterTheInodeIsEvicted) {
  write_file(path("f"), "file contents");
  Handle h = handle_of("f");
  EXPECT_EQ(h.node_id(), ino_of(path("f"))) << "the node id is the inode number";
  EXPECT_NE(h.generation(), 0u) << "the create reply carries the generation";

  ASSERT_NO_FATAL_FAILURE(evict_inodes());
  const size_t before = asked(".", h.node_id());
  int fd = open_handle(h, O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(read_fd(fd), "file contents");
  close(fd);
  EXPECT_GT(asked(".", h.node_id()), before) << "the inode was not evicted: nothing tested";
  // Opened by handle, then written through the handle's fd: the same file.
  fd = open_handle(h, O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(write(fd, "!", 1), 1);
  close(fd);
  EXPECT_EQ(read_file(path("f")), "file contents!");
  EXPECT_TRUE(handle_of("f") == h);

  // The root's handle: node id 1, generation 0 (the kernel's own root inode).
  Handle root = handle_of("");
  EXPECT_EQ(root.node_id(), 1u);
  EXPECT_EQ(root.generation(), 0u);
}

TEST_F(ExportTest, DirectoryHandleReconnectsThroughDotDotAfterEviction) {
  ASSERT_EQ(mkdir(path("a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(path("a/b").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(path("a/b/c").c_str(), 0755), 0);
  write_file(path("a/b/c/child"), "child contents");
  Handle c = handle_of("a/b/c");
  const uint64_t b_ino = ino_of(path("a/b"));
  const uint64_t a_ino = ino_of(path("a"));

  ASSERT_NO_FATAL_FAILURE(evict_inodes());
  const size_t up_c = asked("..", c.node_id());
  const size_t up_b = asked("..", b_ino);
  int fd = open_handle(c, O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(read_at(fd, "child"), "child contents");
  EXPECT_EQ(ino_at(fd, ".."), b_ino);
  // The kernel climbed to the root to connect the directory.
  EXPECT_GT(asked("..", c.node_id()), up_c);
  EXPECT_GT(asked("..", b_ino), up_b);
  // And the names it found on the way are the real ones.
  int up = openat(fd, "../..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(up, 0) << std::strerror(errno);
  EXPECT_EQ(ino_at(up, "."), a_ino);
  EXPECT_EQ(ino_at(up, "b"), b_ino);
  close(up);
  // A new file through the reconnected directory is visible by its path.
  int nf = openat(fd, "made", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(nf, 0) << std::strerror(errno);
  ASSERT_EQ(write(nf, "m", 1), 1);
  close(nf);
  close(fd);
  EXPECT_EQ(read_file(path("a/b/c/made")), "m");
}

TEST_F(ExportTest, HandlesSurviveADaemonRestart) {
  write_file(path("f"), "before the restart");
  ASSERT_EQ(mkdir(path("old").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(path("old/d").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(path("new").c_str(), 0755), 0);
  write_file(path("old/d/inside"), "inside d");
  Handle f = handle_of("f");
  Handle d = handle_of("old/d");
  // Moved after the handle was taken: the handle names the directory, not
  // the path, and ".." must follow the move across the restart.
  ASSERT_EQ(rename(path("old/d").c_str(), path("new/d").c_str()), 0);
  const uint64_t new_ino = ino_of(path("new"));

  ASSERT_NO_FATAL_FAILURE(remount());
  int fd = open_handle(f, O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(read_fd(fd), "before the restart");
  close(fd);
  fd = open_handle(d, O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(read_at(fd, "inside"), "inside d");
  EXPECT_EQ(ino_at(fd, ".."), new_ino);
  close(fd);

  // The same handles come from the paths after the restart: the node id and
  // generation are the media's, and a readdirplus entry carries them as a
  // lookup does.
  ASSERT_NO_FATAL_FAILURE(remount());
  ASSERT_EQ(read_file(path("f")), "before the restart");  // nothing else looked up yet
  int root = open(mountpoint().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(root, 0);
  EXPECT_EQ(ino_at(root, "new"), new_ino);
  close(root);
  EXPECT_TRUE(handle_of("f") == f);
  EXPECT_TRUE(handle_of("new/d") == d);
}

// Unlinked but still open somewhere: the kernel holds the inode and opens it
// from the handle without asking the daemon (as ext4 does with an inode in
// its cache); once the last holder closes it, the handle is stale.
TEST_F(ExportTest, AnUnlinkedFileOpensByHandleOnlyWhileHeldOpen) {
  const uint64_t all_free = free_inodes();
  write_file(path("held"), "held open");
  Handle held = handle_of("held");
  int holder = open(path("held").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(holder, 0) << std::strerror(errno);
  ASSERT_EQ(unlink(path("held").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(evict_inodes());
  int fd = open_handle(held, O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(read_fd(fd), "held open");
  close(fd);
  close(holder);
  ASSERT_TRUE(wait_free_inodes(all_free));
  ASSERT_NO_FATAL_FAILURE(evict_inodes());
  errno = 0;
  EXPECT_EQ(open_handle(held, O_RDONLY), -1) << "a deleted file opened";
  EXPECT_EQ(errno, ESTALE) << std::strerror(errno);
}

TEST_F(ExportTest, ADeletedFileIsStaleEvenWhenItsNumberIsReused) {
  const uint64_t all_free = free_inodes();
  write_file(path("a"), "first");
  Handle a = handle_of("a");
  ASSERT_EQ(unlink(path("a").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(evict_inodes());
  // The daemon frees the number when the kernel's FORGET arrives, after the
  // unlink returned.
  ASSERT_TRUE(wait_free_inodes(all_free));
  errno = 0;
  EXPECT_EQ(open_handle(a, O_RDONLY), -1) << "a deleted file opened";
  EXPECT_EQ(errno, ESTALE) << std::strerror(errno);

  // Only the root is in use: the next inode takes the number back.
  write_file(path("b"), "second");
  Handle b = handle_of("b");
  ASSERT_EQ(b.node_id(), a.node_id()) << "the freed number was not reused";
  EXPECT_EQ(b.generation(), a.generation() + 1) << "the create reply carries the new generation";
  ASSERT_NO_FATAL_FAILURE(evict_inodes());
  const size_t before = asked(".", a.node_id());
  errno = 0;
  EXPECT_EQ(open_handle(a, O_RDONLY), -1) << "the old handle opened the new file";
  EXPECT_EQ(errno, ESTALE) << std::strerror(errno);
  EXPECT_GT(asked(".", a.node_id()), before) << "the kernel did not ask: nothing tested";
  int fd = open_handle(b, O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(read_fd(fd), "second");
  close(fd);

  // The generation of a freed slot outlives the daemon: deleted, restarted,
  // reused by a directory, still stale.
  ASSERT_EQ(unlink(path("b").c_str()), 0);
  ASSERT_TRUE(wait_free_inodes(all_free));
  ASSERT_NO_FATAL_FAILURE(remount());
  ASSERT_EQ(mkdir(path("dir").c_str(), 0755), 0);
  Handle dir = handle_of("dir");
  ASSERT_EQ(dir.node_id(), b.node_id()) << "the freed number was not reused";
  EXPECT_EQ(dir.generation(), b.generation() + 1) << "the mkdir reply carries the new generation";
  ASSERT_NO_FATAL_FAILURE(remount());
  errno = 0;
  EXPECT_EQ(open_handle(b, O_RDONLY), -1) << "the old handle opened the new directory";
  EXPECT_EQ(errno, ESTALE) << std::strerror(errno);
  fd = open_handle(dir, O_RDONLY | O_DIRECTORY);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  if (fd >= 0) close(fd);
}

}  // namespace
}  // namespace sealfs::itest
