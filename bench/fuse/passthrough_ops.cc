#include "passthrough_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>

#include "passthrough_inodes.h"

namespace passthrough {
namespace {

// libfuse passthrough_ll's default (cache=auto): a passthrough daemon cannot
// safely cache much longer, since its backing directory may change under it
// without a word. sealfs owns its region and caches for a day
// (docs/daemon.md "Caching and coherence"); the README says so beside the
// metadata rows.
constexpr double kEntryTimeoutS = 1.0;
constexpr double kAttrTimeoutS = 1.0;

InodeTable& table(fuse_req_t req) { return *static_cast<InodeTable*>(fuse_req_userdata(req)); }
int fd_of(fuse_req_t req, fuse_ino_t ino) { return table(req).fd_of(ino); }

// An O_PATH descriptor cannot be read or written; /proc reopens it.
struct ProcPath {
  explicit ProcPath(int fd) { std::snprintf(text, sizeof text, "/proc/self/fd/%d", fd); }
  char text[32];
};

// Fills e for name in parent and counts the lookup; 0 or an errno.
int lookup_entry(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_entry_param* e) {
  *e = fuse_entry_param{};
  int fd = openat(fd_of(req, parent), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    int err = errno;
    close(fd);
    return err;
  }
  try {
    e->ino = table(req).remember(fd, e->attr);
  } catch (const std::bad_alloc&) {
    close(fd);
    return ENOMEM;
  }
  e->entry_timeout = kEntryTimeoutS;
  e->attr_timeout = kAttrTimeoutS;
  return 0;
}

void reply_entry_or_error(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_entry_param e;
  int err = lookup_entry(req, parent, name, &e);
  if (err != 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_entry(req, &e);
  }
}

void reply_status(fuse_req_t req, int rc) { fuse_reply_err(req, rc == 0 ? 0 : errno); }

// The kernel already sends every O_DIRECT request here; the backing store is
// tmpfs, whose O_DIRECT is its page cache anyway, and libfuse's write
// buffers are not aligned for a backing O_DIRECT descriptor.
int backing_flags(int flags) { return (flags & ~(O_NOFOLLOW | O_DIRECT)) | O_CLOEXEC; }

void pt_init(void*, fuse_conn_info* conn) {
  // Write-through, no page cache kept across opens (keep_cache stays 0 in
  // open): the plain passthrough_ll configuration the benchmark compares to.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->max_write = 1u << 20;
}

void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_entry_or_error(req, parent, name);
}

void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  table(req).forget(ino, nlookup);
  fuse_reply_none(req);
}

void pt_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) table(req).forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void pt_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  struct stat st {};
  if (fstatat(fd_of(req, ino), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_reply_attr(req, &st, kAttrTimeoutS);
}

// One setattr field; 0 or an errno. fi is the open file when the kernel
// names one (ftruncate, fchmod), else the change goes through /proc.
int set_one(int fd, const struct stat* attr, int to_set, fuse_file_info* fi) {
  ProcPath path(fd);
  if (to_set & FUSE_SET_ATTR_MODE) {
    int rc = fi ? fchmod(static_cast<int>(fi->fh), attr->st_mode) : chmod(path.text, attr->st_mode);
    if (rc != 0) return errno;
  }
  if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : static_cast<uid_t>(-1);
    gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : static_cast<gid_t>(-1);
    if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return errno;
  }
  if (to_set & FUSE_SET_ATTR_SIZE) {
    int rc = fi ? ftruncate(static_cast<int>(fi->fh), attr->st_size)
                : truncate(path.text, attr->st_size);
    if (rc != 0) return errno;
  }
  if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
    struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
      times[0].tv_nsec = UTIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
      times[0] = attr->st_atim;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
      times[1].tv_nsec = UTIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
      times[1] = attr->st_mtim;
    }
    int rc = fi ? futimens(static_cast<int>(fi->fh), times) : utimensat(AT_FDCWD, path.text, times, 0);
    if (rc != 0) return errno;
  }
  return 0;
}

void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  int err = set_one(fd_of(req, ino), attr, to_set, fi);
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  pt_getattr(req, ino, fi);
}

void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  if (mkdirat(fd_of(req, parent), name, mode) != 0) {
    fuse_reply_err(req, errno);
    return;
  }
  reply_entry_or_error(req, parent, name);
}

void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_status(req, unlinkat(fd_of(req, parent), name, 0));
}

void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_status(req, unlinkat(fd_of(req, parent), name, AT_REMOVEDIR));
}

void pt_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
  int fd = openat(fd_of(req, parent), name, backing_flags(fi->flags) | O_CREAT, mode);
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_entry_param e;
  int err = lookup_entry(req, parent, name, &e);
  if (err != 0) {
    close(fd);
    fuse_reply_err(req, err);
    return;
  }
  fi->fh = static_cast<uint64_t>(fd);
  if (fuse_reply_create(req, &e, fi) != 0) close(fd);
}

void pt_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  int fd = open(ProcPath(fd_of(req, ino)).text, backing_flags(fi->flags));
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fi->fh = static_cast<uint64_t>(fd);
  fi->keep_cache = 0;
  fi->direct_io = 0;
  if (fuse_reply_open(req, fi) != 0) close(fd);
}

void pt_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  // pread into one buffer per serving thread, as large as the largest
  // request. (fuse_reply_data with a descriptor buffer and no splice was
  // measured at 20 MiB/s for 1 MiB sequential reads on the development VM,
  // 30 times slower.)
  thread_local std::unique_ptr<char[]> buf;
  thread_local size_t capacity = 0;
  if (capacity < size) {
    buf.reset(new (std::nothrow) char[size]);
    capacity = buf ? size : 0;
    if (!buf) {
      fuse_reply_err(req, ENOMEM);
      return;
    }
  }
  ssize_t n = pread(static_cast<int>(fi->fh), buf.get(), size, off);
  if (n < 0) {
    fuse_reply_err(req, errno);
  } else {
    fuse_reply_buf(req, buf.get(), static_cast<size_t>(n));
  }
}

void pt_write_buf(fuse_req_t req, fuse_ino_t, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  fuse_bufvec out{};
  out.count = 1;
  out.buf[0].size = fuse_buf_size(in);
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = static_cast<int>(fi->fh);
  out.buf[0].pos = off;
  ssize_t n = fuse_buf_copy(&out, in, static_cast<fuse_buf_copy_flags>(0));
  if (n < 0) {
    fuse_reply_err(req, static_cast<int>(-n));
  } else {
    fuse_reply_write(req, static_cast<size_t>(n));
  }
}

void pt_flush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  // close(2) of a duplicate: what the backing filesystem does at close,
  // without closing the descriptor other dups of the file still use.
  reply_status(req, close(dup(static_cast<int>(fi->fh))));
}

void pt_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  close(static_cast<int>(fi->fh));
  fuse_reply_err(req, 0);
}

void pt_fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  int fd = static_cast<int>(fi->fh);
  reply_status(req, datasync ? fdatasync(fd) : fsync(fd));
}

void pt_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t len, fuse_file_info* fi) {
  reply_status(req, fallocate(static_cast<int>(fi->fh), mode, off, len));
}

// An open directory: the stream and the entry that did not fit the last
// reply (handed out first next time).
struct OpenDir {
  DIR* stream = nullptr;
  off_t offset = 0;
  struct dirent* pending = nullptr;
};

OpenDir* open_dir_of(fuse_file_info* fi) { return reinterpret_cast<OpenDir*>(fi->fh); }

void pt_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto* dir = new (std::nothrow) OpenDir;
  if (dir == nullptr) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  int fd = openat(fd_of(req, ino), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  dir->stream = fd < 0 ? nullptr : fdopendir(fd);
  if (dir->stream == nullptr) {
    int err = errno;
    if (fd >= 0) close(fd);
    delete dir;
    fuse_reply_err(req, err);
    return;
  }
  fi->fh = reinterpret_cast<uint64_t>(dir);
  if (fuse_reply_open(req, fi) != 0) {
    closedir(dir->stream);
    delete dir;
  }
}

void pt_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  OpenDir* dir = open_dir_of(fi);
  char* buf = static_cast<char*>(std::malloc(size));
  if (buf == nullptr) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  if (off != dir->offset) {
    seekdir(dir->stream, off);
    dir->offset = off;
    dir->pending = nullptr;
  }
  size_t used = 0;
  int err = 0;
  for (;;) {
    if (dir->pending == nullptr) {
      errno = 0;
      dir->pending = readdir(dir->stream);
      if (dir->pending == nullptr) {
        err = errno;
        break;
      }
    }
    struct stat st {};
    st.st_ino = dir->pending->d_ino;
    st.st_mode = static_cast<mode_t>(dir->pending->d_type) << 12;
    size_t need = fuse_add_direntry(req, buf + used, size - used, dir->pending->d_name, &st,
                                    dir->pending->d_off);
    if (need > size - used) break;  // stays pending for the next call
    used += need;
    dir->offset = dir->pending->d_off;
    dir->pending = nullptr;
  }
  if (err != 0 && used == 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_buf(req, buf, used);
  }
  std::free(buf);
}

void pt_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  OpenDir* dir = open_dir_of(fi);
  closedir(dir->stream);
  delete dir;
  fuse_reply_err(req, 0);
}

void pt_statfs(fuse_req_t req, fuse_ino_t ino) {
  struct statvfs sv {};
  if (fstatvfs(fd_of(req, ino), &sv) != 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_reply_statfs(req, &sv);
}

fuse_lowlevel_ops make_operations() {
  // Not implemented, on purpose: xattrs (libfuse answers ENOSYS once and the
  // kernel stops asking, so writes carry no security.capability lookup),
  // links, renames, special files.
  fuse_lowlevel_ops ops{};
  ops.init = pt_init;
  ops.lookup = pt_lookup;
  ops.forget = pt_forget;
  ops.forget_multi = pt_forget_multi;
  ops.getattr = pt_getattr;
  ops.setattr = pt_setattr;
  ops.mkdir = pt_mkdir;
  ops.unlink = pt_unlink;
  ops.rmdir = pt_rmdir;
  ops.create = pt_create;
  ops.open = pt_open;
  ops.read = pt_read;
  ops.write_buf = pt_write_buf;
  ops.flush = pt_flush;
  ops.release = pt_release;
  ops.fsync = pt_fsync;
  ops.fallocate = pt_fallocate;
  ops.opendir = pt_opendir;
  ops.readdir = pt_readdir;
  ops.releasedir = pt_releasedir;
  ops.statfs = pt_statfs;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& operations() {
  static const fuse_lowlevel_ops ops = make_operations();
  return ops;
}

}  // namespace passthrough
