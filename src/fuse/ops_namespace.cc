// Namespace handlers: init/destroy, lookup and forget, attributes, names.
#include <cstdio>  // RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT
#include <sys/statvfs.h>

#include "fuse/deferred_change.h"
#include "fuse/ops_internal.h"
#include "sealfs/format.h"
#include "sealfs/sealfs.h"

namespace sealfs::fuse {
namespace {

DaemonContext& context_of(void* userdata) { return *static_cast<DaemonContext*>(userdata); }

std::string_view name_of(const char* name) { return std::string_view(name); }

}  // namespace

Cred cred_of(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  Cred cred;
  cred.uid = c->uid;
  cred.gid = c->gid;
  // The kernel leaves the umask to us (FUSE_CAP_DONT_MASK): the metadata
  // layer applies it unless the parent has a default ACL.
  cred.umask = c->umask;
  cred.pid = c->pid;
  return cred;
}

fuse_entry_param entry_of(const DaemonContext& ctx, const Attr& attr) {
  fuse_entry_param e{};
  e.ino = attr.ino;
  // The kernel made the root's inode at mount with generation 0, and warns
  // and overrides when a lookup (a ".." that climbs to the root) says
  // otherwise; the media's root keeps its own generation.
  e.generation = attr.ino == format::kRootIno ? 0 : attr.generation;
  e.attr = attr.to_stat();
  e.attr_timeout = ctx.attr_timeout_s;
  e.entry_timeout = ctx.entry_timeout_s;
  return e;
}

void reply_entry_ref(Reply& reply, const Attr& attr) {
  if (reply.entry(entry_of(reply.ctx(), attr)) != 0) reply.ctx().fs->forget(attr.ino, 1);
}

void op_init(void* userdata, fuse_conn_info* conn) {
  auto& ctx = *static_cast<DaemonContext*>(userdata);
  auto enable = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  enable(FUSE_CAP_ASYNC_READ);
  enable(FUSE_CAP_READDIRPLUS);
  enable(FUSE_CAP_READDIRPLUS_AUTO);
  // open() handles O_TRUNC in the same transaction as the open.
  enable(FUSE_CAP_ATOMIC_O_TRUNC);
  enable(FUSE_CAP_PARALLEL_DIROPS);
  // No auto_inval_data (libfuse turns it on by default): with it the kernel
  // drops all of a file's cached pages whenever an attribute reply shows a
  // new mtime, which after any write is the next read, and can drop a page
  // holding a write(2) that has not reached the daemon yet; a concurrent
  // reader then caches the old bytes and the writer reads them back after
  // its write returned (docs/daemon.md "Caching and coherence"). Every
  // change of file data goes through this kernel, which updates its own
  // pages, except stores through a direct mapping, which change no mtime.
  // Kernels before FUSE 7.34 (Linux 5.16) may leave the destination's
  // cached pages of a copy_file_range in place (the truncation after the
  // copy came later); there the option stays, and with it the race above.
  if (conn->proto_minor >= 34) {
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  } else {
    enable(FUSE_CAP_AUTO_INVAL_DATA);
  }
  enable(FUSE_CAP_CACHE_SYMLINKS);
  // Lookups of "." and ".." by inode number (meta/handle_lookup.cc): the
  // kernel's export operations, so that open_by_handle_at(2) and nfsd find
  // an inode it has evicted, or one from before a restart (docs/daemon.md
  // "File handles and export").
  enable(FUSE_CAP_EXPORT_SUPPORT);
  // chattr / lsattr on directories too (ops_ioctl.cc).
  enable(FUSE_CAP_IOCTL_DIR);
  // The writeback cache only when asked for: the kernel then keeps dirty
  // pages and its own size and times until writeback, so write(2) is no
  // longer durable when it returns (docs/daemon.md "Caching and coherence").
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  if (ctx.options->writeback_cache) {
    if ((conn->capable & FUSE_CAP_WRITEBACK_CACHE) != 0) {
      conn->want |= FUSE_CAP_WRITEBACK_CACHE;
      ctx.writeback_cache = true;
      if (ctx.leases != nullptr) ctx.leases->require_flushed_maps();
    } else {
      log().warn("the kernel does not offer the writeback cache: writes go through");
    }
  }
  // Splice would only help with write_buf; reads already reply from the
  // region without a copy.
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  // POSIX ACLs (docs/daemon.md "POSIX ACLs"): the kernel checks them,
  // reading them through getxattr; the metadata layer keeps them in step
  // with the mode and inherits default ACLs, so it must also decide when the
  // umask applies (not under a default ACL): DONT_MASK hands it the
  // unmasked mode and the umask.
  enable(FUSE_CAP_POSIX_ACL);
  if ((conn->want & FUSE_CAP_POSIX_ACL) != 0) {
    enable(FUSE_CAP_DONT_MASK);
  } else {
    conn->want &= ~FUSE_CAP_DONT_MASK;
  }
  // Set-id bits are cleared by the daemon (ops_setid.cc) under
  // HANDLE_KILLPRIV_V2, negotiated in direct_io_mmap.cc: v1 would have it
  // clear them on every write, whatever the writer's privilege.
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  // No lock handlers exist; keep it that way (DESIGN 7).
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);

  conn->max_write = 1u << 20;
  // The kernel caps read-ahead at what it offered; never ask for less.
  if (conn->max_readahead < (1u << 20)) conn->max_readahead = 1u << 20;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  conn->time_gran = 1;
}

void op_destroy(void* userdata) {
  DaemonContext& ctx = context_of(userdata);
  Status st = ctx.unmount_once();
  if (!st.is_ok()) log().error("unmount: {}", st.to_string());
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  handle(req, "lookup", parent, [&](Reply& r) {
    if (name_of(name) == "." || name_of(name) == "..") {
      log().debug("lookup of '{}' by inode number {}", name, parent);
    }
    auto attr = r.ctx().fs->lookup(parent, name_of(name));
    if (attr.is_ok()) {
      reply_entry_ref(r, *attr);
    } else if (attr.status().code() == Code::kNotFound) {
      // A negative entry: the kernel caches the absence for
      // negative_timeout and drops it itself when it creates the name
      // through us. Not an error reply, so Reply::error does not log it;
      // someone chasing a missing file wants to see it (at debug level,
      // formatted only when enabled).
      log().debug("fuse lookup (inode {}): '{}' not found; the kernel caches that for {} s",
                  parent, name, r.ctx().negative_timeout_s);
      fuse_entry_param e{};
      e.entry_timeout = r.ctx().negative_timeout_s;
      r.entry(e);
    } else {
      r.error(attr.status());
    }
  });
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  handle(req, "forget", ino, [&](Reply& r) {
    r.ctx().fs->forget(ino, nlookup);
    r.none();
  });
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  handle(req, "forget_multi", 0, [&](Reply& r) {
    for (size_t i = 0; i < count; ++i) r.ctx().fs->forget(forgets[i].ino, forgets[i].nlookup);
    r.none();
  });
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  (void)fi;
  handle(req, "getattr", ino, [&](Reply& r) {
    auto attr = r.ctx().fs->getattr(ino);
    if (!attr.is_ok()) return r.error(attr.status());
    r.attr(attr->to_stat(), r.ctx().attr_timeout_s);
  });
}

namespace {

// truncate(2) and ftruncate(2) arrive here: a layout change.
bool try_setattr(Reply& r, Ino ino, const SetAttr& s) {
  auto attr = r.ctx().fs->setattr(ino, s);
  if (!attr.is_ok() && sealed(attr.status())) return false;
  if (!attr.is_ok()) return r.error(attr.status()), true;
  r.attr(attr->to_stat(), r.ctx().attr_timeout_s);
  return true;
}

// Renaming over the last link of a leased file frees its blocks.
bool try_rename(Reply& r, Ino parent, const std::string& name, Ino newparent,
                const std::string& newname, unsigned flags, const Cred& cred) {
  Status st = r.ctx().fs->rename(parent, name, newparent, newname, flags, cred);
  if (sealed(st)) return false;
  r.error(st);
  return true;
}

}  // namespace

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* in, int to_set,
                fuse_file_info* fi) {
  (void)fi;
  handle(req, "setattr", ino, [&](Reply& r) {
    SetAttr s;
    if (to_set & FUSE_SET_ATTR_MODE) {
      s.valid |= SetAttr::kMode;
      s.mode = in->st_mode;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
      s.valid |= SetAttr::kUid;
      s.uid = in->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
      s.valid |= SetAttr::kGid;
      s.gid = in->st_gid;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
      if (in->st_size < 0) return r.error(EINVAL);
      s.valid |= SetAttr::kSize;
      s.size = static_cast<uint64_t>(in->st_size);
    }
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
      s.valid |= SetAttr::kAtimeNow;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
      s.valid |= SetAttr::kAtime;
      s.atime = in->st_atim;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
      s.valid |= SetAttr::kMtimeNow;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
      s.valid |= SetAttr::kMtime;
      s.mtime = in->st_mtim;
    }
    if (to_set & FUSE_SET_ATTR_CTIME) {
      s.valid |= SetAttr::kCtime;
      s.ctime = in->st_ctim;
    }
    // With the writeback cache the kernel flushes the mtime it kept as a
    // setattr of mtime (and ctime) alone: an append-only file accepts that.
    s.cached_times = r.ctx().writeback_cache &&
                     (s.valid & ~(SetAttr::kMtime | SetAttr::kCtime)) == 0;
    // chown(f, -1, -1) arrives with nothing to set (the kernel dropped the
    // mode it would have cleared: it leaves that to us under KILLPRIV_V2),
    // or, under the writeback cache, with a bare ctime (the kernel trusts
    // its own cmtime then).
    if ((to_set & ~FUSE_SET_ATTR_CTIME) == 0) s.valid |= SetAttr::kKeepOwner;
    // Truncate and chown clear set-id bits by the caller's privilege.
    if (s.valid & (SetAttr::kSize | SetAttr::kUid | SetAttr::kGid | SetAttr::kKeepOwner)) {
      s.caller = setid_caller_of(req);
    }
    if (try_setattr(r, ino, s)) return;
    defer_layout_change(r, ino, SEALFS_BREAK_TRUNCATE,
                        [ino, s](Reply& again) { return try_setattr(again, ino, s); });
  });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  handle(req, "readlink", ino, [&](Reply& r) {
    auto target = r.ctx().fs->readlink(ino);
    if (!target.is_ok()) return r.error(target.status());
    r.readlink(target->c_str());
  });
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  handle(req, "mknod", parent, [&](Reply& r) {
    auto attr = r.ctx().fs->mknod(parent, name_of(name), mode, static_cast<uint32_t>(rdev),
                                  cred_of(req));
    if (!attr.is_ok()) return r.error(attr.status());
    reply_entry_ref(r, *attr);
  });
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  handle(req, "mkdir", parent, [&](Reply& r) {
    auto attr = r.ctx().fs->mkdir(parent, name_of(name), mode, cred_of(req));
    if (!attr.is_ok()) return r.error(attr.status());
    reply_entry_ref(r, *attr);
  });
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  handle(req, "unlink", parent,
         [&](Reply& r) { r.error(r.ctx().fs->unlink(parent, name_of(name))); });
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  handle(req, "rmdir", parent,
         [&](Reply& r) { r.error(r.ctx().fs->rmdir(parent, name_of(name))); });
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  handle(req, "symlink", parent, [&](Reply& r) {
    auto attr = r.ctx().fs->symlink(parent, name_of(name), name_of(target), cred_of(req));
    if (!attr.is_ok()) return r.error(attr.status());
    reply_entry_ref(r, *attr);
  });
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
               const char* newname, unsigned int flags) {
  handle(req, "rename", parent, [&](Reply& r) {
    // RENAME_WHITEOUT: overlayfs, with sealfs as its upper layer.
    constexpr unsigned kKnown = RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT;
    if ((flags & ~kKnown) != 0 ||
        ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)))) {
      return r.error(EINVAL);
    }
    std::string from(name_of(name)), to(name_of(newname));
    const Cred cred = cred_of(req);
    if (try_rename(r, parent, from, newparent, to, flags, cred)) return;
    auto target = r.ctx().fs->lookup(newparent, to);
    if (!target.is_ok()) return r.error(target.status());
    r.ctx().fs->forget(target->ino, 1);
    defer_layout_change(r, target->ino, SEALFS_BREAK_RENAME,
                        [parent, from, newparent, to, flags, cred](Reply& again) {
                          return try_rename(again, parent, from, newparent, to, flags, cred);
                        });
  });
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  handle(req, "link", ino, [&](Reply& r) {
    auto attr = r.ctx().fs->link(ino, newparent, name_of(newname));
    if (!attr.is_ok()) return r.error(attr.status());
    reply_entry_ref(r, *attr);
  });
}

void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  handle(req, "statfs", ino, [&](Reply& r) {
    StatFs s = r.ctx().fs->statfs();
    struct statvfs st {};
    st.f_bsize = s.block_size;
    st.f_frsize = s.block_size;
    st.f_blocks = s.blocks;
    st.f_bfree = s.free_blocks;
    st.f_bavail = s.free_blocks;
    st.f_files = s.inodes;
    st.f_ffree = s.free_inodes;
    st.f_favail = s.free_inodes;
    st.f_namemax = s.name_max;
    r.statfs(st);
  });
}

}  // namespace sealfs::fuse
