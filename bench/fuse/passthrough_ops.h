// The low-level operations of the benchmark's passthrough peer: each request
// is one or two system calls on the backing inode's descriptor.
#pragma once

#include <fuse_lowlevel.h>

namespace passthrough {

// The session's userdata must be a passthrough::InodeTable.
const fuse_lowlevel_ops& operations();

}  // namespace passthrough
