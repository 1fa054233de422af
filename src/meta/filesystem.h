// Filesystem: the POSIX namespace and file operations over a formatted
// region. Knows nothing of FUSE: the daemon translates each FUSE request into
// one call here and each Status into an errno (Status::to_errno()).
//
// Every mutation is one journal transaction (or a short sequence of them for
// very large truncates), durable when the call returns; fsync() is therefore
// cheap and exists for the data path (ordering guarantees are documented in
// docs/design.md).
//
// Lifetimes: an inode is freed when its link count, its open count and its
// lookup count (kernel references, lookup()/forget()) are all zero. An
// unlinked inode that is still referenced sits on the persistent orphan list
// and is freed at its last release, at unmount, or at the next mount.
//
// Permission checks are the kernel's (the daemon mounts with
// default_permissions); this layer enforces only what the VFS cannot see:
// type rules (EISDIR, ENOTDIR, ENOTEMPTY), name rules and sizes.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "alloc/allocator.h"
#include "media/region.h"
#include "util/status.h"

namespace sealfs {

using Ino = uint64_t;

// Who is asking (from fuse_req_ctx): new inodes take their owner from here.
struct Cred {
  uint32_t uid = 0;
  uint32_t gid = 0;
  // Applied by the filesystem unless the parent directory has a default
  // ACL (the daemon mounts with FUSE_CAP_DONT_MASK); 0 for none.
  uint32_t umask = 0;
  int32_t pid = 0;
};

struct Attr {
  Ino ino = 0;
  uint32_t generation = 0;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t rdev = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte units, as st_blocks
  struct timespec atime {}, mtime{}, ctime{};
  struct stat to_stat() const;
};

// Who changes a file, for clearing its set-id bits as the kernel does
// (setattr_should_drop_suidgid; docs/daemon.md "Set-id bits"). Asked only
// about a file that has S_ISUID or S_ISGID, so the common write never pays
// for the answer.
class SetidCaller {
 public:
  virtual ~SetidCaller() = default;
  // CAP_FSETID in the mount's user namespace: the caller keeps set-id bits.
  virtual bool has_fsetid() = 0;
  // `gid` is the caller's filesystem gid or one of its supplementary groups.
  virtual bool in_group(uint32_t gid) = 0;
  // The caller owns a file of owner `uid`, or has CAP_FOWNER: it may change
  // the file's mode (the kernel's inode_owner_or_capable).
  virtual bool may_chmod(uint32_t uid) = 0;
};

// The set-id bits the kernel drops when `caller` changes the contents (or
// size) of a regular file of mode `mode`: S_ISUID always, S_ISGID when the
// group may execute or the caller is not in the file's group `gid`; none
// when the caller has CAP_FSETID. 0 for anything but a regular file.
uint32_t setid_bits_to_drop(uint32_t mode, uint32_t gid, SetidCaller& caller);
// The same for chown (chown_common): S_ISUID whatever the caller, S_ISGID
// as above; non-directories only.
uint32_t setid_bits_to_drop_on_chown(uint32_t mode, uint32_t gid, SetidCaller* caller);

// Inode flags a user sets with chattr (docs/daemon.md "Inode flags"):
// format::kInodeUserFlags bits (immutable, append-only, nodump, noatime) and
// the project id.
struct InodeAttrFlags {
  uint32_t flags = 0;
  uint32_t project_id = 0;
  bool operator==(const InodeAttrFlags&) const = default;
};

// Who changes an inode's flags: the owner or a holder of CAP_FOWNER may;
// immutable and append-only need CAP_LINUX_IMMUTABLE as well (the kernel's
// vfs_fileattr_set and fileattr_set_prepare).
class FlagsCaller {
 public:
  virtual ~FlagsCaller() = default;
  virtual uint32_t fsuid() = 0;
  virtual bool has_fowner() = 0;
  virtual bool has_linux_immutable() = 0;
};

struct SetAttr {
  enum : uint32_t {
    kMode = 1 << 0,
    kUid = 1 << 1,
    kGid = 1 << 2,
    kSize = 1 << 3,
    kAtime = 1 << 4,
    kMtime = 1 << 5,
    kAtimeNow = 1 << 6,
    kMtimeNow = 1 << 7,
    kCtime = 1 << 8,
    // chown(f, -1, -1), which FUSE sends as a setattr with nothing to set:
    // no owner changes, but the set-id bits go as on a chown and the ctime
    // moves, when `caller` may chmod the file; anyone else's changes
    // nothing (docs/daemon.md "Set-id bits": the same empty request
    // precedes a write).
    kKeepOwner = 1 << 9,
  };
  uint32_t valid = 0;
  // An mtime (and ctime) the kernel's writeback cache flushes after writes
  // it cached (fuse_flush_times), which an append-only file accepts: a
  // daemon mounted with writeback_cache cannot tell it from utimensat with
  // atime omitted, so it marks every such request (docs/daemon.md).
  bool cached_times = false;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  struct timespec atime {}, mtime{}, ctime{};
  // Truncate and chown clear set-id bits as this caller's kernel would;
  // null: a caller with CAP_FSETID in every group.
  std::shared_ptr<SetidCaller> caller;
};

struct StatFs {
  uint64_t block_size = 4096;
  uint64_t blocks = 0;       // data area
  uint64_t free_blocks = 0;  // not counting quarantined blocks
  uint64_t inodes = 0;
  uint64_t free_inodes = 0;
  uint64_t name_max = 255;
};

struct DirEntry {
  std::string_view name;
  Ino ino = 0;
  uint32_t type = 0;         // DT_*
  uint64_t next_cookie = 0;  // pass back to readdir to continue after this
};

// A piece of a read: a pointer into the mapped region (a data block, or the
// inode slot of a file kept inline), or nullptr for zeros. Valid only
// inside the read's callback.
struct ReadSegment {
  const void* data = nullptr;
  size_t length = 0;
};

// Layout changes to a file with direct-mapping leases must be deferred until
// the leases are gone. The lease engine implements this; without one, no
// inode is ever sealed.
class LayoutGate {
 public:
  virtual ~LayoutGate() = default;
  // Called under the inode's lock before any change of size or block map.
  // Returning true makes the operation fail with Code::kLayoutSealed
  // without side effects; the caller breaks the leases and retries.
  virtual bool sealed(Ino ino) = 0;
  // The last reference to an unlinked inode went away while it was sealed,
  // so its blocks were not freed. Called with no filesystem lock held; the
  // gate breaks the leases and then calls Filesystem::retry_free(ino).
  virtual void free_deferred(Ino ino) { (void)ino; }
};

// The status a layout change returns while the gate says "sealed": a code
// of its own, so that context added on the way up cannot hide it.
inline bool is_layout_sealed(const Status& s) { return s.code() == Code::kLayoutSealed; }

// Who mounts: recorded in the superblock (format.h) at a read-write mount.
struct MountRecord {
  uint32_t pid = 0;
  std::string host;
  std::string mount_point;
};

// When a read updates atime (the mount's noatime / relatime / strictatime;
// docs/design.md, "Timestamps").
enum class AtimePolicy {
  kRelative,  // relatime, the default: atime older than mtime or ctime, or a day old
  kStrict,    // strictatime: every read
  kNever,     // noatime
};

struct MountOptions {
  bool read_only = false;
  AtimePolicy atime = AtimePolicy::kRelative;
  MountRecord owner;
  LayoutGate* gate = nullptr;
  // Every write to a regular file asks the gate, not only one that
  // allocates or extends (the daemon's -o strict_write_break). Asked under
  // the inode's lock, as every gate check is, so no lease can be granted
  // between the answer and the write.
  bool gate_every_write = false;
  // Blocks quarantined against holders that are still alive stay out of
  // the free space; decides liveness of a (pid, start time).
  std::function<bool(uint32_t pid, uint64_t start_time)> holder_alive;
  // The mount goes live before every inode is read and cross-checked: a
  // verifier thread does that while lookups, reads and getattr proceed
  // (inodes read on demand); every operation that changes metadata waits
  // for it (the daemon's -o background_verify; docs/design.md, "Mount").
  bool background_verify = false;
  // Tests: the verifier thread calls this before it starts (to hold it back).
  std::function<void()> before_verify;
  // The inode cache's bound (the daemon's -o inode_cache=N): once more
  // inodes than this are in DRAM, a thread drops those nothing holds (the
  // kernel forgot them, nothing open, no state only in DRAM) until 7/8 of
  // it are left; each is read from the media again on its next use. 0: no
  // bound (docs/design.md, "The inode cache's bound").
  uint64_t inode_cache = kDefaultInodeCache;
  static constexpr uint64_t kDefaultInodeCache = 65536;
};

struct FsckLikeStats {
  uint64_t orphans_freed = 0;
  uint64_t transactions_replayed = 0;
  bool torn_tail = false;
};

// Direct mappings (the lease engine's bridge: src/lease/meta_layout_source.h).
// One piece of a file's layout: bytes [file_offset, +length) of the file are
// bytes [region_offset, +length) of the region.
struct LayoutPiece {
  uint64_t file_offset = 0;
  uint64_t region_offset = 0;
  uint64_t length = 0;
  bool operator==(const LayoutPiece&) const = default;
};

// One extent of a file as sealfs-layout shows it (bytes, not blocks).
struct FileExtentReport {
  uint64_t file_offset = 0;
  uint64_t region_offset = 0;
  uint64_t length = 0;
  bool unwritten = false;
};
struct FileLayoutReport {
  Ino ino = 0;
  uint32_t mode = 0;
  uint64_t size = 0;
  InodeAttrFlags flags;  // chattr's flags and the project id
  // The bytes live in the inode slot (format.h kInodeInlineData): no
  // extents, and no hole either.
  bool inline_data = false;
  std::vector<FileExtentReport> extents;  // file order; gaps are holes
};

enum LayoutFlags : uint32_t {
  kLayoutAllocate = 1u << 0,  // allocate holes, convert unwritten extents (zeroed) first
  kLayoutRelocate = 1u << 1,  // move the range into extents aligned to layout_alignment()
  kLayoutWritable = 1u << 2,  // the holder will store into the pieces
};

// Holds an inode's lock exclusively: the lock every size or block-map change
// holds across its gate check and its change.
class LayoutLock {
 public:
  virtual ~LayoutLock() = default;
  virtual Ino ino() const = 0;
};

class Filesystem {
 public:
  // Verifies the superblock, replays the journal, rebuilds DRAM indexes,
  // frees orphans, marks the superblock mounted. kCorruption / kBadCrc /
  // kUnsupportedFeature on a bad image (never crashes on one).
  static Result<std::unique_ptr<Filesystem>> mount(std::unique_ptr<Region> region,
                                                   const MountOptions& options,
                                                   FsckLikeStats* stats = nullptr);
  virtual ~Filesystem() = default;
  // Frees remaining orphans, checkpoints, marks the superblock clean.
  virtual Status unmount() = 0;
  // Read-only from the mount on: asked for, a read-only region, or a
  // superblock with ro_compat features this build does not know. (Damage
  // found later also refuses changes, without changing this.)
  virtual bool read_only() const = 0;

  // Namespace.
  virtual Result<Attr> lookup(Ino parent, std::string_view name) = 0;  // +1 lookup
  virtual void forget(Ino ino, uint64_t nlookup) = 0;
  virtual Result<Attr> getattr(Ino ino) = 0;
  virtual Result<Attr> setattr(Ino ino, const SetAttr& request) = 0;
  virtual Result<Attr> mknod(Ino parent, std::string_view name, uint32_t mode, uint32_t rdev,
                             const Cred& cred) = 0;  // +1 lookup
  virtual Result<Attr> mkdir(Ino parent, std::string_view name, uint32_t mode,
                             const Cred& cred) = 0;  // +1 lookup
  virtual Result<Attr> symlink(Ino parent, std::string_view name, std::string_view target,
                               const Cred& cred) = 0;  // +1 lookup
  virtual Result<std::string> readlink(Ino ino) = 0;
  virtual Result<Attr> link(Ino ino, Ino new_parent, std::string_view new_name) = 0;  // +1
  virtual Status unlink(Ino parent, std::string_view name) = 0;
  virtual Status rmdir(Ino parent, std::string_view name) = 0;
  // flags: RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT (the old name
  // becomes a 0/0 character device owned by `cred`, in the same
  // transaction: overlayfs's whiteout).
  virtual Status rename(Ino parent, std::string_view name, Ino new_parent,
                        std::string_view new_name, unsigned flags, const Cred& cred = {}) = 0;

  // Open files. open() handles O_TRUNC; create() is mknod + open and fails
  // with kExists under O_EXCL.
  virtual Status open(Ino ino, int flags) = 0;
  virtual Result<Attr> create(Ino parent, std::string_view name, uint32_t mode, int flags,
                              const Cred& cred) = 0;  // +1 lookup, +1 open
  virtual void release(Ino ino) = 0;
  // Frees `ino` if it is unlinked and unreferenced (after a deferred free:
  // LayoutGate::free_deferred). A no-op otherwise.
  virtual void retry_free(Ino ino) = 0;

  // Data. read() calls `consume` with the segments while the inode is locked
  // shared, so the pointers stay valid for the duration of the call only.
  virtual Status read(Ino ino, uint64_t offset, size_t length,
                      const std::function<void(const std::vector<ReadSegment>&)>& consume) = 0;
  virtual Result<size_t> read_copy(Ino ino, uint64_t offset, void* buf, size_t length) = 0;
  // Returns bytes written. append = O_APPEND (offset ignored).
  virtual Result<size_t> write(Ino ino, uint64_t offset, const void* buf, size_t length,
                               bool append) = 0;
  // Writes the inode's times kept in DRAM (lazy timestamps). kReadOnly when
  // there are some and the mount can no longer take them (its verifier
  // found damage): they are lost.
  virtual Status fsync(Ino ino, bool datasync) = 0;
  // Stores through a writable direct mapping may have changed the file's
  // bytes (its lease ended, or the file is synced while one is held): mtime
  // and ctime become now, in DRAM like an overwrite's (docs/design.md,
  // "Timestamps"). What POSIX asks of msync for shared mappings. An
  // immutable file's times do not move.
  virtual Status note_direct_stores(Ino ino) = 0;
  // mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|KEEP_SIZE,
  // FALLOC_FL_ZERO_RANGE (optionally |KEEP_SIZE). Others: kNotSupported.
  virtual Status fallocate(Ino ino, int mode, uint64_t offset, uint64_t length) = 0;
  // Before `caller` writes, fallocates or copies into a regular file: drops
  // the set-id bits setid_bits_to_drop names, in a transaction of its own
  // (as the kernel's file_remove_privs precedes the write). A file without
  // set-id bits costs one shared lock. Returns whether the mode changed.
  virtual Result<bool> drop_setid(Ino ino, SetidCaller& caller) = 0;
  // whence: SEEK_DATA or SEEK_HOLE. kNoData (ENXIO semantics are the
  // caller's) when offset >= size: returns Code::kNxio.
  virtual Result<uint64_t> lseek(Ino ino, uint64_t offset, int whence) = 0;
  virtual Result<size_t> copy_file_range(Ino in, uint64_t in_offset, Ino out,
                                         uint64_t out_offset, size_t length) = 0;

  // Directories. Calls `emit` for each entry at or after `cookie` (0 = start,
  // "." and ".." included) until it returns false.
  virtual Status readdir(Ino ino, uint64_t cookie,
                         const std::function<bool(const DirEntry&)>& emit) = 0;

  // Extended attributes (full names with namespace prefix, "user.x").
  // flags: XATTR_CREATE, XATTR_REPLACE.
  // system.posix_acl_access and system.posix_acl_default hold POSIX ACLs
  // (meta/posix_acl.h): a value that is no valid ACL is kInvalid and not
  // stored; setting the access ACL sets the mode's permission bits, and an
  // ACL the mode says in full is kept as the mode alone. `caller` decides
  // whether that clears S_ISGID (null: a caller that keeps it).
  virtual Status setxattr(Ino ino, std::string_view name, const void* value, size_t size,
                          int flags, SetidCaller* caller = nullptr) = 0;
  virtual Result<std::vector<uint8_t>> getxattr(Ino ino, std::string_view name) = 0;
  virtual Result<std::vector<std::string>> listxattr(Ino ino) = 0;
  virtual Status removexattr(Ino ino, std::string_view name) = 0;

  // Inode flags (chattr / lsattr). set_flags replaces the user flags and the
  // project id in one transaction. kNotSupported for a bit outside
  // format::kInodeUserFlags; kPermission when `caller` may not make the
  // change (FlagsCaller); kLayoutSealed when it would make a
  // leased file immutable or append-only: the caller breaks the file's
  // leases (a writable mapping may not outlive the flag) and retries.
  virtual Result<InodeAttrFlags> get_flags(Ino ino) = 0;
  virtual Status set_flags(Ino ino, const InodeAttrFlags& flags, FlagsCaller& caller) = 0;

  // --- Direct mappings ---------------------------------------------------
  // kNotFound / kStale for a bad inode.
  virtual Result<std::unique_ptr<LayoutLock>> lock_layout(Ino ino) = 0;
  // The region pieces of [offset, offset+length) of held.ino(), in file
  // order, tiling the range. Refusals (each its own code; `where` gets the
  // file offset of the offending piece):
  //   kNotSupported "not a regular file"
  //   kRange        "range extends past end of file"
  //   kNoData       "hole at offset N"             (unless kLayoutAllocate)
  //   kAgain        "unwritten extent at offset N" (unless kLayoutAllocate)
  //   kInvalid      "extent at offset N is not aligned to A" (unless
  //                 kLayoutRelocate): every piece must start on a region
  //                 offset multiple of A, and every piece but the last must
  //                 be a multiple of A long
  //   kPermission   "immutable file" / "append-only file": kLayoutWritable
  //                 on such a file; and for an immutable file, ALLOCATE or
  //                 RELOCATE that would change its block map (so a
  //                 read-only holder of an immutable file never sees its
  //                 layout change)
  //   kNxio         "relocation needs the file's other leases gone": with
  //                 kLayoutRelocate, when the range is misaligned and the
  //                 gate says the inode is sealed (relocation moves blocks
  //                 other holders may map; the caller breaks them first)
  // ALLOCATE and RELOCATE commit before returning; their failures (kNoSpace,
  // kIoError, kReadOnly) are errors, not refusals. kLayoutWritable on a
  // mount that takes no change (read-only, a media fault, damage found by
  // its verifier) is kReadOnly / kIoError too, as a write(2) would be.
  virtual Result<std::vector<LayoutPiece>> layout_extents(const LayoutLock& held, uint64_t offset,
                                                          uint64_t length, uint32_t flags,
                                                          uint64_t* where = nullptr) = 0;
  // EXTEND of a lease (docs/protocol.md "The native API"): grows
  // held.ino()'s size to new_size if it is smaller, without the layout gate:
  // a size that only grows frees and moves no block. The rest of the old
  // last block past the old size is zeroed first (as trim_beyond_eof would
  // at mount), then the size commits. kNotSupported (not a regular file),
  // kPermission (immutable or append-only), kTooBig, kReadOnly. Returns
  // the size before.
  virtual Result<uint64_t> grow_for_lease(const LayoutLock& held, uint64_t new_size) = 0;
  // Undoes grow_for_lease for an EXTEND that was then refused or failed:
  // the size goes back to old_size and the blocks from old_size's next
  // block boundary to the grown end are freed, without the layout gate (no
  // lease reaches past the old size rounded up to a block). No-op when the
  // file is not larger than old_size.
  virtual Status shrink_after_grow(const LayoutLock& held, uint64_t old_size) = 0;
  // Device alignment used at mkfs (bytes): what layout_extents checks.
  virtual uint64_t layout_alignment() const = 0;

  // Counts of work done since mount, for tests and benchmarks that check
  // what an operation costs rather than how long it takes.
  struct WorkCounters {
    uint64_t extent_blocks_encoded = 0;  // overflow extent blocks (re)written
    uint64_t lazy_time_commits = 0;      // transactions that only persisted times
    uint64_t unmount_inodes_visited = 0;  // inodes the unmount looked at (orphans only)
    uint64_t inodes_cached = 0;           // inodes in DRAM now
    uint64_t inodes_dropped = 0;          // dropped from DRAM by the cache's bound
    uint64_t inodes_trim_visited = 0;     // numbers the cache's trimmer took from its queue
  };
  virtual WorkCounters work_counters() const = 0;
  // Drops every cached inode that nothing holds, at once, down to `keep`
  // inodes if it can (what the cache's thread does past the bound); returns
  // how many it dropped. For tests and tools; called outside any operation.
  virtual uint64_t trim_inode_cache(uint64_t keep) = 0;
  // Extents of a file's block map (directories too), for layout inspection
  // and tests.
  virtual Result<uint64_t> extent_count(Ino ino) = 0;

  // Holders of direct mappings (persistent: the allocator's holder table).
  // pin: `holder` was granted `pieces` of `ino`; unpin: it let go of them.
  virtual Status pin_pieces(const Holder& holder, Ino ino,
                            const std::vector<LayoutPiece>& pieces) = 0;
  virtual void unpin_pieces(const Holder& holder, const std::vector<LayoutPiece>& pieces) = 0;
  // `holder` was revoked but may still reach `pieces`: from now on, when a
  // file frees any of these blocks they go to allocator quarantine against
  // `holder` (same transaction) instead of free space. DRAM only: at mount
  // the same rule is rebuilt from the pins of holders still alive.
  virtual void quarantine_on_free(const Holder& holder, Ino ino,
                                  const std::vector<LayoutPiece>& pieces) = 0;
  // `holder` is gone: frees its quarantine, drops its pins and its rules.
  virtual Status release_holder(const Holder& holder) = 0;
  // Holders with pins restored at mount (alive then): the daemon watches
  // them and calls release_holder when each exits.
  virtual std::vector<Holder> restored_holders() = 0;
  virtual std::vector<QuarantineEntry> quarantine_entries() = 0;

  // --- Inspection (sealfs-layout; docs/layout.md) ------------------------
  // A snapshot of a file's block map, holes and unwritten extents included,
  // taken under the inode's lock shared. kNotFound / kStale for a bad inode.
  virtual Result<FileLayoutReport> file_layout(Ino ino) = 0;
  // The free extents of the data area (quarantined blocks are not free),
  // sorted by start, and the device alignment in blocks.
  virtual std::vector<BlockExtent> free_extents() = 0;
  virtual uint64_t alignment_blocks() const = 0;
  // Inodes in use, in number order (a read-only walk for pictures).
  virtual std::vector<Ino> used_inodes() = 0;

  virtual StatFs statfs() = 0;
  virtual const Region& region() const = 0;
};

}  // namespace sealfs
