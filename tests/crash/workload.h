// Seeded random workloads for the crash tier. Every step is one Filesystem
// call (the unit whose atomicity the tier checks); targets are picked from
// the state the live filesystem showed after the previous step, so the same
// seed replays the same calls.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "crash/fs_state.h"
#include "meta/filesystem.h"

namespace sealfs::crash {

class Workload {
 public:
  Workload(uint64_t seed, int steps) : rng_(seed), steps_(steps) {}

  // Not enumerated: fills most of the data area with kStaleWord and deletes
  // it again, then builds two files of ~150 one-block extents, so that
  // truncating or unlinking them takes several transactions.
  void setup(Filesystem& fs);

  int steps() const { return steps_; }
  // Performs step `i` (1-based, up to steps()) and says what it did. The
  // last step releases every file still open.
  std::string step(Filesystem& fs, const FsState& now, int i);

 private:
  struct Target {
    Ino parent = 0;
    std::string name;
    std::string path;
    Ino ino = 0;
  };
  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  std::string data(size_t n);
  std::string fresh_name();
  // A random existing entry (never the root or the big files) matching `pred`.
  bool pick(const FsState& now, bool (*pred)(uint32_t mode), Target& out);
  Target place_new(const FsState& now);  // a new name in a random directory
  std::string random_step(Filesystem& fs, const FsState& now);
  std::string write_step(Filesystem& fs, const FsState& now);
  std::string layout_step(Filesystem& fs, const FsState& now);
  std::string rename_step(Filesystem& fs, const FsState& now);

  std::mt19937_64 rng_;
  int steps_;
  uint64_t names_ = 0;
  Ino big1_ = 0, big2_ = 0;
  std::vector<Ino> open_orphans_;
};

}  // namespace sealfs::crash
