#include "util/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

namespace sealfs {
namespace {

std::mutex g_mu;
// Every logger ever installed stays alive, so a reference handed out by log()
// never dangles when a test swaps the logger underneath a running thread.
std::vector<std::shared_ptr<spdlog::logger>> g_all;
std::atomic<spdlog::logger*> g_current{nullptr};

std::shared_ptr<spdlog::logger> make_default() {
  auto l = std::make_shared<spdlog::logger>(
      "sealfs", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  l->set_level(spdlog::level::warn);
  l->set_pattern("%^%Y-%m-%d %H:%M:%S.%e %l%$ [%t] %v");
  return l;
}

}  // namespace

std::shared_ptr<spdlog::logger> log_ptr() {
  std::lock_guard lock(g_mu);
  if (g_all.empty()) {
    g_all.push_back(make_default());
    g_current.store(g_all.back().get());
  }
  return g_all.back();
}

spdlog::logger& log() {
  spdlog::logger* l = g_current.load(std::memory_order_acquire);
  if (l != nullptr) return *l;
  return *log_ptr();
}

void set_log(std::shared_ptr<spdlog::logger> logger) {
  std::lock_guard lock(g_mu);
  g_all.push_back(std::move(logger));
  g_current.store(g_all.back().get(), std::memory_order_release);
}

bool set_log_level(std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") return false;
  log_ptr()->set_level(lvl);
  return true;
}

}  // namespace sealfs
