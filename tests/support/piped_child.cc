#include "support/piped_child.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

namespace sealfs::testing_support {

PipedChild::PipedChild(const std::vector<std::string>& argv,
                       const std::vector<std::pair<std::string, std::string>>& env) {
  int in[2], out[2];
  EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
  // Built before the fork: the child only calls dup2, setenv and execv.
  std::vector<std::string> args = argv;
  std::vector<char*> pointers;
  for (std::string& a : args) pointers.push_back(a.data());
  pointers.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    for (const auto& [name, value] : env) setenv(name.c_str(), value.c_str(), 1);
    execv(pointers[0], pointers.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  to_child_ = in[1];
  from_child_ = out[0];
}

PipedChild::~PipedChild() {
  close(to_child_);
  close(from_child_);
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool PipedChild::send(const std::string& command) {
  const std::string text = command + "\n";
  return write(to_child_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

std::string PipedChild::line(int timeout_ms) {
  for (;;) {
    const size_t newline = buffered_.find('\n');
    if (newline != std::string::npos) {
      std::string l = buffered_.substr(0, newline);
      buffered_.erase(0, newline + 1);
      return l;
    }
    struct pollfd p {from_child_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return "timeout";
    char chunk[256];
    const ssize_t n = read(from_child_, chunk, sizeof(chunk));
    if (n <= 0) return "eof";
    buffered_.append(chunk, static_cast<size_t>(n));
  }
}

int PipedChild::wait_status() {
  int status = 0;
  waitpid(pid_, &status, 0);
  reaped_ = true;
  return status;
}

}  // namespace sealfs::testing_support
