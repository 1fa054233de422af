// The daemon's life: open the region, mount the filesystem, serve FUSE
// requests until unmounted or signalled, then unmount exactly once.
#pragma once

#include "fuse/options.h"

namespace sealfs::fuse {

// Returns the process exit status: 0 after a clean unmount, 1 if the mount
// failed (the reason is on stderr) or the final unmount reported an error.
int run_daemon(const DaemonOptions& options);

}  // namespace sealfs::fuse
