// Reply: the one way a handler answers a FUSE request.
//
// libfuse requires exactly one reply per request (none for forget). Every
// handler runs its body through handle(), which turns an escaping
// std::bad_alloc into ENOMEM, and aborts if the body returned without
// replying: a request left unanswered hangs the calling process forever, so
// that is a broken invariant, not an error to report.
#pragma once

#include <fuse_lowlevel.h>

#include <cstdlib>
#include <new>

#include "fuse/context.h"
#include "util/log.h"

namespace sealfs::fuse {

class Reply {
 public:
  Reply(fuse_req_t req, const char* op, Ino ino) : req_(req), op_(op), ino_(ino) {}
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;

  fuse_req_t req() const { return req_; }
  const char* op() const { return op_; }
  bool replied() const { return replied_; }
  DaemonContext& ctx() const {
    return *static_cast<DaemonContext*>(fuse_req_userdata(req_));
  }

  // Failure (or success with err == 0). Logs one line at debug level;
  // corruption found on media is a warning.
  void error(const Status& status);
  void error(int err);
  void ok() { error(0); }
  // An error that is the normal answer (a missing xattr): no log line.
  void expected_error(int err) {
    mark();
    fuse_reply_err(req_, err);
  }

  // The send functions return libfuse's result: nonzero means the kernel did
  // not take the reply (interrupted request), so references the reply would
  // have handed over were never taken and the caller must drop them.
  int entry(const fuse_entry_param& e) { return sent(fuse_reply_entry(req_, &e)); }
  int create(const fuse_entry_param& e, const fuse_file_info* fi) {
    return sent(fuse_reply_create(req_, &e, fi));
  }
  int attr(const struct stat& st, double timeout) {
    return sent(fuse_reply_attr(req_, &st, timeout));
  }
  int readlink(const char* target) { return sent(fuse_reply_readlink(req_, target)); }
  int open(const fuse_file_info* fi) { return sent(fuse_reply_open(req_, fi)); }
  int write(size_t count) { return sent(fuse_reply_write(req_, count)); }
  int buf(const void* data, size_t size) {
    return sent(fuse_reply_buf(req_, static_cast<const char*>(data), size));
  }
  int iov(const struct iovec* iov, int count) { return sent(fuse_reply_iov(req_, iov, count)); }
  int statfs(const struct statvfs& st) { return sent(fuse_reply_statfs(req_, &st)); }
  int xattr_size(size_t size) { return sent(fuse_reply_xattr(req_, size)); }
  int lseek(off_t off) { return sent(fuse_reply_lseek(req_, off)); }
  int ioctl(const void* data, size_t size) {
    return sent(fuse_reply_ioctl(req_, 0, data, size));
  }
  void none() {
    mark();
    fuse_reply_none(req_);
  }
  // The request was handed on (deferred_change.h): someone else replies.
  void handed_on() { mark(); }

 private:
  void mark() {
    if (replied_) {
      log().critical("fuse {}: second reply to one request (inode {})", op_, ino_);
      std::abort();
    }
    replied_ = true;
  }
  int sent(int rc) {
    mark();
    return rc;
  }

  fuse_req_t req_;
  const char* op_;
  Ino ino_;
  bool replied_ = false;
};

// Runs one handler body; see the comment at the top.
template <typename Body>
void handle(fuse_req_t req, const char* op, Ino ino, Body&& body) noexcept {
  Reply reply(req, op, ino);
  try {
    body(reply);
  } catch (const std::bad_alloc&) {
    if (!reply.replied()) reply.error(ENOMEM);
  } catch (const std::exception& e) {
    log().error("fuse {} (inode {}): unexpected exception: {}", op, ino, e.what());
    if (!reply.replied()) reply.error(EIO);
  } catch (...) {
    log().error("fuse {} (inode {}): unexpected exception", op, ino);
    if (!reply.replied()) reply.error(EIO);
  }
  if (!reply.replied()) {
    log().critical("fuse {}: handler returned without replying (inode {})", op, ino);
    std::abort();
  }
}

}  // namespace sealfs::fuse
