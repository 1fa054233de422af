// SmallSharedMutex: a reader-writer lock in four bytes, for objects the
// daemon keeps millions of (the DRAM inode: glibc's std::shared_mutex is 56
// bytes, more than all of an inode's fields but its times; issue 12 asks
// for 200 bytes per cached inode).
//
// Readers are preferred, as with glibc's default rwlock that it replaces: a
// reader gets in while a writer waits, so a thread holding a shared lock
// may take it shared again. Waiting is a futex wait (std::atomic::wait); the
// state word says whether anyone waits, so an unlock with no waiter makes
// no system call. It works with std::unique_lock and std::shared_lock.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>

#include "util/thread_annotations.h"

namespace sealfs {

class CAPABILITY("mutex") SmallSharedMutex {
 public:
  SmallSharedMutex() = default;
  SmallSharedMutex(const SmallSharedMutex&) = delete;
  SmallSharedMutex& operator=(const SmallSharedMutex&) = delete;

  void lock() ACQUIRE() {
    uint32_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      if ((s & ~kWaiters) == 0) {
        // Keeps the waiters bit: this writer's unlock wakes them.
        if (state_.compare_exchange_weak(s, kWriter | s, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          return;
        }
        continue;
      }
      if (!wait_for_change(s)) continue;
      s = state_.load(std::memory_order_relaxed);
    }
  }
  bool try_lock() TRY_ACQUIRE(true) {
    uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & ~kWaiters) == 0) {
      if (state_.compare_exchange_weak(s, kWriter | s, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  void unlock() RELEASE() {
    if ((state_.exchange(0, std::memory_order_release) & kWaiters) != 0) state_.notify_all();
  }

  // For code the analysis cannot follow: a lock taken by a caller in
  // another layer and handed over as an object (meta's LayoutLock), or one
  // of several chosen at run time. It tells the analysis the caller holds
  // the lock; at run time it checks only that somebody holds it.
  void assert_held() const ASSERT_CAPABILITY(this) {
    assert((state_.load(std::memory_order_relaxed) & kWriter) != 0);
  }
  void assert_held_shared() const ASSERT_SHARED_CAPABILITY(this) {
    assert((state_.load(std::memory_order_relaxed) & (kWriter | kReaders)) != 0);
  }

  void lock_shared() ACQUIRE_SHARED() {
    uint32_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      if ((s & kWriter) == 0) {
        if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          return;
        }
        continue;
      }
      if (!wait_for_change(s)) continue;
      s = state_.load(std::memory_order_relaxed);
    }
  }
  bool try_lock_shared() TRY_ACQUIRE_SHARED(true) {
    uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & kWriter) == 0) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  void unlock_shared() RELEASE_SHARED() {
    uint32_t s = state_.fetch_sub(1, std::memory_order_release) - 1;
    // The last reader out wakes the waiters (writers: readers never wait
    // for readers). Whoever clears the bit wakes; a reader that came in
    // meanwhile leaves it set for its own unlock.
    while ((s & kReaders) == 0 && (s & kWaiters) != 0) {
      if (state_.compare_exchange_weak(s, s & ~kWaiters, std::memory_order_relaxed)) {
        state_.notify_all();
        return;
      }
    }
  }

 private:
  static constexpr uint32_t kWriter = uint32_t{1} << 31;
  static constexpr uint32_t kWaiters = uint32_t{1} << 30;
  static constexpr uint32_t kReaders = kWaiters - 1;

  // Sets the waiters bit in `seen` (false, with `seen` reloaded, when the
  // state moved first) and sleeps until the state differs from it.
  bool wait_for_change(uint32_t& seen) {
    if ((seen & kWaiters) == 0) {
      if (!state_.compare_exchange_weak(seen, seen | kWaiters, std::memory_order_relaxed)) {
        return false;
      }
      seen |= kWaiters;
    }
    state_.wait(seen, std::memory_order_relaxed);
    return true;
  }

  std::atomic<uint32_t> state_{0};
};

static_assert(sizeof(SmallSharedMutex) == 4);

}  // namespace sealfs
