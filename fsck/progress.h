// ProgressMeter: fsck's progress for long checks, as e2fsck -C shows it.
//
// On a terminal: one line rewritten in place ("\r"), "Phase 3/8 inodes:
// 41.5% (182k/s)", at most ten times a second, erased when the check ends.
// To a descriptor given with -C FD (not a terminal): e2fsck's machine form,
// one "PHASE DONE TOTAL TARGET" line per update, for front ends. The caller
// decides whether there is a meter at all (off with -q, or when stderr is
// not a terminal and no -C was given).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "fsck/report.h"

namespace sealfs::fsck {

class ProgressMeter {
 public:
  enum class Style { kTerminal, kMachine };
  ProgressMeter(int fd, Style style, std::string target)
      : fd_(fd), style_(style), target_(std::move(target)) {}
  ~ProgressMeter() { finish(); }

  // FsckOptions::progress calls this.
  void update(Phase phase, uint64_t done, uint64_t total);
  // Erases the terminal line (idempotent).
  void finish();

  // The terminal line for a phase at `done` of `total` after `seconds`.
  static std::string line(Phase phase, uint64_t done, uint64_t total, double seconds);

 private:
  void write_all(const std::string& text);

  int fd_;
  Style style_;
  std::string target_;
  Phase phase_ = Phase::kSuperblock;
  bool started_ = false;
  bool shown_ = false;
  std::chrono::steady_clock::time_point phase_start_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace sealfs::fsck
