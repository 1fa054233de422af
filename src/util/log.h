// The project's loggers. Quiet by default (warnings and errors only); the
// daemon and tools raise the level with -d / --log-level.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string_view>

namespace sealfs {

// The process-wide "sealfs" logger (stderr unless replaced).
spdlog::logger& log();
std::shared_ptr<spdlog::logger> log_ptr();
// Replaces the process-wide logger (tests capture it, the daemon may send it
// to a file).
void set_log(std::shared_ptr<spdlog::logger> logger);
// Parses "trace|debug|info|warn|error|critical|off"; false if unknown.
bool set_log_level(std::string_view level);

}  // namespace sealfs
