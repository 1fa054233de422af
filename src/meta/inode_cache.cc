// The inode cache's bound (MountOptions::inode_cache, the daemon's
// -o inode_cache=N): a thread drops the inodes nothing holds once the table
// has more than the bound, and each is read from its slot again on its next
// use (InodeTable::evict, load_on_demand). Why no thread can be holding a
// dropped inode: locking.h, "Dropping cached inodes".
#include <malloc.h>

#include <algorithm>
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
  // A pass in progress ends after its batch (an unmount right after the
  // mount of a million inodes does not wait for them all to be looked at).
  trimmer_stopping_.store(true, std::memory_order_relaxed);
  {
    MutexLock lock(trimmer_mu_);
    trimmer_stop_ = true;
  }
  trimmer_wake_.notify_all();
  trimmer_.join();
}

void FilesystemImpl::on_inode_made(Inode& inode, bool evicted) {
  load_on_demand(inode, evicted);
  if (options_.inode_cache == 0) return;
  // Every inode made is queued once, so that those the kernel never looks
  // up (read by the mount's verification, a rename's ancestry walk, the
  // lease engine) are found too. Not yet published, so no other thread can
  // see it (hence no inode lock), and no wake-up: the thread's mutex would
  // be a second leaf under the table's (idle_mu_ is the one; locking.h).
  queue_for_trimmer(inode, /*wake=*/false);
}

void FilesystemImpl::queue_for_trimmer(Inode& inode, bool wake) {
  if (options_.inode_cache == 0) return;
  if (!inode.idle_queued) {
    inode.idle_queued = true;
    MutexLock lock(idle_mu_);
    idle_queue_.push_back(inode.ino);
  }
  // Queued or not before (an inode made since the thread's last pass is in
  // the queue already), the thread is woken past the bound.
  if (!wake || inodes_.resident() <= options_.inode_cache ||
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
  // Between passes without a wake-up (for the inodes put back in the queue:
  // an unlinked file's free to come, say): doubled after each that dropped
  // nothing, so a table the kernel holds past the bound is not looked at
  // every second; a forget or close that leaves an inode idle wakes the
  // thread at once whatever the pause.
  constexpr auto kFirstPause = std::chrono::seconds(1);
  constexpr auto kLongestPause = std::chrono::seconds(32);
  auto pause = std::chrono::steady_clock::duration(kFirstPause);
  MutexLock lock(trimmer_mu_);
  trim_wanted_ = true;  // the mount has just read every inode in use: a pass at once
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
    if (verified() && inodes_.resident() > bound) {
      const uint64_t dropped = trim_to(keep);
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

uint64_t FilesystemImpl::trim_to(uint64_t keep) {
  MutexLock lock(trim_mu_);
  // After a media fault a home write may have been cut short while DRAM was
  // rolled back: the slot is no longer what the inode in DRAM says, and
  // reading it again could show a change answered EIO, fail its crc or
  // fault. Such a mount keeps what it has (review of 2026-12-07).
  if (region_->media_failed()) return 0;
  // Each number queued when the pass starts is looked at once at most; those
  // put back wait for the next pass.
  uint64_t to_visit = 0;
  {
    MutexLock queue_lock(idle_mu_);
    to_visit = idle_queue_.size();
  }
  uint64_t dropped = 0;
  std::vector<uint64_t> batch;
  std::vector<Inode*> candidates;
  std::vector<Inode*> put_back;
  while (to_visit > 0 && inodes_.resident() > keep &&
         !trimmer_stopping_.load(std::memory_order_relaxed)) {
    batch.clear();
    {
      MutexLock queue_lock(idle_mu_);
      while (batch.size() < kVisitsPerClosing && to_visit > 0 && !idle_queue_.empty()) {
        batch.push_back(idle_queue_.front());
        idle_queue_.pop_front();
        --to_visit;
      }
    }
    if (batch.empty()) break;
    candidates.clear();
    pick_droppable(batch, &candidates);
    if (candidates.empty()) continue;
    // A number may be in the queue twice (queued again by a forget after
    // the trimmer took it, before it dropped the inode): each inode is
    // dropped once.
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    // Only this thread drops inodes (trim_mu_), so the candidates stay valid
    // until it does.
    put_back.clear();
    const bool closed = close_gate();
    if (!closed) {
      put_back = candidates;
    } else {
      const auto closed_at = std::chrono::steady_clock::now();
      // The gate is closed: no operation runs, and none holds an Inode*.
      for (Inode* inode : candidates) {
        if (inodes_.resident() <= keep) {
          put_back.push_back(inode);
          continue;
        }
        switch (drop_if_idle(*inode)) {
          case TrimVerdict::kDrop: ++dropped; break;
          case TrimVerdict::kLater: put_back.push_back(inode); break;
          case TrimVerdict::kHeld:
          case TrimVerdict::kKeep: break;
        }
      }
      cache_gate_.open();
      // Open at least as long as it was closed: closing again at once shut
      // out the operations the opening woke (0 getattrs in 50 sweeps of
      // 100,000 inodes; the review of 2026-12-07).
      std::this_thread::sleep_for(std::chrono::steady_clock::now() - closed_at);
    }
    if (!put_back.empty()) {
      CacheGate::Pass pass(cache_gate_);
      for (Inode* inode : put_back) {
        WriterLock inode_lock(inode->mu);
        queue_for_trimmer(*inode, /*wake=*/false);
      }
    }
    // Operations kept the gate open: they are busy, try again later.
    if (!closed) break;
  }
  // Freed chunks sit between live allocations of the heap: give their
  // pages back to the system (the anonymous memory the cache bounds).
  if (inodes_.take_freed_chunks() > 0) malloc_trim(0);
  return dropped;
}

bool FilesystemImpl::close_gate() {
  for (int attempt = 0; attempt < kCloseAttempts; ++attempt) {
    if (cache_gate_.close_within(kClosePatience)) return true;
    std::this_thread::sleep_for(kAfterFailedClosing);
  }
  return false;
}

void FilesystemImpl::pick_droppable(const std::vector<uint64_t>& numbers,
                                    std::vector<Inode*>* candidates) {
  // An operation of its own: it writes lazy times, and holds Inode*s.
  CacheGate::Pass pass(cache_gate_);
  inodes_trim_visited_.fetch_add(numbers.size(), std::memory_order_relaxed);
  for (uint64_t ino : numbers) {
    // Not made (dropped since it was queued): nothing to do.
    Inode* inode = inodes_.find(ino);
    if (inode == nullptr) continue;
    WriterLock lock(inode->mu);
    inode->idle_queued = false;
    // Times changed in DRAM only, of an inode the kernel forgot: written now,
    // in a transaction of their own, so that it can go. Those the kernel
    // holds keep the lazy times' purpose (no transaction per read) until
    // their next change or the unmount. A failure (a media fault, the mount
    // gone read-only) keeps the inode dirty and cached.
    if (inode->times_dirty && inode->lookups.is_zero() && inode->opens.is_zero() &&
        !persist_times(*inode).is_ok()) {
      continue;
    }
    switch (trim_verdict(*inode)) {
      case TrimVerdict::kDrop: candidates->push_back(inode); break;
      case TrimVerdict::kLater: queue_for_trimmer(*inode, /*wake=*/false); break;
      case TrimVerdict::kHeld:
      case TrimVerdict::kKeep: break;
    }
  }
}

FilesystemImpl::TrimVerdict FilesystemImpl::drop_if_idle(Inode& inode) {
  // Between operations no inode lock is held, except a LayoutLock's, which
  // keeps the gate open: try_lock is for safety, not for waiting.
  if (!inode.mu.try_lock()) return TrimVerdict::kLater;
  const TrimVerdict verdict = trim_verdict(inode);
  inode.mu.unlock();
  if (verdict != TrimVerdict::kDrop) return verdict;
  {
    // An inode leaves this set only here and at the unmount; it may have
    // been put in and had its times written since.
    MutexLock lock(lazy_times_mu_);
    lazy_times_.erase(&inode);
  }
  inodes_.evict(inode);
  // Counted as it happens, so that the count and the table agree at any time.
  inodes_dropped_.fetch_add(1, std::memory_order_relaxed);
  return TrimVerdict::kDrop;
}

FilesystemImpl::TrimVerdict FilesystemImpl::trim_verdict(const Inode& inode) const {
  // Damaged inodes stay (they answer EIO without being read again), and so
  // does the root (the mount's anchor).
  if (inode.load_failed || inode.ino == format::kRootIno) return TrimVerdict::kKeep;
  // Held by the kernel (a lookup it has not forgotten) or an open handle.
  if (!inode.lookups.is_zero() || !inode.opens.is_zero()) return TrimVerdict::kHeld;
  const InodeCore& c = inode.core;
  // A free slot: what it holds is on the media, its generation included
  // (free_inode commits it), or all zeros for a slot never used, which
  // load_on_demand reads back as the same free inode.
  if (!inode.in_use()) return TrimVerdict::kDrop;
  // Times changed in DRAM only (pick_droppable writes them).
  if (inode.times_dirty) return TrimVerdict::kLater;
  // On the orphan list, or about to be (nlink 0): such an inode waits for
  // its free (maybe_free; the deferred frees hold it by pointer).
  if (slot_unlinked(c.flags, c.nlink)) return TrimVerdict::kLater;
  // An inline file's bytes staged for a change (inline_data.cc): only ever
  // inside an operation, but they are not on the media yet.
  if (inode.has_inline_data() && !inode.inline_bytes.empty()) return TrimVerdict::kLater;
  return TrimVerdict::kDrop;
}


}  // namespace sealfs
