// The daemon's lock order: the one authoritative statement. Comments beside
// other mutexes say only "leaf" or point here. A thread may take a lock only
// if every lock it holds comes earlier in this list.
//
//   1. FilesystemImpl::rename_mu_
//   2. directory inodes (Inode::mu; an ancestor before its descendant,
//      otherwise by inode number)
//   3. non-directory inodes (Inode::mu), by inode number. The lease layer's
//      "inode layout lock" (Filesystem::lock_layout) is this lock.
//   4. the lease engine's mutex (lease::LeaseCore::mu_): taken with inode
//      locks held (the layout gate, grants, EXTEND); while it is held the
//      engine calls the QuarantineSink, which commits transactions (5, 6).
//      It never takes an inode lock.
//   5. the journal mutex (Journal::Impl::mu): taken by commit, checkpoint
//      and the superblock stamps, with any of the locks above held. Under
//      it run the prepare hooks and their undos
//      (Transaction::on_prepare_undo), which take leaves (6). The journal's
//      home writes run under it too.
//   6. leaves: held only briefly, and nothing that takes a lock is called
//      while one is held, so each can be taken under any lock above.
//        - the Allocator mutex (Allocator::Impl::mu): taken by the allocator's
//          own calls (under inode locks or the engine mutex) and by its
//          prepare hooks and undos (under the journal mutex). The allocator
//          never calls the journal, or anything else that locks, while
//          holding it: the journal -> allocator direction is the only one
//          taken, so the two cannot deadlock. allocate()/free() come before
//          the commit in program order, but each has released the
//          allocator mutex before the commit takes the journal mutex.
//        - InodeTable's mutex (inode objects; the orphan-list walk of a
//          prepare hook takes it under the journal mutex)
//        - MountVerifier::mu (the verification's outcome)
//        - FilesystemImpl: ialloc_mu_ (free-inode set), lazy_times_mu_
//          (inodes with times only in DRAM), table_mu_ (DirIndex building),
//          deferred_frees_mu_, frees_mu_ (frees statfs waits for),
//          restored_mu_, trimmer_mu_ (the cache thread's wake-up state),
//          idle_mu_ (the cache thread's queue: the one leaf taken under
//          another, InodeTable's mutex, whose loader queues each inode it
//          makes; nothing is taken under idle_mu_)
//        - OrphanLinks::mu_ (the orphan list's links; taken under the journal
//          mutex by the prepare hooks)
//        - HolderPins::mu_, lease::MetaQuarantineSink::mu_
//        - the lease server's actions_mu and stamps_mu (taken under the
//          engine mutex by its Notifier), lease::MountFdCloser::mu_
//        - lease::LeaseEngine: server_mu_ (the running server, read by the
//          layout gate under inode locks), leased_mu_
//        - src/fuse's own mutexes (the deferred-change and lease-drain
//          waiters)
//        - RegionDram's mutex (under the journal mutex, in its flushes)
//        - Region::observer_mu_ (the first media fault copies the observer
//          under it, then calls it without: the lease engine's observer
//          takes server_mu_ and the server's actions_mu, one at a time)
//
// Dropping cached inodes (the inode cache's bound; inode_cache.cc). Many
// places hold a raw Inode* beyond one lock scope: an operation between
// slot()/live() and its lock, the transaction's lists (MetaTxn), the layout
// undo, the orphan-list walk of a prepare hook, rename's ancestry walk
// (Inode::parent, without inode locks), the mount verifier, lazy_times_, and
// the LayoutLock the lease engine holds between operations. None needs a
// count of its own, because an inode is destroyed only at a quiescent point:
//   - every public Filesystem operation of FilesystemImpl holds a pass
//     through the cache gate (CacheGate::Pass, its first line) for its whole
//     run, so a pointer an operation obtained dies with the operation; a
//     LayoutLock holds a pass of its own until it is destroyed;
//   - the trimmer drops inodes only with the gate closed (no pass open: no
//     operation runs and no LayoutLock exists; those arriving wait), and
//     only once the mount is verified (the verifier's thread has ended) and
//     before the unmount (it is stopped first, so the unmount's lazy-times
//     and orphan walks never race with it);
//   - it drops only an inode with nothing but the media to remember:
//     lookups and opens zero (the kernel and FUSE handles refer to it by
//     number only and get it again through the table), times not dirty
//     (lazy_times_ is the one set of Inode*; the trimmer erases the inode
//     from it), not on the orphan list and not unlinked (its free is
//     pending or deferred), no staged inline bytes, not damaged
//     (load_failed), not the root. Leases and holder pins name inodes by
//     number and blocks (the gate is asked by number under the inode lock
//     at each layout change), so a reread inode gets the same answers.
//     The parent link of a directory is not on the media: the table keeps
//     it for the next inode of that number (InodeTable::evict).
//   - what a dropped inode held is its committed slot and blocks (commit
//     writes the home copies before it returns), so the inode read again
//     by load_on_demand equals it; a derived part (a directory's name
//     index) is built again on first use.
// FilesystemImpl::trim_mu_ lets one trimmer run at a time (the thread, or a
// test's trim_inode_cache); no operation takes it, and a trimmer holds no
// other lock when it takes it. With the gate closed the trimmer takes inode
// locks by try_lock only, and leaves (InodeTable's mutex, lazy_times_mu_,
// idle_mu_);
// it waits for nothing, and it
// gives up closing after a bounded wait, so a thread may open a pass while
// holding any lock (the lease engine's mutex, a LayoutLock) without a
// deadlock: at worst it waits out that bound.
//
// Two rules that are not edges: hold no lock while calling fuse_reply_* or
// fuse_lowlevel_notify_*, and none while waiting for a lease holder (a
// layout change that must wait queues a continuation on the engine; the
// engine runs continuations without its mutex). One exception to the first:
// the lease engine's LeaseObserver drops an inode's cached attributes
// (fuse_lowlevel_notify_inval_inode with offset -1) under that inode's
// layout lock, right after a grant changed them; attributes only, which
// waits for no page lock and no request of this daemon (fuse/kernel_cache.h).
//
// The annotations (util/thread_annotations.h: GUARDED_BY, REQUIRES) let
// clang's -Wthread-safety (scripts/sanitize.sh) check which lock guards
// which member, not this order. Every mutex above is annotated except
// src/fuse's (leaves). Inode::mu guards the inode's fields; a function that
// touches them says so (REQUIRES(inode.mu) or REQUIRES_SHARED) or takes the
// lock itself (WriterLock / ReaderLock). Where the analysis cannot see which
// lock is held, the code states it with assert_inode_locked (inode.h): a
// lock picked at run time among several inodes (rename, the undo of a
// transaction), reached through an alias, or handed over as a LayoutLock.
// Three reads and writes are exempt, each with its reason where it is: the
// mount verifier's reads of modes (mode_while_verifying), the loader of an
// inode not yet published (load_on_demand), and the directory index a
// shared holder builds (publish_dir_index, dir_ops.cc).
//
// An operation holds the locks of every inode it changes across building AND
// committing its transaction, so the order of transactions in the log equals
// the order of the DRAM changes. Readers take inode locks shared; a read()
// holds the shared lock while the consumer uses the region pointers.
//
// The orphan list's links (OrphanLinks, meta/orphan_links.h; loaded by the
// mount before it serves), inode slots at home and the staged superblock
// (FilesystemImpl::sb_staged_) are changed only under the journal mutex, in
// prepare hooks (the links are also read by the walks of the list outside it,
// under their own leaf mutex); a commit that fails after them restores them in a prepare
// undo, still under the journal mutex (an abort hook, which runs after the
// mutex is released, could overwrite a transaction committed in between).
//
// The orphan list is edited only inside prepare hooks (journal mutex): an
// unlink that orphans X, or the final free of X, may have to rewrite the slot
// of the inode Y before X on the list; Y's DRAM fields may be mid-change by
// another thread holding Y's lock, so the hook follows the list through
// OrphanLinks and rewrites Y from Y's slot at home, which under the
// journal mutex is Y's last committed image, never from Y's DRAM fields.
#pragma once
