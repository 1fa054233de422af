// A sealfs daemon mounted for one test: mkfs a file-backed region, start
// `sealfs -f` in the background, wait until the mount appears, and always
// unmount again. Failures come back as text for the test to report.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace difftest {

struct Binaries {
  std::string sealfs, mkfs, difftest;
  // Empty when every binary exists, else which ones are missing.
  std::string missing() const;
};

// From SEALFS_BIN, MKFS_BIN and DIFFTEST_BIN (meson sets them), else from
// the build tree that holds this test binary.
Binaries locate_binaries();

// Runs argv to completion with stdin from /dev/null; output goes to
// `log_path` when given, else to ours. Exit status, or -1 when it had to be
// killed after `timeout_s` or could not start.
int run_process(const std::vector<std::string>& argv, const std::string& log_path,
                int timeout_s);

bool is_mounted(const std::string& mountpoint);
// Removes a directory tree without following symlinks or crossing mounts.
void remove_tree(const std::string& path);
// The last lines of a log file, for failure messages.
std::string tail_of(const std::string& path, size_t lines = 30);

class SealfsMount {
 public:
  SealfsMount() = default;
  ~SealfsMount();
  SealfsMount(const SealfsMount&) = delete;
  SealfsMount& operator=(const SealfsMount&) = delete;

  // "" on success, else what went wrong (with the daemon's log tail).
  std::string mount(const std::string& sealfs_bin, const std::string& region,
                    const std::string& mountpoint, const std::string& options,
                    const std::string& log_path);
  // Unmounts and reaps the daemon; "" when it went away cleanly with status 0.
  std::string unmount();

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::string mountpoint_, log_path_;
};

}  // namespace difftest
