// File handlers: open/create/release, the data path, fsync, fallocate, lseek.
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "fuse/ops_internal.h"

namespace sealfs::fuse {
namespace {

// Holes read as zeros from here. The kernel never asks for more than
// max_write (1 MiB) per read; longer holes are split anyway.
constexpr size_t kZeroChunk = 1u << 20;
alignas(4096) const char kZeros[kZeroChunk] = {};

// fuse_reply_iov adds one iovec for the header; writev takes at most
// IOV_MAX (1024).
constexpr size_t kMaxSegments = 1000;

void set_open_flags(DaemonContext& ctx, Ino ino, fuse_file_info* fi) {
  // Coherence with direct mappings: see DaemonContext::had_lease.
  fi->direct_io = ctx.had_lease && ctx.had_lease(ino) ? 1 : 0;
  fi->keep_cache = 0;
}

// Replies to a read with iovecs that point straight into the mapped region
// (holes at a static zero buffer), so the bytes go from the region into the
// /dev/fuse write with no copy in between. fuse_reply_iov is used rather
// than fuse_reply_data: with more than one buffer, libfuse 3.14's
// fuse_reply_data copies everything into a bounce buffer first.
//
// This runs inside Filesystem::read's callback, under the inode's shared
// lock: the pointers are valid only there. Writing to /dev/fuse never calls
// back into the daemon, so replying under that lock cannot deadlock.
void reply_segments(Reply& r, const std::vector<ReadSegment>& segments, Ino ino,
                    uint64_t offset) {
  std::vector<iovec> iov;
  iov.reserve(segments.size());
  size_t total = 0;
  for (const auto& seg : segments) {
    total += seg.length;
    if (seg.data != nullptr) {
      iov.push_back({const_cast<void*>(seg.data), seg.length});
      continue;
    }
    for (size_t done = 0; done < seg.length; done += kZeroChunk) {
      size_t n = std::min(kZeroChunk, seg.length - done);
      iov.push_back({const_cast<char*>(kZeros), n});
    }
  }
  if (iov.empty()) {
    r.buf(nullptr, 0);
    return;
  }
  if (iov.size() <= kMaxSegments) {
    r.iov(iov.data(), static_cast<int>(iov.size()));
    return;
  }
  // A badly fragmented range: gather into one buffer.
  log().debug("read inode {} at {}: {} segments, gathering", ino, offset, iov.size());
  std::unique_ptr<char[]> gathered(new char[total]);
  size_t pos = 0;
  for (const auto& v : iov) {
    std::memcpy(gathered.get() + pos, v.iov_base, v.iov_len);
    pos += v.iov_len;
  }
  r.buf(gathered.get(), total);
}

}  // namespace

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  handle(req, "open", ino, [&](Reply& r) {
    Status st = r.ctx().fs->open(ino, fi->flags);
    if (!st.is_ok()) return r.error(st);
    set_open_flags(r.ctx(), ino, fi);
    if (r.open(fi) != 0) r.ctx().fs->release(ino);  // no release will come
  });
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
  handle(req, "create", parent, [&](Reply& r) {
    auto attr = r.ctx().fs->create(parent, name, mode, fi->flags, cred_of(req));
    if (!attr.is_ok()) return r.error(attr.status());
    set_open_flags(r.ctx(), attr->ino, fi);
    if (r.create(entry_of(r.ctx(), *attr), fi) != 0) {
      r.ctx().fs->release(attr->ino);
      r.ctx().fs->forget(attr->ino, 1);
    }
  });
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  (void)fi;
  handle(req, "read", ino, [&](Reply& r) {
    if (off < 0) return r.error(EINVAL);
    Status st = r.ctx().fs->read(
        ino, static_cast<uint64_t>(off), size,
        [&](const std::vector<ReadSegment>& segments) {
          if (!r.replied()) reply_segments(r, segments, ino, static_cast<uint64_t>(off));
        });
    if (r.replied()) {
      if (!st.is_ok()) log().warn("read inode {}: {} after the reply was sent", ino,
                                  st.to_string());
      return;
    }
    if (!st.is_ok()) return r.error(st);
    r.buf(nullptr, 0);  // at or past end of file
  });
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
              fuse_file_info* fi) {
  handle(req, "write", ino, [&](Reply& r) {
    if (off < 0) return r.error(EINVAL);
    bool append = (fi->flags & O_APPEND) != 0;
    auto written = r.ctx().fs->write(ino, static_cast<uint64_t>(off), buf, size, append);
    if (!written.is_ok()) return r.error(written.status());
    r.write(*written);
  });
}

void op_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  (void)fi;
  // Every write is durable when it returns; close has nothing left to do.
  handle(req, "flush", ino, [&](Reply& r) { r.ok(); });
}

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  (void)fi;
  handle(req, "release", ino, [&](Reply& r) {
    r.ctx().fs->release(ino);
    r.ok();
  });
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  (void)fi;
  handle(req, "fsync", ino,
         [&](Reply& r) { r.error(r.ctx().fs->fsync(ino, datasync != 0)); });
}

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                  fuse_file_info* fi) {
  (void)fi;
  handle(req, "fallocate", ino, [&](Reply& r) {
    if (offset < 0 || length <= 0) return r.error(EINVAL);
    r.error(r.ctx().fs->fallocate(ino, mode, static_cast<uint64_t>(offset),
                                  static_cast<uint64_t>(length)));
  });
}

void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) {
  (void)fi;
  handle(req, "lseek", ino, [&](Reply& r) {
    // SEEK_SET/CUR/END never get here: the kernel handles them.
    if ((whence != SEEK_DATA && whence != SEEK_HOLE) || off < 0) return r.error(EINVAL);
    auto pos = r.ctx().fs->lseek(ino, static_cast<uint64_t>(off), whence);
    if (!pos.is_ok()) return r.error(pos.status());
    r.lseek(static_cast<off_t>(*pos));
  });
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in,
                        fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len,
                        int flags) {
  (void)fi_in;
  (void)fi_out;
  handle(req, "copy_file_range", ino_in, [&](Reply& r) {
    if (flags != 0 || off_in < 0 || off_out < 0) return r.error(EINVAL);
    auto copied = r.ctx().fs->copy_file_range(ino_in, static_cast<uint64_t>(off_in), ino_out,
                                              static_cast<uint64_t>(off_out), len);
    if (!copied.is_ok()) return r.error(copied.status());
    r.write(*copied);
  });
}

}  // namespace sealfs::fuse
