// Where the control socket may be bound, and the leftovers of daemons that
// died without removing theirs.
//
// bind(2) needs a free path, but a path given with control_socket= may name
// anything: only a socket that nobody listens on is ever removed.
#pragma once

#include <string>

#include "util/status.h"

namespace sealfs::lease {

// Ok if nothing is at `path`, or a socket whose listener is gone (connect
// is refused). kExists if something else is there (a file, a directory, a
// symlink: never followed), kBusy if a process listens on it, with the
// reason in the message. Removes nothing.
Status socket_path_free(const std::string& path);

// socket_path_free(), and if a dead socket is there, removes it so that
// bind() can take the path.
Status clear_dead_socket(const std::string& path);

// Removes, under `base`, the directories "sealfs.XXXXXX" that a daemon of
// this user made for its default socket and left behind when it died: only
// real directories (not symlinks) owned by the effective uid that hold
// nothing but a dead "control" socket (or nothing at all, for longer than a
// minute: a daemon starting now may not have bound yet). Everything else is
// left alone. Returns how many were removed.
int remove_dead_socket_dirs(const std::string& base);

}  // namespace sealfs::lease
