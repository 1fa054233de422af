// The daemon's descriptor budget: FUSE, the region and every control-socket
// connection need one, and the engine sizes its connection cap from it.
#pragma once

namespace sealfs::fuse {

// Raises the RLIMIT_NOFILE soft limit to the hard limit (the default soft
// limit, 1024, is what a local user flooding the control socket would hit
// first). Failure is logged and otherwise ignored: the cap follows whatever
// limit there is.
void raise_fd_limit();

}  // namespace sealfs::fuse
