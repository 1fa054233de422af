// CacheGate: the quiescent point the inode cache's trimmer waits for
// (inode_cache.cc; the argument is in locking.h, "Dropping cached inodes").
//
// Every Filesystem operation of FilesystemImpl is a pass through the gate
// (CacheGate::Pass, the first line of each public method), and so is each
// LayoutLock the lease engine holds between operations. The trimmer closes
// the gate: it waits until no pass is open, for a bounded time only, and
// while it holds the gate closed no thread holds or can obtain an Inode*
// from the table, so it may destroy inodes. An operation that arrives while
// the gate is closed (or closing) waits for it to open again; the trimmer
// never waits for anything while it holds the gate, so that wait is short.
//
// Not a lock in locking.h's sense: a thread may open a pass holding any
// lock, because closing never waits for a lock (it gives up after its
// deadline instead) and the trimmer, once the gate is closed, takes inode
// locks by try_lock only and InodeTable's leaf mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace sealfs {

class CacheGate {
 public:
  // One operation's pass: open from construction to destruction. A pass
  // opened by a thread that holds one on the same gate already (a public
  // operation calling another) is nested: the gate cannot close while the
  // outer one is open, so it must not wait for the gate either, or it would
  // wait out the trimmer's patience behind itself.
  class Pass {
   public:
    explicit Pass(CacheGate& gate) : gate_(gate), outer_(held_here_) {
      if (held_here_.gate == &gate) {
        gate.enter_nested();
        ++held_here_.depth;
      } else {
        gate.enter();
        held_here_ = Held{&gate, 1};
      }
    }
    ~Pass() {
      gate_.leave();
      held_here_ = outer_;
    }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;

   private:
    // The gate this thread holds passes on, and how many.
    struct Held {
      const CacheGate* gate;
      uint32_t depth;
    };
    static inline thread_local Held held_here_{nullptr, 0};
    CacheGate& gate_;
    const Held outer_;
  };

  // A pass opened inside an operation that has one already (the gate cannot
  // be closed meanwhile, so this never waits), closed with leave() by
  // whoever ends it, on any thread (a LayoutLock's destructor).
  void enter_nested() { active_.fetch_add(1, std::memory_order_seq_cst); }
  void leave() { active_.fetch_sub(1, std::memory_order_seq_cst); }

  // The trimmer: closes the gate once no pass is open, waiting at most
  // `patience` (polling: it is the only waiter); false (the gate open
  // again) if passes stayed open.
  bool close_within(std::chrono::microseconds patience) {
    closing_.store(true, std::memory_order_seq_cst);
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (active_.load(std::memory_order_seq_cst) != 0) {
      if (std::chrono::steady_clock::now() >= give_up) {
        open();
        return false;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    return true;
  }
  void open() {
    closing_.store(false, std::memory_order_seq_cst);
    closing_.notify_all();
  }

 private:
  void enter() {
    while (true) {
      // Dekker's handshake with close_within(): each side announces itself
      // (seq_cst) before it reads the other's flag, so either this pass sees
      // the gate closing and steps back, or the trimmer sees the pass.
      active_.fetch_add(1, std::memory_order_seq_cst);
      if (!closing_.load(std::memory_order_seq_cst)) return;
      leave();
      closing_.wait(true, std::memory_order_seq_cst);
    }
  }

  std::atomic<uint64_t> active_{0};
  std::atomic<bool> closing_{false};
};

}  // namespace sealfs
