// SaturatingCount: a reference count in 32 bits that sticks at its maximum.
//
// The daemon keeps two per cached inode (the kernel's lookup count and the
// open handles), millions of inodes in all, and 64 bits each would be 8 of
// issue 12's 200 bytes per inode. FUSE's lookup count is 64 bits: the kernel
// adds one per entry reply and a forget may drop any number at once. A count
// that reaches 2^32 - 1 therefore stops counting and stays there: it is never
// decremented again, so it never reaches zero early (which would free an
// inode the kernel still names). The cost is that such an object is kept
// until reset() (for an inode: the unmount, or the next mount's orphan pass).
// Not thread-safe: the owner's lock guards it.
#pragma once

#include <cstdint>

namespace sealfs {

class SaturatingCount {
 public:
  static constexpr uint32_t kStuck = UINT32_MAX;

  uint32_t value() const { return value_; }
  bool is_zero() const { return value_ == 0; }
  // Counting stopped: the true count is not known any more.
  bool stuck() const { return value_ == kStuck; }

  void add(uint64_t n) {
    if (stuck()) return;
    value_ = n >= kStuck - value_ ? kStuck : value_ + static_cast<uint32_t>(n);
  }
  // Drops `n` (all 64 bits of it: a forget's nlookup), never below zero.
  void sub(uint64_t n) {
    if (stuck()) return;
    value_ = n >= value_ ? 0 : value_ - static_cast<uint32_t>(n);
  }
  void reset() { value_ = 0; }

 private:
  uint32_t value_ = 0;
};

}  // namespace sealfs
