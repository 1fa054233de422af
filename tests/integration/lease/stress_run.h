// Shared state of one lease stress run (stress_test.cc): what it found, what
// it did, which lineages exist, and a watchdog over every blocking call.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

namespace sealfs::itest::stress {

using SteadyClock = std::chrono::steady_clock;

// Broken invariants, in the order found (the test fails on any).
class Violations {
 public:
  void add(const std::string& what);
  std::vector<std::string> all() const;
  size_t count() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> list_;
};

// Everything that happened, with milliseconds since the start, in a file
// (printed in part when the test fails, kept on request).
class Trace {
 public:
  explicit Trace(const std::string& path);
  ~Trace();
  void line(const std::string& who, const std::string& text);
  double seconds() const;
  const std::string& path() const { return path_; }

 private:
  std::mutex mu_;
  std::string path_;
  FILE* out_ = nullptr;
  SteadyClock::time_point start_ = SteadyClock::now();
};

// Lineage ids (stress_word.h) and their story, for the reports.
class Lineages {
 public:
  uint64_t create(int file, const std::string& how, double at);
  void retire(uint64_t lineage, const std::string& how, double at);
  std::string describe(uint64_t lineage) const;

 private:
  struct Info {
    int file = -1;
    std::string story;
  };
  mutable std::mutex mu_;
  std::vector<Info> infos_ = std::vector<Info>(1);  // 0 is "none"
};

// Per-kind counts and latencies of the operations.
class OpStats {
 public:
  void record(const std::string& kind, double seconds, int err);
  void count(const std::string& what, uint64_t n = 1);
  std::string summary() const;
  uint64_t get(const std::string& what) const;

 private:
  struct Kind {
    uint64_t calls = 0;
    double max_seconds = 0;
    uint64_t slow = 0;  // over 0.5 s: waited for a break
    std::map<int, uint64_t> errors;
  };
  mutable std::mutex mu_;
  std::map<std::string, Kind> kinds_;
  std::map<std::string, uint64_t> counters_;
};

// One thread's current blocking call, watched by the Watchdog.
struct InFlight {
  std::mutex mu;
  std::string what;
  SteadyClock::time_point start;
  bool active = false;
  bool reported = false;
};

// Reports a call that runs longer than `bound` (the first time, on_slow
// may collect evidence); past `hard_limit` it calls on_hang (which ends the
// daemon so the test can end and say why).
class Watchdog {
 public:
  Watchdog(Violations& violations, Trace& trace, std::chrono::milliseconds bound,
           std::chrono::milliseconds hard_limit, std::function<void()> on_slow,
           std::function<void()> on_hang);
  ~Watchdog();
  InFlight& slot(const std::string& who);
  std::chrono::milliseconds bound() const { return bound_; }

 private:
  void run();

  Violations& violations_;
  Trace& trace_;
  const std::chrono::milliseconds bound_, hard_limit_;
  std::function<void()> on_slow_, on_hang_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool slow_handled_ = false;
  bool hang_handled_ = false;
  std::vector<std::pair<std::string, std::unique_ptr<InFlight>>> slots_;
  std::thread thread_;
};

struct Timed {
  long rc = 0;
  int err = 0;
  double seconds = 0;
};

// Runs one blocking call under the watchdog and times it. call returns a
// syscall-style value and leaves errno set on failure.
Timed timed_call(InFlight& slot, const std::string& what, const std::function<long()>& call);

}  // namespace sealfs::itest::stress
