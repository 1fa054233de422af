// FilesystemImpl: the Filesystem over media + alloc. The operations are
// split by subject: filesystem_impl.cc (mount, unmount, inode table,
// lifetimes), namespace_ops.cc, file_io.cc, file_layout.cc (truncate,
// fallocate, block map edits), dir_ops.cc (directory blocks), attr_ops.cc
// (getattr/setattr/xattrs). Lock order: locking.h.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "alloc/allocator.h"
#include "meta/cache_gate.h"
#include "media/data_writer.h"
#include "media/journal.h"
#include "media/superblock.h"
#include "meta/directory.h"
#include "meta/filesystem.h"
#include "meta/holder_pins.h"
#include "meta/inode.h"
#include "meta/inode_table.h"
#include "meta/layout_permit.h"
#include "meta/locking.h"
#include "meta/meta_txn.h"
#include "meta/orphan_links.h"
#include "meta/posix_acl.h"
#include "meta/xattr.h"
#include "util/bit_words.h"
#include "util/thread_annotations.h"

namespace sealfs {

struct MountVerifier;  // mount_verifier.h

// Largest file: 2^44 bytes (16 TiB). Block numbers then fit easily in the
// 64-bit file_block of an extent and offsets never overflow.
inline constexpr uint64_t kMaxFileSize = 1ull << 44;
inline constexpr uint32_t kMaxLinks = 65000;
inline constexpr uint32_t kSymlinkMax = 4095;

int64_t now_ns();
uint8_t dtype_for_mode(uint32_t mode);

class FilesystemImpl final : public Filesystem {
 public:
  FilesystemImpl(std::unique_ptr<Region> region, const MountOptions& options);
  ~FilesystemImpl() override;
  Status do_mount(FsckLikeStats* stats);

  Status unmount() override;
  bool read_only() const override { return read_only_; }
  Result<Attr> lookup(Ino parent, std::string_view name) override;
  void forget(Ino ino, uint64_t nlookup) override;
  Result<Attr> getattr(Ino ino) override;
  Result<Attr> setattr(Ino ino, const SetAttr& request) override;
  Result<Attr> mknod(Ino parent, std::string_view name, uint32_t mode, uint32_t rdev,
                     const Cred& cred) override;
  Result<Attr> mkdir(Ino parent, std::string_view name, uint32_t mode, const Cred& cred) override;
  Result<Attr> symlink(Ino parent, std::string_view name, std::string_view target,
                       const Cred& cred) override;
  Result<std::string> readlink(Ino ino) override;
  Result<Attr> link(Ino ino, Ino new_parent, std::string_view new_name) override;
  Status unlink(Ino parent, std::string_view name) override;
  Status rmdir(Ino parent, std::string_view name) override;
  Status rename(Ino parent, std::string_view name, Ino new_parent, std::string_view new_name,
                unsigned flags, const Cred& cred = {}) override;
  Status open(Ino ino, int flags) override;
  Result<Attr> create(Ino parent, std::string_view name, uint32_t mode, int flags,
                      const Cred& cred) override;
  void release(Ino ino) override;
  void retry_free(Ino ino) override;
  Status read(Ino ino, uint64_t offset, size_t length,
              const std::function<void(const std::vector<ReadSegment>&)>& consume) override;
  Result<size_t> read_copy(Ino ino, uint64_t offset, void* buf, size_t length) override;
  Result<size_t> write(Ino ino, uint64_t offset, const void* buf, size_t length,
                       bool append) override;
  Status fsync(Ino ino, bool datasync) override;
  Status note_direct_stores(Ino ino) override;
  Status fallocate(Ino ino, int mode, uint64_t offset, uint64_t length) override;
  Result<bool> drop_setid(Ino ino, SetidCaller& caller) override;
  Result<uint64_t> lseek(Ino ino, uint64_t offset, int whence) override;
  Result<size_t> copy_file_range(Ino in, uint64_t in_offset, Ino out, uint64_t out_offset,
                                 size_t length) override;
  Status readdir(Ino ino, uint64_t cookie,
                 const std::function<bool(const DirEntry&)>& emit) override;
  Status setxattr(Ino ino, std::string_view name, const void* value, size_t size,
                  int flags, SetidCaller* caller = nullptr) override;
  Result<std::vector<uint8_t>> getxattr(Ino ino, std::string_view name) override;
  Result<std::vector<std::string>> listxattr(Ino ino) override;
  Status removexattr(Ino ino, std::string_view name) override;
  Result<InodeAttrFlags> get_flags(Ino ino) override;
  Status set_flags(Ino ino, const InodeAttrFlags& flags, FlagsCaller& caller) override;
  Result<std::unique_ptr<LayoutLock>> lock_layout(Ino ino) override;
  Result<uint64_t> grow_for_lease(const LayoutLock& held, uint64_t new_size) override;
  Status shrink_after_grow(const LayoutLock& held, uint64_t old_size) override;
  Result<std::vector<LayoutPiece>> layout_extents(const LayoutLock& held, uint64_t offset,
                                                  uint64_t length, uint32_t flags,
                                                  uint64_t* where) override;
  uint64_t layout_alignment() const override { return map_alignment_; }
  WorkCounters work_counters() const override;
  uint64_t trim_inode_cache(uint64_t keep) override;
  Result<uint64_t> extent_count(Ino ino) override;
  Status pin_pieces(const Holder& holder, Ino ino,
                    const std::vector<LayoutPiece>& pieces) override;
  void unpin_pieces(const Holder& holder, const std::vector<LayoutPiece>& pieces) override;
  void quarantine_on_free(const Holder& holder, Ino ino,
                          const std::vector<LayoutPiece>& pieces) override;
  Status release_holder(const Holder& holder) override;
  std::vector<Holder> restored_holders() override;
  std::vector<QuarantineEntry> quarantine_entries() override;
  Result<FileLayoutReport> file_layout(Ino ino) override;
  std::vector<BlockExtent> free_extents() override;
  uint64_t alignment_blocks() const override { return map_alignment_ / format::kBlockSize; }
  std::vector<Ino> used_inodes() override;
  StatFs statfs() override;
  const Region& region() const override { return *region_; }

 private:
  friend class MetaTxn;

  // --- inode table (filesystem_impl.cc)
  Inode* slot(Ino ino);               // nullptr when out of range
  // Calls f(ino) for each inode number marked in use, in order, skipping
  // empty words (a region's inode count may be tens of millions).
  template <typename F>
  void for_each_used_inode(F&& f) const REQUIRES(ialloc_mu_) {
    bit_words::for_each_set_bit(inode_used_, [&](uint64_t ino) {
      if (ino != 0) f(ino);
    });
  }
  // The same for the mount verifier, without ialloc_mu_: its callbacks take
  // inode locks and commit, which a leaf may not be held across. Safe because
  // nothing changes the set while it runs: it runs before the mount is
  // shared or, in the background, while every allocation and free waits in
  // await_verified(); it filled the set itself (load_inode_table).
  template <typename F>
  void for_each_used_inode_verifying(F&& f) const NO_THREAD_SAFETY_ANALYSIS {
    for_each_used_inode(std::forward<F>(f));
  }
  // Reads the inode slots that hold data into DRAM (mount).
  Status load_inode_table();
  uint64_t choose_map_alignment();
  void refresh_backup_if_behind();
  Status count_directory_names(Inode& dir, std::vector<uint32_t>& names,
                               std::vector<uint32_t>& subdirs) EXCLUDES(dir.mu);
  Result<Inode*> live(Ino ino);       // in-use inode or kNotFound / kStale
  // Lookups of "." and ".." (handle_lookup.cc): by inode number, for the
  // kernel's export operations; +1 lookup.
  Result<Attr> lookup_self(Ino ino);
  Result<Attr> lookup_parent(Ino ino);
  Status load_inode(Inode& inode) REQUIRES(inode.mu);  // decodes slot + overflow chain
  Result<Inode*> allocate_inode();    // reserved in DRAM; caller stages it
  void release_inode_number(Ino ino);
  Status check_writable() const;
  // The layout gate (layout_permit.h): kLayoutSealed while `inode` has
  // leases, else the permit its size or block map may change with. Asked
  // under the inode's lock, once per operation.
  Result<LayoutPermit> gate(const Inode& inode) const REQUIRES_SHARED(inode.mu);
  // For a lease request's own change, under the layout lock the grant
  // holds (the permit is for that lock's inode).
  LayoutPermit permit_for_lease(const LayoutLock& held) const;
  // A permit for another inode is a broken invariant: aborts.
  static void check_permit(const LayoutPermit& permit, const Inode& inode);
  Attr attr_of(const Inode& inode) const REQUIRES_SHARED(inode.mu);
  // Frees an unlinked inode with no references: blocks, slot. Caller holds
  // inode.mu exclusively.
  Status free_inode(Inode& inode) REQUIRES(inode.mu);
  void maybe_free(Inode& inode) REQUIRES(inode.mu);
  // The bookkeeping statfs waits on (statfs_waits_for_frees): an inode the
  // kernel is expected to forget soon, a free that starts, one that ends.
  void expect_free(Ino ino);
  void free_started(Ino ino);
  void free_finished();
  void wait_for_frees_for_statfs();
  // Hands inodes whose free the gate refused to LayoutGate::free_deferred;
  // called by the public entry points once they hold no inode lock.
  void notify_deferred_frees();
  Status rename_entries(Ino parent, std::string_view name, Ino new_parent,
                        std::string_view new_name, unsigned flags, const Cred& cred);
  Status check_state_allows_mount(const Superblock& sb) const;
  // Reads the orphan list's links from the slots into orphan_links_, from
  // the superblock's head; a mount calls it before it serves. It stops at
  // a slot that cannot be read (the mount's verification reports that
  // slot) and where the list comes back to an inode already seen.
  void load_orphan_links();
  // The inodes on the orphan list, head first (kCorruption on a broken list).
  Result<std::vector<uint64_t>> orphan_list();
  Status process_orphans(FsckLikeStats* stats);
  // Frees what is on the orphan list and still unlinked; failures are logged
  // and leave the inode for the next mount.
  void free_orphans_at_unmount();
  // --- mount-time cross-checks (mount_checks.cc)
  // The block bitmap against every block referent: kCorruption on a
  // referenced block that is free or referenced twice; leaks are logged.
  Status check_block_references();
  // Link counts against the names the directory pass found (`names` per
  // inode; `subdirs`: subdirectory entries per directory). kCorruption when
  // a count is below what the names need.
  Status check_link_counts(const std::vector<uint32_t>& names,
                           const std::vector<uint32_t>& subdirs);
  Status trim_beyond_eof(Inode& inode) REQUIRES(inode.mu);
  // --- mount verification (mount_verifier.cc): everything a mount reads
  // and checks before it trusts the image, run before the mount is live or,
  // with MountOptions::background_verify, by a thread after it.
  Status verify_image(FsckLikeStats* stats);
  void start_verifier();
  void stop_verifier();  // unmount and destructor; joins the thread
  void finish_verification(const Status& result);
  // The gate of every metadata change (check_writable calls it): waits
  // until the image is verified; kReadOnly for good when verification found
  // damage. Never called with an inode lock held (the verifier takes them).
  Status await_verified() const;
  bool verified() const;
  // InodeTable's loader: reads a slot first touched while verifying. The
  // inode is not published yet (InodeTable's mutex is held), so no other
  // thread can reach it: it takes no inode lock.
  // An inode made again after the cache dropped it (`evicted`) is read
  // from its slot too, under the same guarantee: nothing else can reach it.
  void load_on_demand(Inode& inode, bool evicted) NO_THREAD_SAFETY_ANALYSIS;
  // An inode whose load failed: kIoError (what is served), and the reason
  // (what a synchronous mount refuses with).
  Status unreadable_inode(Ino ino) const;
  Status describe_load_failure(Ino ino) NO_THREAD_SAFETY_ANALYSIS;  // reads a scratch Inode

  // --- the inode cache's bound (inode_cache.cc; why it is safe: locking.h,
  // "Dropping cached inodes")
  void start_trimmer();
  void stop_trimmer();  // unmount and destructor; joins the thread
  void trimmer_loop();
  // Puts `inode` in idle_queue_ unless it is there (or there is no bound):
  // when it is made, and when forget() or release() leave it with no lookup
  // and nothing open. With `wake`, wakes the thread when the table is past
  // the bound; the thread's own putting back does not (it would find the
  // same inode at once, and spin while it waits for its free).
  void queue_for_trimmer(Inode& inode, bool wake = true) REQUIRES(inode.mu);
  // InodeTable's loader: reads the inode (load_on_demand) and queues it.
  void on_inode_made(Inode& inode, bool evicted) NO_THREAD_SAFETY_ANALYSIS;
  // Drops queued inodes nothing holds until `keep` are left or the inodes
  // queued when it started have been looked at; returns how many it dropped.
  uint64_t trim_to(uint64_t keep) EXCLUDES(trim_mu_);
  // What the trimmer does with an inode taken from the queue.
  enum class TrimVerdict {
    kDrop,     // nothing but the media remembers it
    kHeld,     // the kernel or a handle holds it: its forget or release queues it again
    kKeep,     // damaged, or the root: kept until the unmount
    kLater,    // something only in DRAM for now (an unlinked file's free to come,
               // inline bytes staged, its lock taken): queued again
  };
  TrimVerdict trim_verdict(const Inode& inode) const REQUIRES(inode.mu);
  // Under a pass: takes the inodes numbered in `numbers` out of the queue,
  // writes the lazy times of those the kernel forgot, puts back those to
  // look at later, and gives those that may be dropped.
  void pick_droppable(const std::vector<uint64_t>& numbers, std::vector<Inode*>* candidates);
  // Closes the cache gate, trying a bounded number of times; false if the
  // operations kept it open.
  bool close_gate();
  // With the cache gate closed: drops `inode` if the verdict is kDrop.
  TrimVerdict drop_if_idle(Inode& inode);

  // --- block map (file_layout.cc)
  // Makes the overflow chain match the extent map; may allocate or free
  // overflow blocks.
  Status sync_extent_blocks(MetaTxn& t, Inode& inode) REQUIRES(inode.mu);
  // Unmaps [first, first+count) blocks in bounded transactions; the first
  // transaction also applies `first_edit` (e.g. the new size).
  Status free_range(Inode& inode, const LayoutPermit& permit, uint64_t first_block,
                    uint64_t count, const std::function<void(Inode&)>& first_edit)
      REQUIRES(inode.mu);
  Status truncate_locked(Inode& inode, const LayoutPermit& permit, uint64_t new_size)
      REQUIRES(inode.mu);
  Status zero_partial(Inode& inode, uint64_t offset, uint64_t length) REQUIRES(inode.mu);
  Status settle_freed_metadata();
  // Gives blocks that left `inode`'s map back: to quarantine where a
  // revoked holder may still reach them (pins_), else to free space.
  Status release_blocks(MetaTxn& t, const Inode& inode, BlockExtent blocks)
      REQUIRES(inode.mu);
  // The birth time encode_inode writes in the inode's slot: 0 for a free
  // inode, the ctime of an unborn one (Inode::unborn), else what its slot
  // at home holds. Called under the journal mutex (MetaTxn::stage_locked),
  // where the home slot is exactly the last committed image.
  int64_t birth_time_of(const Inode& inode) const REQUIRES_SHARED(inode.mu);
  // --- inline data (inline_data.cc); each with inode.mu held exclusively
  // Whether new regular files start inline (kFeatureIncompatInlineData).
  bool new_files_inline() const;
  // An inline file's `core.size` bytes: the staged ones while a change is
  // being made, else the committed slot's in the region (the journal writes
  // the home slot before commit returns). Caller holds inode.mu (shared is
  // enough); the pointer is valid while it does.
  const char* inline_data_of(const Inode& inode) const REQUIRES_SHARED(inode.mu);
  // Stages the committed bytes in inode.inline_bytes for a change (no-op
  // when already staged or empty); the caller holds a LayoutUndo taken
  // before, which puts the empty string back if the change fails.
  void stage_inline_bytes(Inode& inode) const REQUIRES(inode.mu);
  // Inside `t`: the inline file's bytes go to a new block 0 (none for an
  // empty file) and the flag is cleared; a no-op for a file in extents.
  // The caller ran settle_freed_metadata() before opening `t` and restores
  // a LayoutUndo taken before this if `t` does not commit.
  Status move_inline_to_extents(MetaTxn& t, Inode& inode, const LayoutPermit& permit)
      REQUIRES(inode.mu);
  // The same in a transaction of its own (the file's bytes do not change).
  Status leave_inline(Inode& inode, const LayoutPermit& permit) REQUIRES(inode.mu);
  // Applies `edit` to an inline inode and commits its slot; undone in DRAM
  // if the commit fails.
  Status commit_inline_edit(Inode& inode, const std::function<void(Inode&)>& edit)
      REQUIRES(inode.mu);
  // A write that keeps the file inline: offset + length <= kInlineDataMax.
  Result<size_t> write_inline(Inode& inode, uint64_t offset, const void* buf, size_t length)
      REQUIRES(inode.mu);
  // Truncate or fallocate of an inline file to `new_size` <= kInlineDataMax
  // (new bytes are zeros); ctime, and mtime when `touch_mtime`.
  Status resize_inline(Inode& inode, uint64_t new_size, bool touch_mtime) REQUIRES(inode.mu);
  // Zeroes [offset, +length) of an inline file (punch, zero range) after
  // growing it to `new_size` when that is larger; mtime and ctime.
  Status zero_inline(Inode& inode, uint64_t offset, uint64_t length, uint64_t new_size)
      REQUIRES(inode.mu);
  // After a truncate to 0 left no block: the file is inline again.
  Status return_to_inline(Inode& inode) REQUIRES(inode.mu);

  // --- direct mappings (file_lease.cc)
  Status allocate_for_lease(Inode& inode, const LayoutPermit& permit, uint64_t first_block,
                            uint64_t end_block) REQUIRES(inode.mu);
  Status relocate_for_lease(Inode& inode, const LayoutPermit& permit, uint64_t first_block,
                            uint64_t end_block) REQUIRES(inode.mu);
  std::vector<LayoutPiece> pieces_of(const Inode& inode, uint64_t offset, uint64_t length) const
      REQUIRES_SHARED(inode.mu);
  // Allocates and maps unwritten extents for the holes in the range.
  Status allocate_unwritten(MetaTxn& t, Inode& inode, const LayoutPermit& permit,
                            uint64_t first_block, uint64_t count) REQUIRES(inode.mu);

  // --- directories (dir_ops.cc)
  Status ensure_dir_index(Inode& dir) REQUIRES_SHARED(dir.mu);
  Result<uint64_t> dir_region_block(const Inode& dir, uint32_t block_index) const
      REQUIRES_SHARED(dir.mu);
  Status dir_insert(MetaTxn& t, Inode& dir, std::string_view name, uint64_t ino, uint8_t type)
      REQUIRES(dir.mu);
  void dir_remove(MetaTxn& t, Inode& dir, std::string_view name) REQUIRES(dir.mu);
  void dir_retarget(MetaTxn& t, Inode& dir, std::string_view name, uint64_t ino, uint8_t type)
      REQUIRES(dir.mu);
  Status check_name(std::string_view name) const;

  // --- namespace helpers (namespace_ops.cc)
  Result<Attr> make_node(Ino parent, std::string_view name, uint32_t mode, uint32_t rdev,
                         const Cred& cred, std::string_view symlink_target, bool open_it);
  Status remove_entry(Ino parent, std::string_view name, bool is_rmdir);
  Result<bool> is_ancestor(Ino ancestor, Ino ino);
  // RENAME_WHITEOUT's character device, and its undo when the rename fails
  // (rename_ops.cc). Caller holds wo.mu exclusively.
  void init_whiteout(Inode& wo, const Cred& cred, int64_t now) REQUIRES(wo.mu);
  void undo_whiteout(Inode& wo) REQUIRES(wo.mu);
  // --- extended attributes (xattr_ops.cc) and ACLs (acl_ops.cc)
  XattrBlockReader xattr_block_reader() const;
  Status read_xattrs(const Inode& inode, XattrStore* out) REQUIRES_SHARED(inode.mu);
  // Makes the inode's stored attributes `list`, in the chain `blocks` (what
  // read_xattrs found; reused first, then grown or cut); kNoSpace beyond
  // kXattrChainMaxBlocks. The caller restores inode.core if the
  // transaction fails.
  Status write_xattrs(MetaTxn& t, Inode& inode, std::vector<uint64_t> blocks,
                      const XattrList& list) REQUIRES(inode.mu);
  // setxattr and removexattr: write_xattrs, the ctime, and the commit in a
  // transaction of their own; inode.core is `saved` again if any fails.
  Status commit_xattrs(Inode& inode, std::vector<uint64_t> blocks, const XattrList& list,
                       const InodeCore& saved) REQUIRES(inode.mu);
  void free_xattr_blocks(MetaTxn& t, const Inode& inode) REQUIRES(inode.mu);
  // After the commit that set a feature bit: the backup superblock carries
  // it too (Journal::refresh_backup_superblock). Best effort: a failure is
  // logged, and fsck.sealfs reports the copies differing.
  void refresh_backup_superblock();
  // setxattr of an ACL name: edits `list` and the inode's mode.
  Status set_acl_in_list(Inode& inode, std::string_view name, const Acl& acl,
                         SetidCaller* caller, XattrList* list) REQUIRES(inode.mu);
  // chmod: the stored access ACL takes the inode's new mode.
  Status chmod_access_acl(MetaTxn& t, Inode& inode) REQUIRES(inode.mu);
  // A new inode in `dir`: its mode (umask, or the default ACL's limits) and
  // the ACLs it inherits.
  Status inherit_acls(const Inode& dir, uint32_t* mode, uint32_t umask, XattrList* child)
      REQUIRES_SHARED(dir.mu);
  void touch_atime(Inode& inode) EXCLUDES(inode.mu);
  // write() after its checks, with inode.mu held exclusively (file_io.cc).
  Result<size_t> write_locked(Inode& inode, uint64_t offset, const void* buf, size_t length)
      REQUIRES(inode.mu);
  // The part of a write that allocates, converts unwritten blocks or
  // extends: [offset, +length) already clamped to the maximum file size.
  Result<size_t> write_changing_layout(Inode& inode, const LayoutPermit& permit, uint64_t offset,
                                       const void* buf, size_t length) REQUIRES(inode.mu);
  // Append-only files: how many leading bytes of a write land below EOF
  // unchanged; kPermission when they would change it (file_io.cc).
  Result<size_t> unchanged_below_eof(const Inode& inode, uint64_t offset, const void* buf,
                                     size_t length) REQUIRES_SHARED(inode.mu);
  // Whether a read now changes atime, by the mount's AtimePolicy (atime.cc).
  bool atime_due(const InodeCore& c, int64_t now) const;
  // The same under the inode's shared lock, for a read about to be served.
  bool atime_wanted(Inode& inode) EXCLUDES(inode.mu);
  // Lazy timestamps (docs/design.md, "Timestamps"): an overwrite or a read
  // changes times in DRAM only; the inode's next transaction, its fsync or
  // the unmount writes them. Both need inode.mu held exclusively.
  void mark_times_dirty(Inode& inode) REQUIRES(inode.mu);
  Status persist_times(Inode& inode) REQUIRES(inode.mu);
  // Unmount: every inode whose times are only in DRAM.
  Status persist_lazy_times();

  std::unique_ptr<Region> region_;
  MountOptions options_;
  bool read_only_ = false;
  Geometry geo_;
  // What a direct mapping of this region needs: the larger of the alignment
  // mkfs recorded and the one the device maps in now (an image formatted on
  // a file, 4 KiB, then copied to devdax, 2 MiB). Set by choose_map_alignment.
  uint64_t map_alignment_ = format::kBlockSize;
  std::unique_ptr<Journal> journal_;
  // Committed transactions that freed journaled metadata blocks, and how many
  // of them a checkpoint has since put behind the log tail.
  std::atomic<uint64_t> metadata_frees_{0};
  // kFeatureIncompatXattrChain is on media (set at mount, then by the
  // commit of the first chain).
  std::atomic<bool> xattr_chain_feature_{false};
  // kFeatureIncompatInlineData is on media (mkfs sets it; set at mount,
  // before the filesystem is shared, never changed after).
  bool inline_data_feature_ = false;
  // Work counters (Filesystem::work_counters).
  std::atomic<uint64_t> extent_blocks_encoded_{0};
  std::atomic<uint64_t> metadata_frees_settled_{0};
  std::unique_ptr<Allocator> alloc_;
  std::unique_ptr<DataWriter> data_;
  bool mounted_ = false;

  Superblock sb_staged_;  // guarded by the journal mutex (prepare hooks)
  OrphanLinks orphan_links_;  // changed under the journal mutex (prepare hooks)

  Mutex table_mu_;  // leaf: serialises DirIndex builders (dir_ops.cc)
  InodeTable inodes_;

  Mutex ialloc_mu_;  // leaf: the free-inode set (the three below)
  std::vector<uint64_t> inode_used_ GUARDED_BY(ialloc_mu_);  // bit per inode number
  uint64_t used_inodes_ GUARDED_BY(ialloc_mu_) = 0;
  uint64_t ialloc_hint_ GUARDED_BY(ialloc_mu_) = 1;
  Mutex lazy_times_mu_;  // leaf: the set below
  std::unordered_set<Inode*> lazy_times_ GUARDED_BY(lazy_times_mu_);
  std::atomic<uint64_t> lazy_time_commits_{0};
  std::atomic<uint64_t> unmount_inodes_visited_{0};

  Mutex rename_mu_;

  HolderPins pins_;
  Mutex deferred_frees_mu_;  // leaf
  std::vector<Ino> deferred_frees_ GUARDED_BY(deferred_frees_mu_);
  // An unlinked file is freed when the kernel forgets its inode (FORGET,
  // which the kernel sends without waiting, after unlink has returned) or at
  // its last close, in bounded transactions (file_layout.cc) that take a
  // while on a region persisted with msync. statfs waits for those frees,
  // so that df right after rm counts the file's blocks: for the inodes
  // expected to be forgotten (nlink 0, nothing open, the kernel still
  // holding them; each for at most kForgetWait, since something may keep a
  // deleted file's inode, an O_PATH descriptor say) and for the frees
  // running. docs/daemon.md "df after rm".
  Mutex frees_mu_;  // leaf
  std::condition_variable_any frees_changed_;
  std::unordered_map<Ino, std::chrono::steady_clock::time_point> frees_expected_
      GUARDED_BY(frees_mu_);
  uint64_t frees_running_ GUARDED_BY(frees_mu_) = 0;
  Mutex restored_mu_;  // leaf
  std::vector<Holder> restored_holders_ GUARDED_BY(restored_mu_);
  std::unique_ptr<MountVerifier> verifier_;

  // The inode cache's bound (inode_cache.cc). Every public operation passes
  // through cache_gate_; the trimmer closes it to drop inodes.
  CacheGate cache_gate_;
  Mutex trim_mu_;  // one trimmer at a time (the thread, trim_inode_cache); taken by no operation
  Mutex trimmer_mu_;  // leaf: the thread's wake-up state below
  std::condition_variable_any trimmer_wake_;
  bool trimmer_stop_ GUARDED_BY(trimmer_mu_) = false;
  std::atomic<bool> trimmer_stopping_{false};  // trimmer_stop_, read between batches
  bool trim_wanted_ GUARDED_BY(trimmer_mu_) = false;
  std::atomic<bool> trim_asked_{false};  // queue_for_trimmer's lock-free check
  // Numbers of the inodes that may have become droppable, oldest first: each
  // inode made and each one the kernel forgot or a close left idle. An inode
  // is queued only while it is not flagged (Inode::idle_queued); a number
  // the trimmer took can be queued again before its inode is dropped, so
  // the queue holds at most two numbers per cached inode, and the trimmer's
  // work follows what it drops, not the table's size.
  Mutex idle_mu_;  // leaf
  std::deque<uint32_t> idle_queue_ GUARDED_BY(idle_mu_);  // 4 bytes: Inode::ino
  std::atomic<uint64_t> inodes_dropped_{0};
  std::atomic<uint64_t> inodes_trim_visited_{0};
  std::thread trimmer_;
};

}  // namespace sealfs
