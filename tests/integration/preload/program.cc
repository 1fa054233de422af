#include "program.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "mount_fixture.h"

namespace sealfs::itest {

Program::Program(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return;
  std::vector<std::string> args = argv, envs = env;
  pid_ = fork();
  if (pid_ == 0) {
    dup2(fds[1], STDOUT_FILENO);
    std::vector<char*> cargv;
    for (auto& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : envs) putenv(e.data());
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
  close(fds[1]);
  from_ = fds[0];
}

Program::~Program() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, std::chrono::seconds(10));
  }
  if (from_ >= 0) close(from_);
}

bool Program::read_some(int timeout_ms) {
  if (from_ < 0) return false;
  struct pollfd p = {from_, POLLIN, 0};
  int r = poll(&p, 1, timeout_ms);
  if (r <= 0) return false;
  char buf[4096];
  ssize_t n = read(from_, buf, sizeof(buf));
  if (n <= 0) {
    if (n < 0 && errno == EINTR) return true;
    close(from_);
    from_ = -1;
    return false;
  }
  output_.append(buf, static_cast<size_t>(n));
  scan();
  return true;
}

void Program::scan() {
  size_t end;
  while ((end = output_.find('\n', scanned_)) != std::string::npos) {
    const std::string line = output_.substr(scanned_, end - scanned_);
    if (line.rfind("committed ", 0) == 0) last_committed_ = std::atoll(line.c_str() + 10);
    scanned_ = end + 1;
  }
}

std::optional<std::string> Program::expect(const std::string& prefix,
                                           std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    size_t at = consumed_;
    size_t end;
    while ((end = output_.find('\n', at)) != std::string::npos) {
      std::string line = output_.substr(at, end - at);
      at = end + 1;
      if (line.rfind(prefix, 0) == 0) {
        consumed_ = at;
        return line;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || from_ < 0) return std::nullopt;
    read_some(static_cast<int>(left.count()));
  }
}

long long Program::last_committed() {
  while (read_some(0)) {
  }
  return last_committed_;
}

void Program::kill9() {
  if (pid_ > 0 && !status_) ::kill(pid_, SIGKILL);
}

std::optional<int> Program::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (from_ >= 0 && std::chrono::steady_clock::now() < deadline) read_some(100);
  if (!status_ && pid_ > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    status_ = wait_child(pid_, std::max(left, std::chrono::milliseconds(1)));
  }
  scan();
  return status_;
}

}  // namespace sealfs::itest
