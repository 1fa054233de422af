#include "stress_run.h"

#include <cerrno>
#include <cstring>
#include <sstream>

namespace sealfs::itest::stress {

using namespace std::chrono_literals;

void Violations::add(const std::string& what) {
  std::lock_guard lock(mu_);
  // A holder that rechecks a bad mapping says the same thing again.
  for (const std::string& seen : list_) {
    if (seen == what) return;
  }
  list_.push_back(what);
}

std::vector<std::string> Violations::all() const {
  std::lock_guard lock(mu_);
  return list_;
}

size_t Violations::count() const {
  std::lock_guard lock(mu_);
  return list_.size();
}

Trace::Trace(const std::string& path) : path_(path) {
  out_ = std::fopen(path.c_str(), "we");
}

Trace::~Trace() {
  if (out_ != nullptr) std::fclose(out_);
}

double Trace::seconds() const {
  return std::chrono::duration<double>(SteadyClock::now() - start_).count();
}

void Trace::line(const std::string& who, const std::string& text) {
  std::lock_guard lock(mu_);
  if (out_ == nullptr) return;
  std::fprintf(out_, "%10.3f %-8s %s\n", seconds(), who.c_str(), text.c_str());
  // A hung run may end by a timeout's SIGKILL: keep every line on disk.
  std::fflush(out_);
}

uint64_t Lineages::create(int file, const std::string& how, double at) {
  std::lock_guard lock(mu_);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", at);
  infos_.push_back({file, how + " at " + buf});
  return infos_.size() - 1;
}

void Lineages::retire(uint64_t lineage, const std::string& how, double at) {
  std::lock_guard lock(mu_);
  if (lineage == 0 || lineage >= infos_.size()) return;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", at);
  infos_[lineage].story += ", " + how + " at " + buf;
}

std::string Lineages::describe(uint64_t lineage) const {
  std::lock_guard lock(mu_);
  if (lineage == 0 || lineage >= infos_.size()) {
    return "lineage " + std::to_string(lineage) + " (never created)";
  }
  return "lineage " + std::to_string(lineage) + " of f" + std::to_string(infos_[lineage].file) +
         " (" + infos_[lineage].story + ")";
}

void OpStats::record(const std::string& kind, double seconds, int err) {
  std::lock_guard lock(mu_);
  Kind& k = kinds_[kind];
  ++k.calls;
  k.max_seconds = std::max(k.max_seconds, seconds);
  if (seconds > 0.5) ++k.slow;
  if (err != 0) ++k.errors[err];
}

void OpStats::count(const std::string& what, uint64_t n) {
  std::lock_guard lock(mu_);
  counters_[what] += n;
}

uint64_t OpStats::get(const std::string& what) const {
  std::lock_guard lock(mu_);
  auto it = counters_.find(what);
  return it == counters_.end() ? 0 : it->second;
}

std::string OpStats::summary() const {
  std::lock_guard lock(mu_);
  std::ostringstream out;
  char buf[160];
  for (const auto& [name, k] : kinds_) {
    std::snprintf(buf, sizeof buf, "  %-16s calls %6llu  waited>0.5s %5llu  max %6.3f s",
                  name.c_str(), static_cast<unsigned long long>(k.calls),
                  static_cast<unsigned long long>(k.slow), k.max_seconds);
    out << buf;
    for (const auto& [err, n] : k.errors) out << "  " << strerrorname_np(err) << " " << n;
    out << "\n";
  }
  out << " ";
  for (const auto& [name, n] : counters_) out << " " << name << "=" << n;
  out << "\n";
  return out.str();
}

Watchdog::Watchdog(Violations& violations, Trace& trace, std::chrono::milliseconds bound,
                   std::chrono::milliseconds hard_limit, std::function<void()> on_slow,
                   std::function<void()> on_hang)
    : violations_(violations), trace_(trace), bound_(bound), hard_limit_(hard_limit),
      on_slow_(std::move(on_slow)), on_hang_(std::move(on_hang)) {
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

InFlight& Watchdog::slot(const std::string& who) {
  std::lock_guard lock(mu_);
  slots_.emplace_back(who, std::make_unique<InFlight>());
  return *slots_.back().second;
}

void Watchdog::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    // Polling: a blocked call cannot be waited on from outside.
    cv_.wait_for(lock, 50ms);
    const auto now = SteadyClock::now();
    bool slow = false, hang = false;
    for (auto& [who, s] : slots_) {
      std::lock_guard op(s->mu);
      if (!s->active) continue;
      const auto running = now - s->start;
      if (running > bound_ && !s->reported) {
        s->reported = true;
        const std::string text = who + ": " + s->what + " still running after " +
                                 std::to_string(bound_.count()) + " ms (the bound)";
        violations_.add(text);
        trace_.line("watchdog", text);
        slow = true;
      }
      if (running > hard_limit_ && !hang_handled_) {
        hang_handled_ = true;
        const std::string text = who + ": " + s->what + " hung for " +
                                 std::to_string(hard_limit_.count()) +
                                 " ms; ending the daemon to end the run";
        violations_.add(text);
        trace_.line("watchdog", text);
        hang = true;
      }
    }
    // Outside the slots' locks: these take time (a debugger, a kill).
    if (slow && !slow_handled_) {
      slow_handled_ = true;
      on_slow_();
    }
    if (hang) on_hang_();
  }
}

Timed timed_call(InFlight& slot, const std::string& what, const std::function<long()>& call) {
  const auto start = SteadyClock::now();
  {
    std::lock_guard lock(slot.mu);
    slot.what = what;
    slot.start = start;
    slot.active = true;
    slot.reported = false;
  }
  errno = 0;
  Timed t;
  t.rc = call();
  t.err = t.rc < 0 ? errno : 0;
  t.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  std::lock_guard lock(slot.mu);
  slot.active = false;
  return t;
}

}  // namespace sealfs::itest::stress
