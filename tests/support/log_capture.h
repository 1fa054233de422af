// Captures what the sealfs logger (util/log.h) writes, at level info and
// above, while the object lives; the previous logger comes back after.
#pragma once

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <sstream>
#include <string>

#include "util/log.h"

namespace sealfs::testing_support {

class LogCapture {
 public:
  LogCapture() : previous_(log_ptr()) {
    auto logger = std::make_shared<spdlog::logger>(
        "sealfs", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_));
    logger->set_level(spdlog::level::info);
    set_log(logger);
  }
  ~LogCapture() { set_log(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string text() const { return out_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

}  // namespace sealfs::testing_support
