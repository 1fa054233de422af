// Fakes shared by the lease tests: a settable clock, a notifier that records
// what the engine asked for, and a QuarantineSink that records its calls.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "lease/lease_core.h"

namespace sealfs::lease::testing {

class FakeClock final : public Clock {
 public:
  uint64_t now_ns() const override { return now_.load(); }
  void advance(uint64_t ns) { now_ += ns; }
  void set(uint64_t ns) { now_ = ns; }

 private:
  std::atomic<uint64_t> now_{1'000'000'000};
};

struct Sent {
  enum Kind { kBreak, kRevoke, kKill } kind;
  uint64_t conn = 0;
  uint64_t lease_id = 0;
  uint32_t reason = 0;
  uint64_t deadline_ns = 0;
  HolderId holder;
};

class RecordingNotifier final : public Notifier {
 public:
  void send_break(uint64_t conn, uint64_t lease_id, uint32_t reason, uint64_t deadline) override {
    sent.push_back({Sent::kBreak, conn, lease_id, reason, deadline, {}});
  }
  void send_revoke(uint64_t conn, uint64_t lease_id) override {
    sent.push_back({Sent::kRevoke, conn, lease_id, 0, 0, {}});
  }
  void kill_holder(const HolderId& holder) override {
    sent.push_back({Sent::kKill, 0, 0, 0, 0, holder});
  }
  void break_finished(uint64_t ino) override { finished.push_back(ino); }
  void deadlines_changed() override {}
  size_t count(Sent::Kind kind) const {
    size_t n = 0;
    for (auto& s : sent) n += s.kind == kind;
    return n;
  }
  std::vector<Sent> sent;
  std::vector<uint64_t> finished;
};

class RecordingSink final : public QuarantineSink {
 public:
  struct Quarantined {
    HolderId holder;
    uint64_t ino;
    std::vector<MapExtent> extents;
  };
  Status pin(const HolderId&, uint64_t lease_id, uint64_t, const std::vector<MapExtent>&) override {
    std::lock_guard lock(mu);
    if (fail_pin) return Status(Code::kNoSpace, "holder table full");
    pinned.push_back(lease_id);
    return Status::ok();
  }
  void unpin(const HolderId&, uint64_t lease_id) override {
    std::lock_guard lock(mu);
    unpinned.push_back(lease_id);
  }
  Status quarantine(const HolderId& holder, uint64_t ino, const std::vector<MapExtent>& extents) override {
    std::lock_guard lock(mu);
    if (fail_quarantine) return Status(Code::kNoSpace, "holder table full");
    quarantined.push_back({holder, ino, extents});
    cv.notify_all();
    return Status::ok();
  }
  void release_holder(const HolderId& holder) override {
    std::lock_guard lock(mu);
    released.push_back(holder);
    cv.notify_all();
  }

  std::mutex mu;
  std::condition_variable cv;
  bool fail_pin = false;
  bool fail_quarantine = false;
  std::vector<uint64_t> pinned, unpinned;
  std::vector<Quarantined> quarantined;
  std::vector<HolderId> released;
};

}  // namespace sealfs::lease::testing
