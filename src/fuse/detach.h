// Going to the background without hiding mount errors from the caller.
//
// fuse_daemonize() forks after the mount: any thread the filesystem started
// before that (the metadata layer may run background work) would not exist
// in the child. So the daemon forks first, before it opens anything; the
// parent waits on a pipe and exits with the child's verdict, and the child
// keeps the caller's stderr until the mount has succeeded. `mount` and
// mount.fuse3 therefore see a failure as a nonzero exit with the reason on
// stderr, and success only once the filesystem is mounted.
#pragma once

namespace sealfs::fuse {

class Detacher {
 public:
  // Forks. Returns only in the child (or immediately when foreground is
  // true); the parent exits with the child's status.
  explicit Detacher(bool foreground);
  Detacher(const Detacher&) = delete;
  Detacher& operator=(const Detacher&) = delete;
  ~Detacher();

  // Mounted: new session, cwd "/", stdio to /dev/null, parent exits 0.
  void succeeded();
  // The parent exits with `status`; the caller exits too.
  void failed(int status);

 private:
  int pipe_fd_ = -1;
};

}  // namespace sealfs::fuse
