#include "fuse/detach.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sealfs::fuse {

Detacher::Detacher(bool foreground) {
  if (foreground) return;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "sealfs: pipe: %s\n", std::strerror(errno));
    std::exit(1);
  }
  pid_t pid = fork();
  if (pid < 0) {
    std::fprintf(stderr, "sealfs: fork: %s\n", std::strerror(errno));
    std::exit(1);
  }
  if (pid > 0) {
    close(fds[1]);
    unsigned char status = 1;
    ssize_t n;
    do {
      n = read(fds[0], &status, 1);
    } while (n < 0 && errno == EINTR);
    // No byte: the child died before reporting; its reason is on stderr.
    if (n != 1) {
      int wstatus = 0;
      waitpid(pid, &wstatus, 0);
      std::_Exit(1);
    }
    std::_Exit(status);
  }
  close(fds[0]);
  pipe_fd_ = fds[1];
}

Detacher::~Detacher() {
  if (pipe_fd_ >= 0) close(pipe_fd_);
}

void Detacher::succeeded() {
  if (pipe_fd_ < 0) return;
  if (setsid() < 0) std::fprintf(stderr, "sealfs: setsid: %s\n", std::strerror(errno));
  if (chdir("/") != 0) std::fprintf(stderr, "sealfs: chdir /: %s\n", std::strerror(errno));
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd >= 0) {
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    if (null_fd > STDERR_FILENO) close(null_fd);
  }
  unsigned char ok = 0;
  ssize_t n;
  do {
    n = write(pipe_fd_, &ok, 1);
  } while (n < 0 && errno == EINTR);
  close(pipe_fd_);
  pipe_fd_ = -1;
}

void Detacher::failed(int status) {
  if (pipe_fd_ < 0) return;
  unsigned char code = static_cast<unsigned char>(status == 0 ? 1 : status);
  ssize_t n;
  do {
    n = write(pipe_fd_, &code, 1);
  } while (n < 0 && errno == EINTR);
  close(pipe_fd_);
  pipe_fd_ = -1;
}

}  // namespace sealfs::fuse
