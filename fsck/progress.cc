#include "fsck/progress.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace sealfs::fsck {

namespace {

constexpr auto kInterval = std::chrono::milliseconds(100);

// Phase 3 walks inode table blocks; phases 4 and 6 the inodes in use.
const char* item_name(Phase phase) {
  return phase == Phase::kInodes ? "inode blocks" : "inodes";
}

std::string rate_text(double per_second) {
  char buf[32];
  if (per_second >= 1e6) {
    std::snprintf(buf, sizeof(buf), "%.1fM/s", per_second / 1e6);
  } else if (per_second >= 1e3) {
    std::snprintf(buf, sizeof(buf), "%.0fk/s", per_second / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%.0f/s", per_second);
  }
  return buf;
}

}  // namespace

std::string ProgressMeter::line(Phase phase, uint64_t done, uint64_t total, double seconds) {
  double percent =
      total == 0 ? 100.0 : 100.0 * static_cast<double>(done) / static_cast<double>(total);
  char buf[128];
  std::snprintf(buf, sizeof(buf), "Phase %d/%d %s: %5.1f%% (%llu of %llu %s, %s)",
                static_cast<int>(phase) + 1, kPhaseCount, phase_name(phase), percent,
                static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                item_name(phase),
                rate_text(seconds > 0 ? static_cast<double>(done) / seconds : 0).c_str());
  return buf;
}

void ProgressMeter::update(Phase phase, uint64_t done, uint64_t total) {
  auto now = std::chrono::steady_clock::now();
  if (!started_ || phase != phase_) {
    started_ = true;
    phase_ = phase;
    phase_start_ = now;
  } else if (now - last_ < kInterval && done != total) {
    return;
  }
  last_ = now;
  if (style_ == Style::kMachine) {
    write_all(std::to_string(static_cast<int>(phase) + 1) + " " + std::to_string(done) + " " +
              std::to_string(total) + " " + target_ + "\n");
    return;
  }
  double seconds = std::chrono::duration<double>(now - phase_start_).count();
  // "\33[K" erases what a longer earlier line left.
  write_all("\r" + line(phase, done, total, seconds) + "\33[K");
  shown_ = true;
}

void ProgressMeter::finish() {
  if (style_ == Style::kTerminal && shown_) write_all("\r\33[K");
  shown_ = false;
}

void ProgressMeter::write_all(const std::string& text) {
  size_t at = 0;
  while (at < text.size()) {
    ssize_t n = ::write(fd_, text.data() + at, text.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // progress is best effort: never fail the check for it
    at += static_cast<size_t>(n);
  }
}

}  // namespace sealfs::fsck
