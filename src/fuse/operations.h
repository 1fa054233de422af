// The FUSE low-level operation table of the daemon.
//
// Handlers and the replies each may send (as fuse_lowlevel.h lists them):
//   lookup, mknod, mkdir, symlink, link  entry | err   (+1 lookup reference)
//   create                               create | err  (+1 lookup, +1 open)
//   forget, forget_multi                 none
//   getattr, setattr                     attr | err
//   readlink                             readlink | err
//   unlink, rmdir, rename, flush, release, fsync, releasedir, fsyncdir,
//   setxattr, removexattr, fallocate     err (0 = success)
//   open, opendir                        open | err
//   read                                 iov (pointing into the region) | buf | err
//   write, copy_file_range               write | err
//   readdir, readdirplus                 buf | err (readdirplus: +1 lookup per
//                                        entry other than "." and "..")
//   statfs                               statfs | err
//   getxattr, listxattr                  buf | xattr (size probe) | err
//   lseek                                lseek | err
// No flock/getlk/setlk: locks stay with the kernel (DESIGN 7).
#pragma once

#include <fuse_lowlevel.h>

namespace sealfs::fuse {

const fuse_lowlevel_ops& operations();

}  // namespace sealfs::fuse
