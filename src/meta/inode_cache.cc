// The inode cache's bound (MountOptions::inode_cache, the daemon's
// -o inode_cache=N): a thread drops the inodes nothing holds once the table
// has more than the bound, and each is read from its slot again on its next
// use (InodeTable::evict, load_on_demand). Why no thread can be holding a
// dropped inode: locking.h, "Dropping cached inodes".
#include <malloc.h>

#include <chrono>

#include "meta/filesystem_impl.h"
#include "util/log.h"

namespace sealfs {

namespace {

// How long the trimmer waits for the operations in progress to end before
// it gives up and opens the gate again: arriving operations wait behind a
// closing gate, so this bounds what the cache costs them.
constexpr auto kClosePatience = std::chrono::microseconds(500);
// After a closing that failed, the trimmer leaves the operations alone this
// long; after this many failures in a row it waits for the next wake-up.
constexpr auto kAfterFailedClosing = std::chrono::milliseconds(5);
constexpr int kCloseAttempts = 100;
// Inodes looked at per closing: bounds how long operations wait behind it.
constexpr uint64_t kVisitsPerClosing = 4096;

}  // namespace

void FilesystemImpl::start_trimmer() {
  trimmer_ = std::thread([this] { trimmer_loop(); });
}

void FilesystemImpl::stop_trimmer() {
  if (!trimmer_.joinable()) return;
  {
    MutexLock lock(trimmer_mu_);
    trimmer_stop_ = true;
  }
  trimmer_wake_.notify_all();
  trimmer_.join();
}

void FilesystemImpl::note_idle_inode() {
  if (options_.inode_cache == 0 || inodes_.resident() <= options_.inode_cache ||
      trim_asked_.load(std::memory_order_relaxed)) {
    return;
  }
  trim_asked_.store(true, std::memory_order_relaxed);
  {
    MutexLock lock(trimmer_mu_);
    trim_wanted_ = true;
  }
  trimmer_wake_.notify_one();
}

void FilesystemImpl::trimmer_loop() {
  const uint64_t bound = options_.inode_cache;
  const uint64_t keep = bound - bound / 8;
  // Between sweeps without a wake-up: doubled after each that dropped
  // nothing (the kernel holds what is cached, after a `find` say, and
  // forgets nothing), so a table held past the bound is not swept every
  // second; a forget or close that leaves an inode idle wakes the thread
  // at once whatever the pause.
  constexpr auto kFirstPause = std::chrono::seconds(1);
  constexpr auto kLongestPause = std::chrono::seconds(32);
  auto pause = std::chrono::steady_clock::duration(kFirstPause);
  // The last sweep stopped above `keep` (the kernel still held inodes):
  // the next ones sweep as soon as the table is past `keep`, not `bound`,
  // so that inodes forgotten since are dropped too.
  bool short_of_keep = false;
  MutexLock lock(trimmer_mu_);
  trim_wanted_ = true;  // the mount has just read every inode in use: a sweep at once
  while (!trimmer_stop_) {
    if (!trim_wanted_) {
      const auto until = std::chrono::steady_clock::now() + pause;
      while (!trimmer_stop_ && !trim_wanted_ &&
             trimmer_wake_.wait_until(lock, until) != std::cv_status::timeout) {
      }
    }
    if (trimmer_stop_) break;
    trim_wanted_ = false;
    lock.unlock();
    trim_asked_.store(false, std::memory_order_relaxed);
    if (verified() && inodes_.resident() > (short_of_keep ? keep : bound)) {
      const uint64_t dropped = trim_to(keep);
      short_of_keep = inodes_.resident() > keep;
      pause = dropped > 0 ? std::chrono::steady_clock::duration(kFirstPause)
                          : std::min<std::chrono::steady_clock::duration>(pause * 2, kLongestPause);
      if (dropped > 0) {
        log().debug("inode cache: dropped {} inodes nothing held; {} cached (bound {})", dropped,
                    inodes_.resident(), bound);
      }
    }
    lock.lock();
  }
}

uint64_t FilesystemImpl::trim_inode_cache(uint64_t keep) {
  if (!verified()) return 0;
  return trim_to(keep);
}

void FilesystemImpl::write_times_of_forgotten() {
  // An operation of its own: the inodes of lazy_times_ cannot be dropped
  // while it holds its pass.
  CacheGate::Pass pass(cache_gate_);
  std::vector<Inode*> pending;
  {
    MutexLock lock(lazy_times_mu_);
    pending.assign(lazy_times_.begin(), lazy_times_.end());
  }
  for (Inode* inode : pending) {
    WriterLock lock(inode->mu);
    // Only those the kernel forgot: the others keep the lazy times' purpose
    // (no transaction per read) until their next change or the unmount.
    if (!inode->lookups.is_zero() || !inode->opens.is_zero()) continue;
    // A failure (a media fault, the mount gone read-only) leaves it dirty,
    // in the set and cached.
    if (!persist_times(*inode).is_ok()) continue;
    // Under the inode's lock, so that it cannot be marked dirty again in
    // between (mark_times_dirty takes the same two locks).
    MutexLock set_lock(lazy_times_mu_);
    lazy_times_.erase(inode);
  }
}

uint64_t FilesystemImpl::trim_to(uint64_t keep) {
  MutexLock lock(trim_mu_);
  // After a media fault a home write may have been cut short while DRAM was
  // rolled back: the slot is no longer what the inode in DRAM says, and
  // reading it again could show a change answered EIO, fail its crc or
  // fault. Such a mount keeps what it has (review of 2026-12-07).
  if (region_->media_failed()) return 0;
  if (inodes_.resident() > keep) write_times_of_forgotten();
  uint64_t dropped = 0;
  // One sweep of the chunks, highest first (InodeTable::residents_below).
  const std::byte* cursor = nullptr;
  int failed_closings = 0;
  do {
    if (!cache_gate_.close_within(kClosePatience)) {
      if (++failed_closings >= kCloseAttempts) break;
      std::this_thread::sleep_for(kAfterFailedClosing);
      continue;
    }
    failed_closings = 0;
    const auto closed_at = std::chrono::steady_clock::now();
    // The gate is closed: no operation runs, and none holds an Inode*.
    for (Inode* inode : inodes_.residents_below(cursor, kVisitsPerClosing, &cursor)) {
      if (inodes_.resident() <= keep) break;
      if (drop_if_idle(*inode)) ++dropped;
    }
    cache_gate_.open();
    // Open at least as long as it was closed: closing again at once shut
    // out the operations the opening woke for the whole sweep (0 getattrs
    // in 50 sweeps of 100,000 inodes; the review of 2026-12-07).
    if (cursor != nullptr) std::this_thread::sleep_for(std::chrono::steady_clock::now() - closed_at);
  } while (cursor != nullptr && inodes_.resident() > keep);
  inodes_dropped_.fetch_add(dropped, std::memory_order_relaxed);
  // Freed chunks sit between live allocations of the heap: give their
  // pages back to the system (the anonymous memory the cache bounds).
  if (inodes_.take_freed_chunks() > 0) malloc_trim(0);
  return dropped;
}

bool FilesystemImpl::drop_if_idle(Inode& inode) {
  // Damaged inodes stay (they answer EIO without being read again), and so
  // does the root (the mount's anchor).
  if (inode.load_failed || inode.ino == format::kRootIno) return false;
  // Between operations no inode lock is held, except a LayoutLock's, which
  // keeps the gate open: try_lock is for safety, not for waiting.
  if (!inode.mu.try_lock()) return false;
  const bool idle = idle_in_dram(inode);
  inode.mu.unlock();
  if (!idle) return false;
  {
    // An inode leaves this set only at the unmount; it may have been put in
    // and had its times written since.
    MutexLock lock(lazy_times_mu_);
    lazy_times_.erase(&inode);
  }
  inodes_.evict(inode);
  return true;
}

bool FilesystemImpl::idle_in_dram(const Inode& inode) const {
  // Held by the kernel (a lookup it has not forgotten) or an open handle.
  if (!inode.lookups.is_zero() || !inode.opens.is_zero()) return false;
  // Times changed in DRAM only (persist_times writes them).
  if (inode.times_dirty) return false;
  const InodeCore& c = inode.core;
  // A free slot keeps its generation on the media (free_inode commits it);
  // one never used is all zeros and is not worth a read again.
  if (!inode.in_use()) return c.generation != 0;
  // On the orphan list, or about to be (nlink 0): the list is followed
  // through Inode::orphan_next in DRAM, under the journal mutex only, and
  // such an inode waits for its free (maybe_free, deferred frees).
  if ((c.flags & format::kInodeOrphan) != 0 || c.nlink == 0) return false;
  // An inline file's bytes staged for a change (inline_data.cc): only ever
  // inside an operation, but they are not on the media yet.
  if (inode.has_inline_data() && !inode.inline_bytes.empty()) return false;
  return true;
}

}  // namespace sealfs
