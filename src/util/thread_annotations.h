// Clang thread-safety analysis (-Wthread-safety): the attribute macros and
// the mutex types it understands.
//
// libstdc++'s std::mutex carries no capability attributes, so the analysis
// cannot see it; Mutex and SharedMutex below are std::mutex and
// std::shared_mutex with the attributes on, and MutexLock / WriterLock /
// ReaderLock are their scoped guards. Under GCC every macro is empty and the
// wrappers cost nothing. scripts/sanitize.sh builds with clang and
// -Wthread-safety -Werror, so an unguarded access to a GUARDED_BY member
// fails that build. The lock order itself is in src/meta/locking.h.
#pragma once

#include <mutex>
#include <shared_mutex>

#if defined(__clang__)
#define SEALFS_THREAD_ATTR(x) __attribute__((x))
#else
#define SEALFS_THREAD_ATTR(x)
#endif

#define CAPABILITY(x) SEALFS_THREAD_ATTR(capability(x))
#define SCOPED_CAPABILITY SEALFS_THREAD_ATTR(scoped_lockable)
#define GUARDED_BY(x) SEALFS_THREAD_ATTR(guarded_by(x))
#define PT_GUARDED_BY(x) SEALFS_THREAD_ATTR(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) SEALFS_THREAD_ATTR(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) SEALFS_THREAD_ATTR(acquired_after(__VA_ARGS__))
#define REQUIRES(...) SEALFS_THREAD_ATTR(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) SEALFS_THREAD_ATTR(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) SEALFS_THREAD_ATTR(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) SEALFS_THREAD_ATTR(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) SEALFS_THREAD_ATTR(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) SEALFS_THREAD_ATTR(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) SEALFS_THREAD_ATTR(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) SEALFS_THREAD_ATTR(try_acquire_capability(__VA_ARGS__))
#define TRY_ACQUIRE_SHARED(...) SEALFS_THREAD_ATTR(try_acquire_shared_capability(__VA_ARGS__))
#define EXCLUDES(...) SEALFS_THREAD_ATTR(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) SEALFS_THREAD_ATTR(assert_capability(x))
#define ASSERT_SHARED_CAPABILITY(x) SEALFS_THREAD_ATTR(assert_shared_capability(x))
#define RETURN_CAPABILITY(x) SEALFS_THREAD_ATTR(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS SEALFS_THREAD_ATTR(no_thread_safety_analysis)

namespace sealfs {

class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // For code that must state a lock is held where the analysis cannot
  // follow it (a callback run by the holder): checks nothing at run time.
  void assert_held() const ASSERT_CAPABILITY(this) {}

 private:
  std::mutex mu_;
};

class CAPABILITY("mutex") SharedMutex {
 public:
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  void lock_shared() ACQUIRE_SHARED() { mu_.lock_shared(); }
  void unlock_shared() RELEASE_SHARED() { mu_.unlock_shared(); }
  bool try_lock_shared() TRY_ACQUIRE_SHARED(true) { return mu_.try_lock_shared(); }

 private:
  std::shared_mutex mu_;
};

// std::lock_guard / std::unique_lock for a Mutex, visible to the analysis.
// unlock() and lock() let a scope drop the mutex for a while (e.g. to run
// callbacks that take other locks) and take it back; they also make it a
// lock std::condition_variable_any can wait on.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  void unlock() RELEASE() {
    mu_.unlock();
    held_ = false;
  }
  void lock() ACQUIRE() {
    mu_.lock();
    held_ = true;
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

// Exclusive and shared scoped locks for SharedMutex and SmallSharedMutex
// (the inode lock), visible to the analysis.
template <class SharedLockable>
class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedLockable& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~WriterLock() RELEASE() { mu_.unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedLockable& mu_;
};

template <class SharedLockable>
class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedLockable& mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_.lock_shared(); }
  ~ReaderLock() RELEASE() { mu_.unlock_shared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedLockable& mu_;
};

}  // namespace sealfs
