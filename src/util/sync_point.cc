#include "util/sync_point.h"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>

namespace sealfs::sync_point {
namespace {

std::mutex g_mu;
std::map<std::string, std::shared_ptr<std::function<void()>>, std::less<>> g_points;
std::atomic<bool> g_any{false};  // keeps unarmed points to one load

}  // namespace

void arm(const std::string& name, std::function<void()> callback) {
  std::lock_guard lock(g_mu);
  g_points[name] = std::make_shared<std::function<void()>>(std::move(callback));
  g_any.store(true, std::memory_order_release);
}

void disarm(const std::string& name) {
  std::lock_guard lock(g_mu);
  g_points.erase(name);
  g_any.store(!g_points.empty(), std::memory_order_release);
}

void disarm_all() {
  std::lock_guard lock(g_mu);
  g_points.clear();
  g_any.store(false, std::memory_order_release);
}

void reached(const char* name) {
  if (!g_any.load(std::memory_order_acquire)) return;
  std::shared_ptr<std::function<void()>> callback;
  {
    std::lock_guard lock(g_mu);
    auto it = g_points.find(std::string_view(name));
    if (it == g_points.end()) return;
    callback = it->second;
  }
  (*callback)();  // outside g_mu: a callback may arm or disarm points
}

}  // namespace sealfs::sync_point
