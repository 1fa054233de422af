// Several processes create, rename and delete in the same directories while
// others list and read them. Readers may see names vanish (ENOENT) and
// nothing else; the final tree is exactly what the writers left, before and
// after a remount.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "fs_helpers.h"
#include "mount_fixture.h"

namespace sealfs::itest {
namespace {

constexpr int kWriters = 4;
constexpr int kReaders = 2;
constexpr int kRounds = 300;
constexpr int kDirs = 3;

class ConcurrencyTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(format_and_mount());
  }
};

std::string content_of(int writer, int round) {
  auto bytes = pattern(static_cast<uint64_t>(writer * 100000 + round), 0,
                       static_cast<size_t>(round % 17) * 1031 + 1);
  return std::string(bytes.begin(), bytes.end());
}

// Child bodies report a failure on stderr and with exit status 1.
[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), std::strerror(errno));
  _exit(1);
}

[[noreturn]] void writer_body(const std::string& root, int id) {
  std::string subdir = root + "/d0/own" + std::to_string(id);
  for (int r = 0; r < kRounds; ++r) {
    std::string from = root + "/d" + std::to_string(r % kDirs) + "/w" + std::to_string(id) +
                       "_" + std::to_string(r);
    std::string to = root + "/d" + std::to_string((r + 1) % kDirs) + "/r" +
                     std::to_string(id) + "_" + std::to_string(r);
    int fd = open(from.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) fail("create " + from);
    std::string data = content_of(id, r);
    if (!pwrite_all(fd, data.data(), data.size(), 0)) fail("write " + from);
    close(fd);
    if (rename(from.c_str(), to.c_str()) != 0) fail("rename " + from);
    if (r % 2 == 0 && unlink(to.c_str()) != 0) fail("unlink " + to);
    if (r % 10 == 0) {
      if (mkdir(subdir.c_str(), 0755) != 0) fail("mkdir " + subdir);
      std::string inner = subdir + "/x";
      fd = open(inner.c_str(), O_WRONLY | O_CREAT, 0644);
      if (fd < 0) fail("create " + inner);
      close(fd);
      if (unlink(inner.c_str()) != 0) fail("unlink " + inner);
      if (rmdir(subdir.c_str()) != 0) fail("rmdir " + subdir);
    }
  }
  _exit(0);
}

[[noreturn]] void reader_body(const std::string& root, int stop_fd) {
  std::vector<char> buf(1 << 16);
  uint64_t reads = 0;
  while (true) {
    char c;
    if (read(stop_fd, &c, 1) == 0) break;  // writers done: the pipe closed
    for (int d = 0; d < kDirs; ++d) {
      std::string dir = root + "/d" + std::to_string(d);
      int err = 0;
      auto names = list_dir(dir, &err);
      if (err != 0) fail("readdir " + dir);
      for (const auto& name : names) {
        std::string p = dir + "/" + name;
        struct stat st {};
        if (lstat(p.c_str(), &st) != 0) {
          if (errno == ENOENT) continue;
          fail("lstat " + p);
        }
        if (!S_ISREG(st.st_mode)) continue;
        int fd = open(p.c_str(), O_RDONLY);
        if (fd < 0) {
          if (errno == ENOENT) continue;
          fail("open " + p);
        }
        if (read(fd, buf.data(), buf.size()) < 0) fail("read " + p);
        close(fd);
        ++reads;
      }
    }
  }
  _exit(reads > 0 ? 0 : 2);
}

TEST_F(ConcurrencyTest, WritersAndReadersShareDirectories) {
  for (int d = 0; d < kDirs; ++d) {
    ASSERT_EQ(mkdir(path("d" + std::to_string(d)).c_str(), 0755), 0);
  }
  // Readers poll a non-blocking pipe: readable-with-no-data means go on,
  // end-of-file means the writers are done.
  int stop[2];
  ASSERT_EQ(pipe2(stop, O_NONBLOCK), 0);
  std::vector<pid_t> readers, writers;
  for (int i = 0; i < kReaders; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(stop[1]);
      reader_body(mountpoint(), stop[0]);
    }
    readers.push_back(pid);
  }
  close(stop[0]);
  for (int i = 0; i < kWriters; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(stop[1]);
      writer_body(mountpoint(), i);
    }
    writers.push_back(pid);
  }
  for (pid_t pid : writers) {
    auto status = wait_child(pid, std::chrono::minutes(5));
    ASSERT_TRUE(status.has_value()) << "writer hung";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "writer status " << *status;
  }
  close(stop[1]);
  for (pid_t pid : readers) {
    auto status = wait_child(pid, std::chrono::minutes(5));
    ASSERT_TRUE(status.has_value()) << "reader hung";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "reader status " << *status;
  }

  auto check = [&] {
    for (int d = 0; d < kDirs; ++d) {
      std::set<std::string> expected;
      for (int w = 0; w < kWriters; ++w) {
        for (int r = 1; r < kRounds; r += 2) {
          if ((r + 1) % kDirs == d) {
            expected.insert("r" + std::to_string(w) + "_" + std::to_string(r));
          }
        }
      }
      int err = 0;
      auto names = list_dir(path("d" + std::to_string(d)), &err);
      ASSERT_EQ(err, 0);
      ASSERT_EQ(names, expected) << "d" << d;
      for (const auto& name : names) {
        int w = std::stoi(name.substr(1, name.find('_') - 1));
        int r = std::stoi(name.substr(name.find('_') + 1));
        ASSERT_EQ(read_file(path("d" + std::to_string(d) + "/" + name)), content_of(w, r))
            << name;
      }
    }
  };
  ASSERT_NO_FATAL_FAILURE(check());
  ASSERT_NO_FATAL_FAILURE(remount());
  ASSERT_NO_FATAL_FAILURE(check());
}

}  // namespace
}  // namespace sealfs::itest
