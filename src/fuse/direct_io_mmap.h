// FUSE_DIRECT_IO_ALLOW_MMAP with libfuse 3.14.
//
// A file opened with direct_io (every inode that has had a lease other than
// an exclusive one, see lease::LeaseEngine::had_shared_lease) can be
// mmap(MAP_SHARED)'d only when the daemon
// set FUSE_DIRECT_IO_ALLOW_MMAP in its INIT reply (kernel >= 6.6); without
// it the kernel refuses such mmaps with ENODEV. libfuse 3.14 knows no such
// capability and builds the INIT reply flags from the capabilities it knows,
// so a raw bit in fuse_conn_info::want never reaches the kernel. This file
// adds the flag on the way out instead: it installs pass-through custom I/O
// (fuse_session_custom_io, in libfuse since 3.14) on the mounted descriptor,
// notes the unique id of the kernel's INIT request and, when the kernel
// offered the flag, sets it in the INIT reply. Every other message passes
// unchanged. With a libfuse that negotiates FUSE_CAP_DIRECT_IO_ALLOW_MMAP
// itself (>= 3.16) this file can go.
//
// With -o killpriv_v2 the same hook sets FUSE_HANDLE_KILLPRIV_V2 (INIT flags
// bit 28), which no
// libfuse 3.x negotiates: the daemon clears set-id bits itself with the
// caller's credentials (ops_setid.cc), and the kernel then stops sending
// getxattr("security.capability") before every write (docs/daemon.md).
#pragma once

#include <fuse_lowlevel.h>

#include "util/status.h"

namespace sealfs::fuse {

// Call after fuse_session_mount and before the request loop. One session per
// process.
// With `killpriv_v2`, FUSE_HANDLE_KILLPRIV_V2 is set as well.
Status request_direct_io_mmap(fuse_session* se, bool killpriv_v2);

// Whether the INIT reply carried the flag (false until INIT was answered,
// and on kernels that did not offer it).
bool direct_io_mmap_granted();
// Whether the INIT reply carried FUSE_HANDLE_KILLPRIV_V2.
bool killpriv_v2_granted();

}  // namespace sealfs::fuse
