// Coherence between page-cache users and direct-mapping holders on a real
// mount (docs/daemon.md, "Caching and coherence"): a file that has had a
// lease can still be mmap(MAP_SHARED)'d through the mount, during the lease,
// after it and after a remount, and the three kinds of users -- a holder of
// a direct mapping, a process with a mapping through the mount, a process
// using read(2)/write(2) -- see each other's bytes at the documented points.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <vector>

#include "lease_fixture.h"
#include "pattern.h"

namespace sealfs::itest {
namespace {

constexpr uint64_t kFile = 1 * kMiB;

// A MAP_SHARED read-write mapping of a file through the mount, made by this
// test process (the holder is another process).
class SharedMapping {
 public:
  explicit SharedMapping(const std::string& path, size_t length) : length_(length) {
    fd_ = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0) {
      err_ = errno;
      return;
    }
    void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {
      err_ = errno;
      return;
    }
    data_ = static_cast<uint8_t*>(p);
  }
  ~SharedMapping() {
    if (data_ != nullptr) munmap(data_, length_);
    if (fd_ >= 0) close(fd_);
  }
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;

  bool ok() const { return data_ != nullptr; }
  std::string error() const { return std::strerror(err_); }
  uint8_t* data() { return data_; }
  ::testing::AssertionResult has_pattern(uint64_t offset, uint64_t length, uint64_t seed) const {
    size_t bad = lease_pattern_mismatch(data_ + offset, length, seed, offset);
    if (bad == length) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "mapping differs from pattern " << seed << " at " << offset + bad;
  }
  bool msync_all() { return msync(data_, length_, MS_SYNC) == 0; }

 private:
  size_t length_;
  int fd_ = -1;
  int err_ = 0;
  uint8_t* data_ = nullptr;
};

// Runs `body` in a forked child (a third process, with its own descriptor)
// and returns whether it exited 0. The child makes only system calls.
bool in_child(const std::function<bool()>& body) {
  pid_t pid = fork();
  if (pid == 0) _exit(body() ? 0 : 1);
  if (pid < 0) return false;
  auto status = wait_child(pid, 30s);
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

// pread(2) through a fresh descriptor: [offset, offset+length) is `seed`.
bool pread_is_pattern(const std::string& path, uint64_t offset, uint64_t length, uint64_t seed) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::vector<uint8_t> buf(length);
  bool ok = pread(fd, buf.data(), length, static_cast<off_t>(offset)) ==
                static_cast<ssize_t>(length) &&
            lease_pattern_mismatch(buf.data(), length, seed, offset) == length;
  close(fd);
  return ok;
}

bool pwrite_pattern(const std::string& path, uint64_t offset, uint64_t length, uint64_t seed) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::vector<uint8_t> buf(length);
  fill_lease_pattern(buf.data(), length, seed, offset);
  bool ok = pwrite(fd, buf.data(), length, static_cast<off_t>(offset)) ==
            static_cast<ssize_t>(length);
  close(fd);
  return ok;
}

class MmapCoherenceTest : public LeaseFixture {};

// The regression of issue 10: once a file had a lease, every later open was
// direct_io and the kernel refused MAP_SHARED with ENODEV until a remount.
TEST_F(MmapCoherenceTest, FileCanBeMmappedAfterItsLeaseIsReleased) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(true);
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  h.send("store 0 0 8192 7");
  ASSERT_TRUE(h.expect("stored 0"));
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0", 5s)) << h.transcript();

  SharedMapping m(path("f"), kFile);
  ASSERT_TRUE(m.ok()) << "mmap(MAP_SHARED) after the lease: " << m.error();
  EXPECT_TRUE(m.has_pattern(0, 8192, 7));
  EXPECT_TRUE(m.has_pattern(8192, kFile - 8192, 1));
  // Stores through it reach the file.
  fill_lease_pattern(m.data() + 65536, 4096, 3, 65536);
  ASSERT_TRUE(m.msync_all());
  EXPECT_TRUE(in_child([&] { return pread_is_pattern(path("f"), 65536, 4096, 3); }));
}

// With one /dev/fuse descriptor per worker thread the INIT request may come
// in on any of them; the flag must be set all the same.
TEST_F(MmapCoherenceTest, CloneFdLoopToo) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2, "clone_fd"));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(true);
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0", 5s)) << h.transcript();
  SharedMapping m(path("f"), kFile);
  ASSERT_TRUE(m.ok()) << "mmap(MAP_SHARED) after the lease: " << m.error();
  EXPECT_TRUE(m.has_pattern(0, kFile, 1));
}

// The three users at once: a holder with a direct mapping, this process
// with a mapping through the mount, a child with read(2)/write(2).
TEST_F(MmapCoherenceTest, HolderMappingAndReadWriteSeeEachOther) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(true);
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  h.send("store 0 0 8192 7");
  ASSERT_TRUE(h.expect("stored 0"));

  // A mapping made while the lease is held sees the stores made before it.
  SharedMapping m(path("f"), kFile);
  ASSERT_TRUE(m.ok()) << "mmap(MAP_SHARED) during the lease: " << m.error();
  EXPECT_TRUE(m.has_pattern(0, 8192, 7));
  EXPECT_TRUE(m.has_pattern(8192, 8192, 1));
  EXPECT_TRUE(m.has_pattern(131072, 16384, 1));  // now in the page cache

  // read(2) sees the holder's stores at once, and the holder sees write(2)
  // once it returns.
  EXPECT_TRUE(in_child([&] { return pread_is_pattern(path("f"), 0, 8192, 7); }));
  ASSERT_TRUE(in_child([&] { return pwrite_pattern(path("f"), 131072, 16384, 9); }));
  h.send("check 0 131072 16384 9");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  // write(2) drops the range from the page cache: the mapping sees it too.
  EXPECT_TRUE(m.has_pattern(131072, 16384, 9));

  // Stores through the mount's mapping reach the holder once written back
  // (msync); read(2) writes the range back first, so it needs no msync.
  fill_lease_pattern(m.data() + 262144, 8192, 11, 262144);
  ASSERT_TRUE(m.msync_all());
  h.send("check 0 262144 8192 11");
  EXPECT_EQ(h.expect("check 0"), "check 0 ok");
  fill_lease_pattern(m.data() + 393216, 4096, 13, 393216);
  EXPECT_TRUE(in_child([&] { return pread_is_pattern(path("f"), 393216, 4096, 13); }));

  // Stores the holder makes after the mapping cached a page: read(2) sees
  // them at once; the mapping once the kernel drops the inode's cached
  // pages, which every open(2) (here the child's) and mmap(2) of it does.
  h.send("store 0 0 4096 12");
  ASSERT_TRUE(h.expect("stored 0"));
  EXPECT_TRUE(in_child([&] { return pread_is_pattern(path("f"), 0, 4096, 12); }));
  EXPECT_TRUE(m.has_pattern(0, 4096, 12));
  h.send("store 0 4096 4096 14");
  ASSERT_TRUE(h.expect("stored 0"));
  SharedMapping again(path("f"), kFile);
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_TRUE(again.has_pattern(4096, 4096, 14));
  EXPECT_TRUE(m.has_pattern(4096, 4096, 14));
  EXPECT_TRUE(m.has_pattern(131072, 16384, 9));
  EXPECT_TRUE(m.has_pattern(262144, 8192, 11));
  EXPECT_TRUE(m.has_pattern(393216, 4096, 13));
  h.sync();
  EXPECT_EQ(h.count("break "), 0) << h.transcript();
}

// A lease in an earlier mount leaves nothing behind: after a remount the
// file maps, and leasing it again in the new mount does not stop new maps.
TEST_F(MmapCoherenceTest, RemountAfterALeaseThenLeaseAgain) {
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  ASSERT_NO_FATAL_FAILURE(make_file("f", kFile, 1));
  HolderProcess& h = holder(true);
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  h.send("store 0 4096 4096 5");
  ASSERT_TRUE(h.expect("stored 0"));
  h.send("unmap 0");
  ASSERT_TRUE(h.expect("unmapped 0", 5s)) << h.transcript();
  ASSERT_NO_FATAL_FAILURE(remount());
  {
    SharedMapping m(path("f"), kFile);
    ASSERT_TRUE(m.ok()) << "mmap(MAP_SHARED) after a remount: " << m.error();
    EXPECT_TRUE(m.has_pattern(4096, 4096, 5));
  }
  ASSERT_EQ(h.map(path("f"), 0, kFile).rc, 0);
  h.send("store 1 8192 4096 6");
  ASSERT_TRUE(h.expect("stored 1"));
  SharedMapping m(path("f"), kFile);
  ASSERT_TRUE(m.ok()) << "mmap(MAP_SHARED) during a lease after a remount: " << m.error();
  EXPECT_TRUE(m.has_pattern(4096, 4096, 5));
  EXPECT_TRUE(m.has_pattern(8192, 4096, 6));
}


}  // namespace
}  // namespace sealfs::itest
