// File handlers: open/create/release, the data path, fsync, fallocate, lseek.
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuse/deferred_change.h"
#include "fuse/direct_io_mmap.h"
#include "fuse/ops_internal.h"
#include "sealfs/format.h"
#include "sealfs/sealfs.h"
#include "util/sync_point.h"

namespace sealfs::fuse {
namespace {

// Holes read as zeros from here. The kernel never asks for more than
// max_write (1 MiB) per read; longer holes are split anyway.
constexpr size_t kZeroChunk = 1u << 20;
alignas(4096) const char kZeros[kZeroChunk] = {};

// fuse_reply_iov adds one iovec for the header; writev takes at most
// IOV_MAX (1024).
constexpr size_t kMaxSegments = 1000;

// `other_writers`: handles of the inode other than this one that can write.
void set_open_flags(DaemonContext& ctx, Ino ino, fuse_file_info* fi, uint32_t other_writers) {
  // Coherence with direct mappings: see DaemonContext::leases. Only leases
  // without kMapExclusive count: an exclusive holder stores directly only
  // while no other process has the file open, so the others' handles need
  // neither direct_io nor the drop below (see there).
  const bool shared_leases = ctx.leases != nullptr && ctx.leases->had_shared_lease(ino);
  fi->direct_io = shared_leases ? 1 : 0;
  // An append-only file bypasses the writeback cache: the kernel then sends
  // each write as it comes, at its own EOF under the inode lock, instead of
  // writing pages back later (and perhaps out of order) where the daemon
  // could only refuse them (docs/daemon.md "Inode flags").
  if (ctx.writeback_cache && fi->direct_io == 0) {
    auto flags = ctx.fs->get_flags(ino);
    if (flags.is_ok() && (flags->flags & format::kInodeAppend) != 0) fi->direct_io = 1;
  }
  // Without keep_cache the kernel drops the inode's cached pages at this
  // open: close-to-open for stores made through a direct mapping, seen by
  // a mapping through the mount or by a descriptor opened before the
  // inode's first lease. But a write(2) through another handle copies its
  // bytes into a cached page before they reach the daemon; dropping that
  // page lets a reader cache the old bytes, which the writer then reads
  // back after its write returned. So while another handle can write (and
  // the inode never had a lease other than exclusive ones, see below), the
  // pages stay: they are right, as the kernel keeps them so for every
  // change it forwards (docs/daemon.md "Caching and coherence"). An open
  // with O_TRUNC drops them in any case: older kernels (4.x) reset only the
  // size there and leave the pages to the open.
  //
  // Exclusive leases (lease_core.h) do not need the drop: their holder
  // stored directly only while no other process had the file open, its
  // library dropped the pages its stores made stale when it let go, and
  // this open (if another process's) came after that. A file that only
  // they ever sealed keeps the rule above, and its handles are not
  // direct_io (the kernel drops every cached page at each mmap of a
  // direct_io handle, the same race). Dropping there instead let readers
  // cache old bytes under a writer that had once been direct (LMDB lost
  // commits beside a cat or mdb_stat loop, review of 2026-12-07).
  fi->keep_cache =
      other_writers > 0 && !shared_leases && (fi->flags & O_TRUNC) == 0 ? 1 : 0;
  static std::atomic<bool> warned{false};
  if (fi->direct_io != 0 && !direct_io_mmap_granted() && !warned.exchange(true)) {
    log().warn("the kernel did not accept FUSE_DIRECT_IO_ALLOW_MMAP (it needs Linux 6.6): "
               "mmap(MAP_SHARED) of a file that had a lease fails with ENODEV in this mount");
  }
}

// Exclusive leases (lease_core.h): every handle of a file opened through
// the mount is registered with the lease engine under the opening thread
// (fi->fh is its number, given back at release), and an open by another
// process than an exclusive holder's waits until the holder let go.
void handle_gone(DaemonContext& ctx, Ino ino, uint64_t handle) {
  if (ctx.leases != nullptr) ctx.leases->file_closed(ino, handle);
}

bool open_waits(DaemonContext& ctx, Ino ino, uint32_t tid) {
  return ctx.leases != nullptr && ctx.leases->open_blocked(ino, tid);
}

BreakWait open_wait(DaemonContext& ctx, Ino ino, uint32_t tid) {
  lease::LeaseEngine* leases = ctx.leases;
  return [leases, ino, tid](lease::Continuation then) {
    leases->may_open(ino, tid, std::move(then));
  };
}

// open(2) with O_TRUNC truncates here: a layout change. fi->fh is the
// registered handle, given back when this answers an error.
bool try_open(Reply& r, Ino ino, fuse_file_info* fi) {
  DaemonContext& ctx = r.ctx();
  Status st = ctx.fs->open(ino, fi->flags);
  if (sealed(st)) return false;
  if (!st.is_ok()) {
    handle_gone(ctx, ino, fi->fh);
    return r.error(st), true;
  }
  set_open_flags(ctx, ino, fi, ctx.open_writers.opened(ino, fi->flags));
  if (r.open(fi) != 0) {  // no release will come
    ctx.open_writers.released(ino, fi->flags);
    handle_gone(ctx, ino, fi->fh);
    ctx.fs->release(ino);
  }
  return true;
}

void answer_create(Reply& r, const Attr& attr, fuse_file_info* fi) {
  DaemonContext& ctx = r.ctx();
  set_open_flags(ctx, attr.ino, fi, ctx.open_writers.opened(attr.ino, fi->flags));
  if (r.create(entry_of(ctx, attr), fi) != 0) {
    ctx.open_writers.released(attr.ino, fi->flags);
    handle_gone(ctx, attr.ino, fi->fh);
    ctx.fs->release(attr.ino);
    ctx.fs->forget(attr.ino, 1);
  }
}

// A create that opened an existing file (O_CREAT without O_EXCL) another
// process maps exclusively: the answer waits for the break. The kernel
// looks a name up before it creates it and sends OPEN for a file it finds,
// so this takes a negative entry it still trusts (-o negative_timeout)
// for a name the file has since: kept, as the rule must hold for every
// handle.
void answer_create_after_break(Reply& r, Ino ino, fuse_file_info* fi, uint32_t tid) {
  auto info = std::make_shared<fuse_file_info>(*fi);
  DaemonContext* ctx = &r.ctx();
  auto give_back = [ctx, ino, handle = fi->fh] {
    handle_gone(*ctx, ino, handle);
    ctx->fs->release(ino);
    ctx->fs->forget(ino, 1);
  };
  defer_change(
      r, ino, open_wait(r.ctx(), ino, tid),
      [ino, info, tid, give_back](Reply& again) {
        if (open_waits(again.ctx(), ino, tid)) return false;
        auto attr = again.ctx().fs->getattr(ino);
        if (!attr.is_ok()) {
          give_back();
          return again.error(attr.status()), true;
        }
        answer_create(again, *attr, info.get());
        return true;
      },
      give_back);
}

bool try_create(Reply& r, Ino parent, const std::string& name, mode_t mode, fuse_file_info* fi,
                uint32_t tid) {
  auto attr = r.ctx().fs->create(parent, name, mode, fi->flags, cred_of(r.req()));
  if (!attr.is_ok() && sealed(attr.status())) return false;
  if (!attr.is_ok()) return r.error(attr.status()), true;
  DaemonContext& ctx = r.ctx();
  fi->fh = ctx.leases != nullptr ? ctx.leases->file_opened(attr->ino, tid) : 0;
  if (open_waits(ctx, attr->ino, tid)) {
    answer_create_after_break(r, attr->ino, fi, tid);
    return true;
  }
  answer_create(r, *attr, fi);
  return true;
}

// Writes that allocate or extend break the file's leases; with -o
// strict_write_break every write does (as the kernel's MAP_DIRECT did). The
// meta layer decides both under the inode's lock (MountOptions::
// gate_every_write), so a lease cannot be granted between the check and the
// write.
bool try_write(Reply& r, Ino ino, const char* buf, size_t size, uint64_t off, bool append) {
  DaemonContext& ctx = r.ctx();
  auto written = ctx.fs->write(ino, off, buf, size, append);
  if (!written.is_ok() && sealed(written.status())) return false;
  if (!written.is_ok()) return r.error(written.status()), true;
  r.write(*written);
  return true;
}

bool try_fallocate(Reply& r, Ino ino, int mode, uint64_t offset, uint64_t length) {
  Status st = r.ctx().fs->fallocate(ino, mode, offset, length);
  if (sealed(st)) return false;
  r.error(st);
  return true;
}

bool try_copy_file_range(Reply& r, Ino ino_in, uint64_t off_in, Ino ino_out, uint64_t off_out,
                         size_t len) {
  auto copied = r.ctx().fs->copy_file_range(ino_in, off_in, ino_out, off_out, len);
  if (!copied.is_ok() && sealed(copied.status())) return false;
  if (!copied.is_ok()) return r.error(copied.status()), true;
  r.write(*copied);
  return true;
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
  const Region& region = r.ctx().fs->region();
  if (iov.size() <= kMaxSegments) {
    // The kernel copies from the mapping. A media fault there (poison, a
    // region file cut short) is no signal: writev fails with EFAULT and the
    // kernel ends the request with EIO. Find the faulting page here, under a
    // recovery window, so that the region is marked failed and logged.
    if (r.iov(iov.data(), static_cast<int>(iov.size())) == -EFAULT) {
      Status probed = region.guarded("file data read", [&] {
        for (const auto& seg : segments) {
          if (seg.data == nullptr || seg.length == 0) continue;
          const auto* p = static_cast<const volatile std::byte*>(seg.data);
          for (size_t at = 0; at < seg.length; at += 4096) (void)p[at];
          (void)p[seg.length - 1];
        }
      });
      log().warn("read inode {} at {}: the kernel could not copy the reply ({}); the reader "
                 "got EIO", ino, offset, probed.is_ok() ? "no fault found" : probed.message());
    }
    return;
  }
  // A badly fragmented range: gather into one buffer.
  log().debug("read inode {} at {}: {} segments, gathering", ino, offset, iov.size());
  std::unique_ptr<char[]> gathered(new char[total]);
  size_t pos = 0;
  // A media fault on a source page fails the read with EIO.
  Status copied = region.guarded("file data read", [&] {
    for (const auto& v : iov) {
      std::memcpy(gathered.get() + pos, v.iov_base, v.iov_len);
      pos += v.iov_len;
    }
  });
  if (!copied.is_ok()) return r.error(copied);
  r.buf(gathered.get(), total);
}

}  // namespace

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  handle(req, "open", ino, [&](Reply& r) {
    if ((fi->flags & O_TRUNC) && !drop_setid_first(r, ino)) return;
    DaemonContext& ctx = r.ctx();
    const uint32_t tid = static_cast<uint32_t>(fuse_req_ctx(req)->pid);
    fi->fh = ctx.leases != nullptr ? ctx.leases->file_opened(ino, tid) : 0;
    if (!open_waits(ctx, ino, tid) && try_open(r, ino, fi)) return;
    auto info = std::make_shared<fuse_file_info>(*fi);
    DaemonContext* c = &ctx;
    // A truncating open breaks every lease (a layout change); another waits
    // only for exclusive leases of other processes.
    BreakWait wait;
    if ((fi->flags & O_TRUNC) != 0) {
      wait = [c, ino](lease::Continuation then) {
        c->leases->may_change_layout(ino, SEALFS_BREAK_TRUNCATE, std::move(then));
      };
    } else {
      wait = open_wait(ctx, ino, tid);
    }
    defer_change(
        r, ino, std::move(wait),
        [ino, info, tid](Reply& again) {
          if (open_waits(again.ctx(), ino, tid)) return false;
          return try_open(again, ino, info.get());
        },
        [c, ino, handle = fi->fh] { handle_gone(*c, ino, handle); });
  });
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
  handle(req, "create", parent, [&](Reply& r) {
    std::string owned(name);
    if ((fi->flags & O_TRUNC) && !drop_setid_of_existing(r, parent, owned)) return;
    const uint32_t tid = static_cast<uint32_t>(fuse_req_ctx(req)->pid);
    if (try_create(r, parent, owned, mode, fi, tid)) return;
    // An existing file opened with O_TRUNC: break the leases of that file.
    auto existing = r.ctx().fs->lookup(parent, owned);
    if (!existing.is_ok()) return r.error(existing.status());
    r.ctx().fs->forget(existing->ino, 1);
    auto info = std::make_shared<fuse_file_info>(*fi);
    defer_layout_change(r, existing->ino, SEALFS_BREAK_TRUNCATE,
                        [parent, owned, mode, info, tid](Reply& again) {
                          return try_create(again, parent, owned, mode, info.get(), tid);
                        });
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
    // Not for pages written back (a shared mapping, the writeback cache):
    // the kernel clears set-id bits on write(2) only, and under
    // HANDLE_KILLPRIV_V2 writes a set-id file through even with the
    // writeback cache.
    if (!fi->writepage && !drop_setid_first(r, ino)) return;
    // With the writeback cache the kernel places O_APPEND writes itself (it
    // owns the size until writeback) and sends them with their offsets.
    bool append = (fi->flags & O_APPEND) != 0 && !r.ctx().writeback_cache;
    const uint64_t at = static_cast<uint64_t>(off);
    // The kernel has already copied a write-through write into its page
    // cache; here it has not reached the region yet (page-cache coherence
    // tests hold it here). No lock held.
    SEALFS_SYNC_POINT("fuse.write.received");
    if (try_write(r, ino, buf, size, at, append)) return;
    auto data = std::make_shared<std::string>(buf, size);
    defer_layout_change(r, ino, SEALFS_BREAK_WRITE, [ino, data, at, append](Reply& again) {
      return try_write(again, ino, data->data(), data->size(), at, append);
    });
  });
}

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  handle(req, "release", ino, [&](Reply& r) {
    r.ctx().open_writers.released(ino, fi->flags);
    handle_gone(r.ctx(), ino, fi->fh);
    r.ctx().fs->release(ino);
    r.ok();
  });
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  (void)fi;
  handle(req, "fsync", ino, [&](Reply& r) {
    // Stores through a writable direct mapping count as written now (the
    // new times are then part of what an fsync persists).
    if (r.ctx().leases != nullptr) r.ctx().leases->file_synced(ino);
    r.error(r.ctx().fs->fsync(ino, datasync != 0));
  });
}

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                  fuse_file_info* fi) {
  (void)fi;
  handle(req, "fallocate", ino, [&](Reply& r) {
    if (offset < 0 || length <= 0) return r.error(EINVAL);
    if (!drop_setid_first(r, ino)) return;
    const uint64_t at = static_cast<uint64_t>(offset), len = static_cast<uint64_t>(length);
    if (try_fallocate(r, ino, mode, at, len)) return;
    defer_layout_change(r, ino, SEALFS_BREAK_FALLOCATE, [ino, mode, at, len](Reply& again) {
      return try_fallocate(again, ino, mode, at, len);
    });
  });
}

void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) {
  (void)fi;
  handle(req, "lseek", ino, [&](Reply& r) {
    // SEEK_SET/CUR/END never get here: the kernel handles them.
    if (whence != SEEK_DATA && whence != SEEK_HOLE) return r.error(EINVAL);
    // As on ext4 and XFS (iomap_seek_data/iomap_seek_hole).
    if (off < 0) return r.error(ENXIO);
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
    if (!drop_setid_first(r, ino_out)) return;
    const uint64_t in_at = static_cast<uint64_t>(off_in), out_at = static_cast<uint64_t>(off_out);
    if (try_copy_file_range(r, ino_in, in_at, ino_out, out_at, len)) return;
    defer_layout_change(r, ino_out, SEALFS_BREAK_WRITE,
                        [ino_in, in_at, ino_out, out_at, len](Reply& again) {
                          return try_copy_file_range(again, ino_in, in_at, ino_out, out_at, len);
                        });
  });
}

}  // namespace sealfs::fuse
