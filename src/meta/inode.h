// Inode: the DRAM form of one inode (decoded fields, extent map, counts) and
// the codec for its 256-byte slot in the inode table.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "meta/directory.h"
#include "meta/extent_chain.h"
#include "meta/extent_map.h"
#include "meta/inline_bytes.h"
#include "sealfs/format.h"
#include "util/saturating_count.h"
#include "util/small_shared_mutex.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace sealfs {


// The fields of DiskInode that live in DRAM. orphan_next is not here: it
// belongs to the orphan list, which is staged under the journal mutex
// (see orphan_links.h). Nor is the birth time, which nothing the daemon
// serves shows (FUSE carries no btime) and which never changes: it stays in
// the slot (Inode::unborn, encode_inode), 8 bytes less per cached inode.
struct InodeCore {
  uint32_t mode = 0;  // 0 = free
  uint32_t uid = 0, gid = 0;
  uint32_t nlink = 0;
  uint32_t flags = 0;       // format::InodeFlags
  uint32_t project_id = 0;  // FS_IOC_FSSETXATTR's fsx_projid
  uint32_t generation = 0;
  uint32_t rdev = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // data-area blocks owned, incl. overflow and xattr blocks
  int64_t atime = 0, mtime = 0, ctime = 0;
  uint64_t xattr_block = 0;
};

// What one cached inode costs is what the daemon's DRAM grows by per file
// (issue 12 asks for 200 bytes): the fields most inodes never use are one
// pointer each here and a heap block when used (the extent map of a file
// with extents, the overflow chain, the inline bytes, the name index of a
// directory), and the fields are ordered so that none pads. The table
// places inodes in arrays (inode_table.h), so malloc adds nothing per inode.
struct Inode {
  explicit Inode(uint64_t number) : ino(static_cast<uint32_t>(number)) {}
  // 32 bits: an image has at most format::kMaxInodeCount inodes (the
  // superblock's check refuses more), and InodeTable::reset checks it.
  const uint32_t ino;

  // Order: see locking.h. Guards every field below except parent and
  // load_failed.
  SmallSharedMutex mu;
  // The kernel's lookup count (FUSE_FORGET) and the open handles. 32 bits
  // each, stuck at their maximum once they reach it (saturating_count.h):
  // such an inode is never freed early, only kept until the unmount.
  SaturatingCount lookups GUARDED_BY(mu);
  SaturatingCount opens GUARDED_BY(mu);
  // Directories: rebuilt at mount, changed under rename_mu_ (read without
  // the inode lock by rename's ancestry walk, hence atomic).
  std::atomic<uint32_t> parent{0};
  // atime/mtime/ctime changed in DRAM only (FilesystemImpl::mark_times_dirty).
  bool times_dirty GUARDED_BY(mu) = false;
  // Its number is in the inode cache's queue of inodes to look at
  // (FilesystemImpl::idle_queue_), so it is not put there again.
  bool idle_queued GUARDED_BY(mu) = false;
  // Not guarded: its slot or overflow chain failed the checks when it was
  // read (mount_verifier.cc), so nothing of it is served (EIO). Set before
  // the inode is published in the table, never changed after.
  bool load_failed = false;
  // Made by a create whose transaction has not committed yet: its slot at
  // home is not its own, so the birth time encode_inode writes is its ctime
  // (the create's time), not the slot's. MetaTxn::commit clears it.
  bool unborn GUARDED_BY(mu) = false;
  InodeCore core GUARDED_BY(mu);
  ExtentMap extents GUARDED_BY(mu);
  ExtentChain chain GUARDED_BY(mu);  // overflow blocks, in file order
  // Bytes kept in the slot itself. A symlink of <= kInlineSymlinkMax
  // bytes: its target, always. A regular file with kInodeInlineData
  // (has_inline_data): empty, its bytes being read from the committed slot
  // in the region (FilesystemImpl::inline_data_of), except while a change
  // of them is staged, when it holds all `core.size` new bytes until the
  // commit (inline_data.cc). So a small file costs no DRAM for its bytes.
  InlineBytes inline_bytes GUARDED_BY(mu);
  std::unique_ptr<DirIndex> dir GUARDED_BY(mu);  // directories, built on first use
  // Its orphan-list link is not here: orphan_links.h.

  bool in_use() const REQUIRES_SHARED(mu) { return core.mode != 0; }
  // A regular file whose bytes live in its slot (no extents).
  bool has_inline_data() const REQUIRES_SHARED(mu) {
    return (core.flags & format::kInodeInlineData) != 0;
  }
};
// docs/design.md section 5 ("What a cached inode costs") states this size.
static_assert(sizeof(Inode) == 136, "the DRAM cost of a cached inode (issue 12) changed");

// Unlinked: no name left (link count 0) or on the orphan list. The blocks of
// such an inode are freed in a transaction before the one that frees its
// slot (free_inode), so a crash between the two leaves a slot whose size has
// no blocks behind it, which the mount frees (format.md 6). The one
// statement of that allowance: decode_inode and load_inode (a symlink's or
// a directory's size without blocks) and fsck point here.
inline bool slot_unlinked(uint32_t flags, uint32_t nlink) {
  return (flags & format::kInodeOrphan) != 0 || nlink == 0;
}

// Tells the thread-safety analysis that the caller holds `inode`'s lock (if
// `inode` is not null) where it cannot see it: a lock chosen at run time
// among several inodes (rename, link), one reached through an alias, or one
// handed over as a LayoutLock. At run time it checks that the lock is held
// by somebody.
inline void assert_inode_locked(const Inode* inode) ASSERT_CAPABILITY(inode->mu) {
  if (inode != nullptr) inode->mu.assert_held();
}
inline void assert_inode_locked_shared(const Inode* inode) ASSERT_SHARED_CAPABILITY(inode->mu) {
  if (inode != nullptr) inode->mu.assert_held_shared();
}

// The mode of an inode read without its lock, by the mount verifier only:
// the mode of an inode changes (create, chmod, free) only after
// check_writable(), which waits for the verifier (mount_verifier.cc).
inline uint32_t mode_while_verifying(const Inode& inode) NO_THREAD_SAFETY_ANALYSIS {
  return inode.core.mode;
}

// Builds the slot image. `orphan_next` is the inode's link in OrphanLinks,
// read under the journal mutex. `btime_ns`: the birth time (the home
// slot's, or the ctime of an unborn inode; 0 for a free one). `inline_data`: the `core.size` bytes of an inline file
// (FilesystemImpl::inline_data_of); unused for any other inode.
format::DiskInode encode_inode(const Inode& inode, uint64_t orphan_next, int64_t btime_ns,
                               const void* inline_data = nullptr) REQUIRES_SHARED(inode.mu);
void seal_inode_crc(format::DiskInode& disk);

// Decoded slot: fields, inline extents (or symlink), where the rest lives.
struct DecodedInode {
  InodeCore core;
  int64_t btime = 0;
  uint64_t orphan_next = 0;
  uint64_t extent_block = 0;
  uint32_t extent_count = 0;
  std::vector<format::DiskExtent> inline_extents;
  // An inline symlink's target, or an inline regular file's `size` bytes.
  std::string inline_bytes;
};
// kBadCrc / kCorruption naming the inode. An all-zero slot is a free,
// never-used inode.
Result<DecodedInode> decode_inode(const format::DiskInode& disk, uint64_t ino,
                                  uint64_t inode_count);
bool slot_is_zero(const format::DiskInode& disk);

}  // namespace sealfs
