#include "fuse/log_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <fuse_log.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "util/log.h"

namespace sealfs::fuse {
namespace {

constexpr const char* kPattern = "%^%Y-%m-%d %H:%M:%S.%e %l%$ [%t] %v";

std::mutex g_file_mu;
std::shared_ptr<spdlog::sinks::sink> g_file_sink;  // the --log-file sink, if any

std::shared_ptr<spdlog::sinks::sink> file_sink() {
  std::lock_guard lock(g_file_mu);
  return g_file_sink;
}

void install(std::vector<spdlog::sink_ptr> sinks, const std::string& level,
             const char* pattern = kPattern) {
  auto logger = std::make_shared<spdlog::logger>("sealfs", sinks.begin(), sinks.end());
  logger->set_pattern(pattern);
  // Every line reaches the file at once: a daemon that is killed or crashes
  // keeps what it said last, and `tail -f` shows it as it happens.
  logger->flush_on(spdlog::level::trace);
  set_log(std::move(logger));
  set_log_level(level);
}

spdlog::level::level_enum level_of_fuse(fuse_log_level level) {
  switch (level) {
    case FUSE_LOG_EMERG: case FUSE_LOG_ALERT: case FUSE_LOG_CRIT: return spdlog::level::critical;
    case FUSE_LOG_ERR: return spdlog::level::err;
    case FUSE_LOG_WARNING: return spdlog::level::warn;
    case FUSE_LOG_NOTICE: case FUSE_LOG_INFO: return spdlog::level::info;
    case FUSE_LOG_DEBUG: return spdlog::level::debug;
  }
  return spdlog::level::info;
}

// libfuse's messages ("fuse: ...", one line each, newline included).
void from_libfuse(fuse_log_level level, const char* fmt, va_list ap) {
  char text[1024];
  std::vsnprintf(text, sizeof text, fmt, ap);
  std::string_view line(text);
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  log().log(level_of_fuse(level), "{}", line);
}

}  // namespace

Status start_daemon_log(const DaemonOptions& options) {
  std::vector<spdlog::sink_ptr> sinks = {std::make_shared<spdlog::sinks::stderr_color_sink_mt>()};
  if (!options.log_file.empty()) {
    // Created 0640 if missing (the umask may take more away); appended to,
    // never truncated, so a restart keeps the previous daemon's lines.
    int fd = ::open(options.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
      return Status(Code::kIoError,
                    "--log-file=" + options.log_file + ": " + std::strerror(errno));
    }
    // Lines appended to the region itself would grow it past its last
    // block, where the backup superblock is looked for.
    struct stat log_st {}, region_st {};
    const bool is_region = ::fstat(fd, &log_st) == 0 &&
                           ::stat(options.target.c_str(), &region_st) == 0 &&
                           log_st.st_dev == region_st.st_dev && log_st.st_ino == region_st.st_ino;
    ::close(fd);
    if (is_region) {
      return Status(Code::kInvalid, "--log-file=" + options.log_file +
                                        " is the region itself; give another file");
    }
    std::shared_ptr<spdlog::sinks::sink> sink;
    try {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.log_file, false);
    } catch (const spdlog::spdlog_ex& e) {
      return Status(Code::kIoError, "--log-file=" + options.log_file + ": " + e.what());
    }
    {
      std::lock_guard lock(g_file_mu);
      g_file_sink = sink;
    }
    sinks.push_back(std::move(sink));
  }
  install(std::move(sinks), options.log_level);
  fuse_set_log_func(from_libfuse);
  return Status::ok();
}

void log_after_detach(const DaemonOptions& options) {
  if (auto sink = file_sink()) {
    install({std::move(sink)}, options.log_level);
    return;
  }
  // syslog stamps the time, the ident and the pid itself.
  install({std::make_shared<spdlog::sinks::syslog_sink_mt>("sealfs", LOG_PID, LOG_DAEMON, false)},
          options.log_level, "%l [%t] %v");
}

void error_to_log_file(std::string_view message) {
  auto sink = file_sink();
  if (sink == nullptr) return;
  spdlog::logger file_only("sealfs", sink);
  file_only.set_pattern(kPattern);
  file_only.error("{}", message);
  file_only.flush();
}

}  // namespace sealfs::fuse
