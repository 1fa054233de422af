// Checks the daemon makes on its command line's paths before it opens the
// region or mounts anything, so that a mistake changes nothing on disk.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>

#include "fuse/options.h"
#include "util/status.h"

namespace sealfs::fuse {

// The mount point must be a directory (a symlink to one is followed, as
// mount(8) does). A regular file, a device or a symlink to either is refused:
// mounting over it would hide a system file behind the filesystem's root.
Status check_mountpoint(const std::string& mountpoint);

// A control_socket=PATH must be free: nothing there, or a socket nobody
// listens on. Checked before the mount so that a refusal changes nothing;
// the engine checks again when it binds.
Status check_control_socket(const DaemonOptions& options);

// Whether the region's permissions let someone read or write it whom the
// mount would not let read every file: the region holds every file's bytes,
// whatever the modes inside say. Exposed are any "other" read or write bit,
// and group read or write bits unless the group is dax_group (whose members
// may map the whole region anyway) or the owner's private group. Returns the
// warning to give, or nothing.
std::optional<std::string> region_exposure(const std::string& target, const struct stat& st,
                                           std::optional<uint32_t> dax_gid);

// Stats TARGET and logs region_exposure's warning, if any, at warn level
// (stderr until the daemon detaches). Returns the warning so that it can be
// said again once the log goes to syslog.
std::optional<std::string> warn_if_region_exposed(const DaemonOptions& options);

}  // namespace sealfs::fuse
