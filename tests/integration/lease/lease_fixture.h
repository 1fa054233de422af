// Support for the lease integration tests: holder processes (holder.cc)
// driven over pipes, breakers timed on their own thread, and a fixture that
// mounts sealfs with lease options and helps with files and free space.
//
// Everything waits on conditions (holder output lines, thread completion,
// files appearing, statfs polling); a fixed wait appears only where a test
// proves that something does NOT happen, and says so.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "mount_fixture.h"

namespace sealfs::itest {

using namespace std::chrono_literals;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

struct MapReply {
  int rc = 0;  // 0 or -errno
  size_t index = 0;
  uint64_t lease_id = 0;
  uint64_t generation = 0;
  uint64_t length = 0;
  std::string text;  // the whole reply line
};

// One holder process (SEALFS_LEASE_HOLDER). Lines it prints are kept; an
// expect() consumes the first unconsumed line with the given prefix.
class HolderProcess {
 public:
  struct Options {
    bool coop = false;           // unmap on break
    std::optional<uid_t> uid;    // run as this user (with gid)
    gid_t gid = 0;
  };
  explicit HolderProcess(const Options& options);
  ~HolderProcess();  // SIGKILL and reap if it still runs
  HolderProcess(const HolderProcess&) = delete;
  HolderProcess& operator=(const HolderProcess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  void send(const std::string& line);
  // Waits for an unconsumed line starting with prefix and consumes it.
  std::optional<std::string> expect(std::string_view prefix,
                                    std::chrono::milliseconds timeout = 10s);
  // The same for the first line matching any of the prefixes.
  std::optional<std::string> expect_any(const std::vector<std::string_view>& prefixes,
                                        std::chrono::milliseconds timeout = 10s);
  // Lines starting with prefix among everything read so far (consumed or
  // not), after reading whatever is available now.
  int count(std::string_view prefix);
  // Round trip: every line the holder printed before "pong" has been read.
  bool sync(std::chrono::milliseconds timeout = 10s);
  std::string transcript() const;

  // break_ms > 0: a per-grant break time (sealfs_map_ex).
  MapReply map(const std::string& path, uint64_t offset, uint64_t length,
               const std::string& prot = "rw", unsigned flags = 0,
               const std::string& open_mode = "rw", uint64_t break_ms = 0);
  // Sends the map command only; finish with map_reply().
  void send_map(const std::string& path, uint64_t offset, uint64_t length,
                const std::string& prot = "rw", unsigned flags = 0,
                const std::string& open_mode = "rw", uint64_t break_ms = 0);
  MapReply map_reply(std::chrono::milliseconds timeout = 10s);

  // Raw wait status once the process exited, nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  void signal(int sig);
  // SIGSTOP, and wait until the holder is stopped.
  bool stop();

 private:
  bool read_some(int timeout_ms);

  pid_t pid_ = -1;
  int to_holder_ = -1;
  int from_holder_ = -1;
  bool eof_ = false;
  std::string partial_;
  std::vector<std::string> lines_;
  std::vector<bool> consumed_;
  std::optional<int> status_;
};

struct OpResult {
  int rc = 0;
  int err = 0;         // errno when rc < 0
  double seconds = 0;  // from start to return
};

// The reason field of a holder's "break ID reason R ms M" line (-1 if none).
int break_reason(const std::string& line);

// Runs a (blocking) file operation on its own thread and times it.
class TimedOp {
 public:
  // op returns a syscall-style result and leaves errno set on failure.
  explicit TimedOp(std::function<int()> op);
  ~TimedOp();
  TimedOp(const TimedOp&) = delete;
  TimedOp& operator=(const TimedOp&) = delete;
  bool done();
  std::optional<OpResult> wait(std::chrono::milliseconds timeout = 30s);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<OpResult> result_;
  std::chrono::steady_clock::time_point started_;
  std::thread thread_;
};

class LeaseFixture : public MountFixture {
 protected:
  void TearDown() override;

 public:

  // Formats a region (64 MiB unless told) and mounts it with
  // lease_break_time=break_time plus `options`.
  void mount_with(unsigned break_time, const std::string& options = "",
                  uint64_t region_size = 64 * kMiB, std::vector<std::string> mkfs_args = {});

  HolderProcess& holder(bool coop = false, std::optional<TestUser> user = std::nullopt);

  // A file of `size` bytes of the pattern `seed`, durable (fsync).
  void make_file(const std::string& name, uint64_t size, uint64_t seed);
  // Whether [0, size) of the file is the pattern and the file is that long.
  ::testing::AssertionResult file_has_pattern(const std::string& name, uint64_t size,
                                              uint64_t seed, uint64_t offset = 0);
  ::testing::AssertionResult file_is_zero(const std::string& name, uint64_t offset,
                                          uint64_t length);
  uint64_t file_size(const std::string& name);
  uint64_t free_blocks();  // statvfs f_bfree of the mount (4 KiB blocks)
  // Writes the pattern `seed` into a new file until the filesystem is full;
  // returns the bytes written (whole 4 KiB blocks).
  uint64_t fill_filesystem(const std::string& name, uint64_t seed);
  // Polls statfs until free_blocks() >= at_least.
  bool wait_free_blocks(uint64_t at_least, std::chrono::milliseconds timeout);

  std::vector<std::unique_ptr<HolderProcess>> holders_;
};

// Waits for a path to exist (inotify on its directory).
bool wait_for_path(const std::string& path, std::chrono::milliseconds timeout);
void touch_path(const std::string& path);

}  // namespace sealfs::itest
