#include "fuse/operations.h"

#include "fuse/ops_internal.h"

namespace sealfs::fuse {

const fuse_lowlevel_ops& operations() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = op_init;
    o.destroy = op_destroy;
    o.lookup = op_lookup;
    o.forget = op_forget;
    o.forget_multi = op_forget_multi;
    o.getattr = op_getattr;
    o.setattr = op_setattr;
    o.readlink = op_readlink;
    o.mknod = op_mknod;
    o.mkdir = op_mkdir;
    o.unlink = op_unlink;
    o.rmdir = op_rmdir;
    o.symlink = op_symlink;
    o.rename = op_rename;
    o.link = op_link;
    o.statfs = op_statfs;
    o.open = op_open;
    o.create = op_create;
    o.read = op_read;
    o.write = op_write;
    // No flush: every write is durable when it returns, so close(2) has
    // nothing to send. libfuse answers ENOSYS to the first FLUSH and the
    // kernel stops sending them (fc->no_flush), which takes a round trip off
    // every close, including the lease engine's close of a received
    // descriptor. The kernel still writes back dirty mmap pages at close.
    o.release = op_release;
    o.fsync = op_fsync;
    o.fallocate = op_fallocate;
    o.lseek = op_lseek;
    o.copy_file_range = op_copy_file_range;
    o.opendir = op_opendir;
    o.readdir = op_readdir;
    o.readdirplus = op_readdirplus;
    o.releasedir = op_releasedir;
    o.fsyncdir = op_fsyncdir;
    o.setxattr = op_setxattr;
    o.getxattr = op_getxattr;
    o.listxattr = op_listxattr;
    o.removexattr = op_removexattr;
    o.ioctl = op_ioctl;
    return o;
  }();
  return ops;
}

}  // namespace sealfs::fuse
