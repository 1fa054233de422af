// A program run by the preload tests with its stdout read line by line, so
// a test can act (break a lease, kill it, kill the daemon) after the program
// says it committed something.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace sealfs::itest {

class Program {
 public:
  Program(const std::vector<std::string>& argv, const std::vector<std::string>& env);
  ~Program();  // SIGKILL and reap if it still runs
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  // Waits for a line starting with prefix (after those already returned).
  std::optional<std::string> expect(const std::string& prefix, std::chrono::milliseconds timeout);
  // The N of the last "committed N" line read so far (-1 if none).
  long long last_committed();
  void kill9();
  // Reads the rest of the output; the raw wait status, nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  const std::string& output() const { return output_; }

 private:
  bool read_some(int timeout_ms);
  void scan();

  pid_t pid_ = -1;
  int from_ = -1;
  std::string output_;
  size_t consumed_ = 0;  // output_ before this offset was matched by expect()
  size_t scanned_ = 0;
  long long last_committed_ = -1;
  std::optional<int> status_;
};

}  // namespace sealfs::itest
