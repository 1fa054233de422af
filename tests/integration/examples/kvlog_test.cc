// examples/kvlog.c against a real mount: the writer appends records through
// a direct mapping that grows with sealfs_extend and acknowledges each one
// after sealfs_persist_ranges; it is killed with SIGKILL mid-run (and, in
// the second test, the daemon is), the filesystem is mounted again, and
// the log must hold every acknowledged record, byte for byte (kvlog check
// rebuilds each record from its sequence number).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "lease_fixture.h"

namespace sealfs::itest {
namespace {

std::string kvlog_bin() {
  const char* path = std::getenv("KVLOG");
  return path != nullptr ? path : "";
}

// A running `kvlog FILE append COUNT`, its stdout read line by line.
class Writer {
 public:
  explicit Writer(const std::string& file) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      const std::string bin = kvlog_bin();
      execl(bin.c_str(), bin.c_str(), file.c_str(), "append", "100000000", nullptr);
      _exit(127);
    }
    close(out[1]);
    from_ = out[0];
  }
  ~Writer() {
    kill_and_reap();
    if (from_ >= 0) close(from_);
  }
  // Reads lines until `grown` growths and `acks` acknowledgements were seen
  // (false on EOF or timeout).
  bool run_until(int grown, uint64_t acks) {
    while (grown_ < grown || acked_ < acks) {
      struct pollfd p{from_, POLLIN, 0};
      if (poll(&p, 1, 20000) != 1) return false;
      char buf[4096];
      ssize_t n = read(from_, buf, sizeof buf);
      if (n <= 0) return false;
      partial_.append(buf, static_cast<size_t>(n));
      for (size_t nl; (nl = partial_.find('\n')) != std::string::npos; partial_.erase(0, nl + 1)) {
        const std::string line = partial_.substr(0, nl);
        if (line.rfind("ack ", 0) == 0) {
          acked_ = std::stoull(line.substr(4)) + 1;
        } else if (line.rfind("grown ", 0) == 0) {
          ++grown_;
        }
      }
    }
    return true;
  }
  // SIGKILL, then every line it wrote before dying is counted.
  void kill_and_reap() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (from_ >= 0) run_until(INT32_MAX, UINT64_MAX);  // drains to EOF
  }
  uint64_t acked() const { return acked_; }
  int grown() const { return grown_; }
  bool started() const { return pid_ > 0 && from_ >= 0; }

 private:
  pid_t pid_ = -1;
  int from_ = -1;
  std::string partial_;
  uint64_t acked_ = 0;
  int grown_ = 0;
};

class KvlogTest : public LeaseFixture {
 protected:
  // `kvlog FILE check`: how many records the log holds, all verified.
  uint64_t records_after_check(const std::string& name) {
    std::string output;
    int rc = run_command({kvlog_bin(), path(name), "check"}, &output);
    EXPECT_EQ(rc, 0) << output;
    if (output.rfind("records ", 0) != 0) {
      ADD_FAILURE() << output;
      return 0;
    }
    return std::stoull(output.substr(8));
  }
};

TEST_F(KvlogTest, KilledWriterLosesNoAcknowledgedRecord) {
  ASSERT_FALSE(kvlog_bin().empty()) << "KVLOG is not set (meson sets it)";
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  {
    Writer w(path("log"));
    ASSERT_TRUE(w.started());
    // Past three growths of the mapped file, then killed mid-append.
    ASSERT_TRUE(w.run_until(3, 1000)) << "acked " << w.acked() << ", grown " << w.grown();
    w.kill_and_reap();
    const uint64_t acked = w.acked();
    ASSERT_NO_FATAL_FAILURE(remount());
    EXPECT_GE(records_after_check("log"), acked);
  }
  // The log reopens after the crash and goes on where it stopped.
  Writer again(path("log"));
  ASSERT_TRUE(again.run_until(4, 0));
  again.kill_and_reap();
  ASSERT_NO_FATAL_FAILURE(remount());
  EXPECT_GE(records_after_check("log"), again.acked());
}

// The daemon dies instead: the growths the writer was answered for, and the
// records it acknowledged in them, are on media (the size and the blocks
// commit before sealfs_extend returns).
TEST_F(KvlogTest, KilledDaemonLosesNoAcknowledgedRecord) {
  ASSERT_FALSE(kvlog_bin().empty()) << "KVLOG is not set (meson sets it)";
  ASSERT_NO_FATAL_FAILURE(mount_with(2));
  Writer w(path("log"));
  ASSERT_TRUE(w.started());
  ASSERT_TRUE(w.run_until(3, 1000)) << "acked " << w.acked() << ", grown " << w.grown();
  ASSERT_NO_FATAL_FAILURE(kill_daemon());
  w.kill_and_reap();  // it lost its mapping (fenced) and its file
  const uint64_t acked = w.acked();
  ASSERT_GE(w.grown(), 3);
  ASSERT_NO_FATAL_FAILURE(mount());
  EXPECT_GE(records_after_check("log"), acked);
}

}  // namespace
}  // namespace sealfs::itest
