// Where the daemon's log goes (docs/daemon.md, "Logging").
//
//   in the foreground, and until the daemon detaches: stderr;
//   with --log-file=PATH: PATH as well, from the start, and only PATH once
//     detached (stderr is /dev/null then);
//   detached without --log-file: syslog (facility daemon, ident sealfs),
//     which drops everything on a machine without /dev/log.
//
// libfuse's own messages (fuse_log) are routed into the same logger, so they
// are not lost to /dev/null after the detach either.
#pragma once

#include <string_view>

#include "fuse/options.h"
#include "util/status.h"

namespace sealfs::fuse {

// Installs the daemon's logger at options.log_level: stderr, plus the log
// file when one is given. Fails (nothing changed) if the file cannot be
// opened for appending; the caller says so on stderr and exits.
Status start_daemon_log(const DaemonOptions& options);

// After the detach: the log file alone, else syslog.
void log_after_detach(const DaemonOptions& options);

// A message already printed on stderr by hand (a startup failure): written
// to the log file as well, at error level, when there is one.
void error_to_log_file(std::string_view message);

}  // namespace sealfs::fuse
