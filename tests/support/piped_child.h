// A child process driven through pipes: the test writes command lines to
// its stdin and reads its answers, one line each, from its stdout (the lease
// holder programs of tests/unit/lease work this way). The child is killed
// (SIGKILL) and reaped on destruction unless the test waited for it.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace sealfs::testing_support {

class PipedChild {
 public:
  // Runs argv[0] with argv, its environment the test's plus `env`.
  explicit PipedChild(const std::vector<std::string>& argv,
                      const std::vector<std::pair<std::string, std::string>>& env = {});
  ~PipedChild();
  PipedChild(const PipedChild&) = delete;
  PipedChild& operator=(const PipedChild&) = delete;

  pid_t pid() const { return pid_; }

  // Writes `command` and a newline; false when not all of it was written.
  bool send(const std::string& command);

  // The next line without its newline; "timeout" when none is complete
  // within timeout_ms (-1: wait as long as it takes), "eof" when the child
  // closed its stdout first.
  std::string line(int timeout_ms);

  // Waits for the child to exit and returns its raw wait status.
  int wait_status();

 private:
  pid_t pid_ = -1;
  int to_child_ = -1, from_child_ = -1;
  bool reaped_ = false;
  std::string buffered_;
};

}  // namespace sealfs::testing_support
