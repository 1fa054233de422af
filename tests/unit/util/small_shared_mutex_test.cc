// SmallSharedMutex: exclusion between writers and readers, readers together,
// a reader taking it twice while a writer waits, and the wake-ups (a lost
// wake-up hangs a test here until its timeout).
#include "util/small_shared_mutex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

// These tests drive the mutex by hand (try_lock inside expectations, a
// reader taking it twice, a lock taken in one statement and released in
// another thread's view), which clang's thread-safety analysis cannot
// follow: it checks the users of the mutex, not its own tests.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wthread-safety-analysis"
#endif

namespace sealfs {
namespace {

TEST(SmallSharedMutexTest, IsFourBytes) { EXPECT_EQ(sizeof(SmallSharedMutex), 4u); }

TEST(SmallSharedMutexTest, TryLockSeesHolders) {
  SmallSharedMutex mu;
  ASSERT_TRUE(mu.try_lock());
  EXPECT_FALSE(mu.try_lock());
  EXPECT_FALSE(mu.try_lock_shared());
  mu.unlock();
  ASSERT_TRUE(mu.try_lock_shared());
  ASSERT_TRUE(mu.try_lock_shared());
  EXPECT_FALSE(mu.try_lock());
  mu.unlock_shared();
  EXPECT_FALSE(mu.try_lock());
  mu.unlock_shared();
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
}

// Writers increment a plain counter in two halves; readers check that they
// never see a half-done increment. Any lost exclusion shows as a torn pair
// or a wrong total; a lost wake-up as a hang.
TEST(SmallSharedMutexTest, WritersExcludeEveryoneReadersShare) {
  SmallSharedMutex mu;
  uint64_t first = 0, second = 0;
  std::atomic<bool> torn{false};
  std::atomic<int> readers_inside{0};
  std::atomic<int> most_readers_inside{0};
  constexpr int kWriters = 3, kReaders = 3, kRounds = 20000;
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        std::unique_lock lock(mu);
        ++first;
        if (i % 64 == 0) std::this_thread::yield();
        ++second;
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        std::shared_lock lock(mu);
        int inside = readers_inside.fetch_add(1) + 1;
        int most = most_readers_inside.load();
        while (inside > most && !most_readers_inside.compare_exchange_weak(most, inside)) {
        }
        if (first != second) torn = true;
        if (i % 64 == 0) std::this_thread::yield();
        readers_inside.fetch_sub(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(torn.load());
  EXPECT_EQ(first, uint64_t{kWriters} * kRounds);
  EXPECT_EQ(second, first);
}

TEST(SmallSharedMutexTest, ReadersHoldItTogether) {
  SmallSharedMutex mu;
  std::shared_lock first(mu);
  std::atomic<bool> second_in{false};
  std::thread other([&] {
    std::shared_lock lock(mu);  // would hang if readers excluded each other
    second_in = true;
  });
  other.join();
  EXPECT_TRUE(second_in.load());
}

// glibc's rwlock let a reader in while a writer waited; the inode lock
// relied on nothing else, and this keeps it so.
TEST(SmallSharedMutexTest, AReaderGetsInAgainWhileAWriterWaits) {
  SmallSharedMutex mu;
  mu.lock_shared();
  std::atomic<bool> writer_in{false};
  std::thread writer([&] {
    std::unique_lock lock(mu);
    writer_in = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the writer waits
  EXPECT_FALSE(writer_in.load());
  ASSERT_TRUE(mu.try_lock_shared());
  mu.lock_shared();
  mu.unlock_shared();
  mu.unlock_shared();
  EXPECT_FALSE(writer_in.load());
  mu.unlock_shared();  // the last reader out wakes the writer
  writer.join();
  EXPECT_TRUE(writer_in.load());
}

TEST(SmallSharedMutexTest, AWriterWakesWaitingReadersAndWriters) {
  SmallSharedMutex mu;
  mu.lock();
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      if (i % 2 == 0) {
        std::shared_lock lock(mu);
      } else {
        std::unique_lock lock(mu);
      }
      done.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(done.load(), 0);
  mu.unlock();
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), 4);
}

}  // namespace
}  // namespace sealfs
