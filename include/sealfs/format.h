// sealfs on-media format: every structure that is stored in the region.
//
// Shared by the daemon, mkfs, fsck and the layout tool. Decoding into
// in-memory types and verification live in src/media; nothing else parses
// these bytes. docs/format.md is the prose description of this file.
//
// Conventions:
//  - little-endian, fixed-width fields wrapped in le16/le32/le64 so that a raw
//    load or store without decode/encode does not compile;
//  - no pointers, size_t, long or bitfields; explicit reserved words;
//  - every metadata object carries a crc32c (Castagnoli, seed ~0, final ~0)
//    computed over the object with its crc field set to zero;
//  - "durable by" says how a field reaches persistence: journaled (written
//    only through a journal transaction), mkfs (written once), or rebuilt
//    (never trusted, recomputed at mount).
#pragma once

#include <endian.h>

#include <cstddef>
#include <cstdint>

namespace sealfs::format {

template <typename T, T (*ToLe)(T), T (*FromLe)(T)>
class LittleEndian {
 public:
  LittleEndian() = default;
  explicit LittleEndian(T v) : raw_(ToLe(v)) {}
  T get() const { return FromLe(raw_); }
  void set(T v) { raw_ = ToLe(v); }
  bool operator==(const LittleEndian&) const = default;

 private:
  T raw_{};
};

namespace detail {
inline uint16_t to_le16(uint16_t v) { return htole16(v); }
inline uint16_t from_le16(uint16_t v) { return le16toh(v); }
inline uint32_t to_le32(uint32_t v) { return htole32(v); }
inline uint32_t from_le32(uint32_t v) { return le32toh(v); }
inline uint64_t to_le64(uint64_t v) { return htole64(v); }
inline uint64_t from_le64(uint64_t v) { return le64toh(v); }
}  // namespace detail

using le16 = LittleEndian<uint16_t, detail::to_le16, detail::from_le16>;
using le32 = LittleEndian<uint32_t, detail::to_le32, detail::from_le32>;
using le64 = LittleEndian<uint64_t, detail::to_le64, detail::from_le64>;
static_assert(sizeof(le16) == 2 && sizeof(le32) == 4 && sizeof(le64) == 8);

inline constexpr uint32_t kBlockSize = 4096;
inline constexpr uint32_t kBlockShift = 12;
inline constexpr uint32_t kFormatVersion = 1;

// ---------------------------------------------------------------------------
// Region layout, in 4 KiB blocks (all locations are absolute block numbers):
//
//   block 0                    superblock
//   journal_start ..           journal: header block, then the circular log
//   holder_start ..            holder table (quarantined extents and their
//                              holders' pid + start time)
//   inode_start ..             inode table, 16 inodes of 256 bytes per block
//   bitmap_start ..            block bitmap: bit i <=> block data_start + i
//   data_start ..              data area (file data, directory blocks,
//                              extent overflow blocks, xattr blocks);
//                              data_start is aligned to the device alignment
//   region_blocks - 1          backup superblock
// ---------------------------------------------------------------------------

inline constexpr uint64_t kSuperMagic = 0x3130534c41455331ull;  // "1SEALS01"
inline constexpr uint64_t kSuperblockBlock = 0;

// Feature words (ext4 semantics): an unknown incompat bit refuses the mount,
// an unknown ro_compat bit allows read-only mounts only, compat bits are
// informational.
inline constexpr uint32_t kFeatureCompatKnown = 0;
// Some inode is (or was) immutable or append-only (set with the first such
// chattr, never cleared): a reader that does not enforce those flags must
// not write, or it would change what they seal.
inline constexpr uint32_t kFeatureRoCompatSealFlags = 1u << 0;
inline constexpr uint32_t kFeatureRoCompatKnown = kFeatureRoCompatSealFlags;
// Every transaction's commit crc is seeded with the journal header's random
// salt, so bytes left in the log by an earlier lap (user data such as xattr
// values) cannot be forged into a transaction that replays.
inline constexpr uint32_t kFeatureIncompatJournalSalt = 1u << 0;
// Some inode keeps its xattrs in a chain of "SXT2" blocks (set with the
// first such chain, never cleared; docs/format.md §9): software that knows
// only the single "SXTR" block must not read the image.
inline constexpr uint32_t kFeatureIncompatXattrChain = 1u << 1;
// Regular files of at most kInlineDataMax bytes may keep their bytes in the
// inode slot (kInodeInlineData; docs/format.md §6). Set by mkfs on a new
// image, never set or cleared later: an image made without it keeps one
// block per non-empty file. Software that does not know the flag would read
// an inline file as a file with no extents, so it must not read the image.
inline constexpr uint32_t kFeatureIncompatInlineData = 1u << 2;
inline constexpr uint32_t kFeatureIncompatKnown =
    kFeatureIncompatJournalSalt | kFeatureIncompatXattrChain | kFeatureIncompatInlineData;

enum SuperState : uint32_t {
  kStateClean = 1,    // unmounted cleanly: journal empty, orphans processed
  kStateMounted = 2,  // in use, or the daemon died
  // Damage was found while mounted (a media error, corruption): read-only
  // mounts only, until fsck.sealfs -y has checked the region.
  kStateNeedsCheck = 3,
};

struct DiskSuperblock {
  le64 magic;                // mkfs
  le32 version;              // mkfs
  le32 crc;                  // crc32c of this struct (512 bytes), crc = 0
  le32 feature_compat;       // mkfs
  le32 feature_ro_compat;    // mkfs; kFeatureRoCompatSealFlags journaled
  le32 feature_incompat;     // mkfs (incl. kFeatureIncompatInlineData);
                             // kFeatureIncompatXattrChain journaled
  le32 block_size;           // mkfs, always kBlockSize
  uint8_t uuid[16];          // mkfs
  char label[64];            // mkfs (NUL padded, not necessarily terminated)
  le64 region_size;          // mkfs, bytes covered by the format
  le64 device_alignment;     // mkfs, bytes (pmem2_source_alignment or --align)
  le64 region_blocks;        // mkfs
  le64 journal_start;        // mkfs
  le64 journal_blocks;       // mkfs, includes the header block
  le64 holder_start;         // mkfs
  le64 holder_blocks;        // mkfs
  le64 inode_start;          // mkfs
  le64 inode_blocks;         // mkfs
  le64 inode_count;          // mkfs
  le64 bitmap_start;         // mkfs
  le64 bitmap_blocks;        // mkfs
  le64 data_start;           // mkfs
  le64 data_blocks;          // mkfs
  le64 root_ino;             // mkfs, always kRootIno
  le64 orphan_head;          // journaled: first inode on the orphan list
  le64 mount_count;          // journaled
  le32 state;                // journaled: SuperState
  le32 reserved0;
  le64 mkfs_time_ns;         // mkfs
  le64 last_mount_time_ns;   // journaled
  le64 last_check_time_ns;   // written by fsck through the journal
  // Who mounted the region last (kept after a clean unmount), so that fsck
  // and a refused mount can say who left it in use. Older images: zeros.
  le32 mount_pid;            // journaled
  le32 reserved1;
  char mount_host[64];       // journaled (NUL padded, not necessarily terminated)
  char mount_point[128];     // journaled (NUL padded; truncated if longer)
  le64 reserved[4];
};
static_assert(sizeof(DiskSuperblock) == 512);
static_assert(offsetof(DiskSuperblock, crc) == 12);
static_assert(offsetof(DiskSuperblock, uuid) == 32);
static_assert(offsetof(DiskSuperblock, label) == 48);
static_assert(offsetof(DiskSuperblock, region_size) == 112);
static_assert(offsetof(DiskSuperblock, data_blocks) == 216);
static_assert(offsetof(DiskSuperblock, orphan_head) == 232);
static_assert(offsetof(DiskSuperblock, state) == 248);
static_assert(offsetof(DiskSuperblock, mkfs_time_ns) == 256);
static_assert(offsetof(DiskSuperblock, mount_pid) == 280);
static_assert(offsetof(DiskSuperblock, mount_host) == 288);
static_assert(offsetof(DiskSuperblock, mount_point) == 352);

// ---------------------------------------------------------------------------
// Journal. The first block of the journal area holds two header slots (at
// byte 0 and byte 2048, so they never share a cache line); the valid slot with
// the higher `epoch` wins. The rest of the area is the circular log.
//
// A transaction in the log is: DiskTxnHeader, then `record_count` records
// (DiskTxnRecord followed by `length` payload bytes padded to 8), then a
// DiskTxnCommit. The commit's crc covers header through the last payload byte,
// seeded with the header's salt (crc32c_extend(crc32c(salt as le32), bytes));
// a salt of 0 (images without kFeatureIncompatJournalSalt) is plain crc32c.
// A transaction never straddles the end of the log: if it does not fit, a
// header with magic kTxnWrapMagic is written (when there is room for one) and
// the transaction starts at log offset 0. Fewer than sizeof(DiskTxnHeader)
// bytes left also means "wrap".
// ---------------------------------------------------------------------------

inline constexpr uint64_t kJournalHeaderMagic = 0x52444848534c4153ull;  // "SALSHHDR"
inline constexpr uint32_t kTxnMagic = 0x4e585453;        // "STXN"
inline constexpr uint32_t kTxnWrapMagic = 0x50525753;    // "SWRP"
inline constexpr uint32_t kTxnCommitMagic = 0x544d4353;  // "SCMT"
inline constexpr uint32_t kJournalHeaderSlotOffset = 2048;
// Every transaction after the tail was written in two steps: its body (with
// zeros where the commit record goes), a drain, then the commit record and a
// drain. A whole header and a commit record in place that name the expected
// transaction therefore mean its body was durable, so a body that fails its
// crc is damage, not a torn write (docs/format.md 4.3).
inline constexpr uint32_t kJournalFlagOrderedCommit = 1u << 0;

struct DiskJournalHeader {
  le64 magic;
  le32 crc;          // crc32c of this struct, crc = 0
  le32 salt;         // random at mkfs, never changes; seeds transaction crcs
  le64 epoch;        // incremented on every header write; higher valid wins
  le64 tail_offset;  // byte offset in the log of the oldest live transaction
  le64 tail_seq;     // sequence number expected at tail_offset
  le32 flags;        // kJournalFlag*; versions before the field wrote 0
  le32 reserved0;
  le64 reserved[2];
};
static_assert(sizeof(DiskJournalHeader) == 64);

struct DiskTxnHeader {
  le32 magic;         // kTxnMagic or kTxnWrapMagic
  le32 record_count;
  le64 seq;
  le64 length;        // bytes from this header through the commit, incl.
};
static_assert(sizeof(DiskTxnHeader) == 24);

struct DiskTxnRecord {
  le64 region_offset;  // byte offset in the region of the home location
  le32 length;         // payload bytes
  le32 reserved0;
};
static_assert(sizeof(DiskTxnRecord) == 16);

struct DiskTxnCommit {
  le32 magic;  // kTxnCommitMagic
  le32 crc;    // crc32c from the header through the last payload byte
  le64 seq;    // equals the header's seq
};
static_assert(sizeof(DiskTxnCommit) == 16);

// ---------------------------------------------------------------------------
// Holder table: extents quarantined against a direct-mapping holder that was
// revoked but may still reach them. Not a lease record: the only lease state
// on media (DESIGN.md 6.13). fsck treats entries whose holder is gone as free.
// ---------------------------------------------------------------------------

inline constexpr uint32_t kHolderMagic = 0x444c4853;  // "SHLD"

struct DiskHolderBlockHeader {
  le32 magic;
  le32 crc;        // crc32c of the whole block, crc = 0
  le32 count;      // entries in use in this block
  le32 reserved0;
};
static_assert(sizeof(DiskHolderBlockHeader) == 16);

// DiskHolderEntry.flags
inline constexpr uint32_t kHolderEntryPinned = 1;  // a granted extent, still owned by its file
inline constexpr uint32_t kHolderEntryFlagsKnown = kHolderEntryPinned;

struct DiskHolderEntry {
  le32 pid;
  le32 flags;         // 0: quarantined (owned by the table); kHolderEntryPinned
                      // (owned by the file `ino`; the holder could map it)
  le64 start_time;    // /proc/PID/stat field 22, to tell a reused pid apart
  le64 ino;           // the file the extent belonged to (for reports)
  le64 region_block;  // quarantined extent
  le64 block_count;
};
static_assert(sizeof(DiskHolderEntry) == 40);
inline constexpr uint32_t kHolderEntriesPerBlock =
    (kBlockSize - sizeof(DiskHolderBlockHeader)) / sizeof(DiskHolderEntry);

// ---------------------------------------------------------------------------
// Inodes and extents.
// ---------------------------------------------------------------------------

inline constexpr uint32_t kInodeSize = 256;
inline constexpr uint32_t kInodesPerBlock = kBlockSize / kInodeSize;
inline constexpr uint64_t kRootIno = 1;  // inode numbers start at 1; 0 = none
// The most inodes an image may have (inode_count): numbers fit 32 bits, which
// the daemon relies on to keep them in 4 bytes in DRAM (meta/inode.h).
inline constexpr uint64_t kMaxInodeCount = 0xffffffffu;

enum ExtentFlags : uint32_t {
  kExtentUnwritten = 1,  // allocated, reads as zeros
};
inline constexpr uint32_t kExtentFlagsKnown = kExtentUnwritten;

struct DiskExtent {
  le64 file_block;    // logical block in the file
  le64 region_block;  // absolute block in the region (inside the data area)
  le32 length;        // blocks, > 0
  le32 flags;         // ExtentFlags
};
static_assert(sizeof(DiskExtent) == 24);

inline constexpr uint32_t kInlineExtents = 6;
inline constexpr uint32_t kInlineSymlinkMax = kInlineExtents * sizeof(DiskExtent);
// A regular file with kInodeInlineData holds its `size` bytes in u.data.
inline constexpr uint32_t kInlineDataMax = kInlineExtents * sizeof(DiskExtent);

enum InodeFlags : uint32_t {
  kInodeOrphan = 1,          // on the orphan list
  // Attributes a user sets with chattr (FS_IOC_SETFLAGS / FSSETXATTR;
  // docs/daemon.md "Inode flags"), journaled with the rest of the inode.
  kInodeImmutable = 1 << 1,  // FS_IMMUTABLE_FL: no change of any kind
  kInodeAppend = 1 << 2,     // FS_APPEND_FL: writes only at end of file
  kInodeNodump = 1 << 3,     // FS_NODUMP_FL: stored for dump(8), no effect here
  kInodeNoatime = 1 << 4,    // FS_NOATIME_FL: reads leave atime alone
  // Regular files only (kFeatureIncompatInlineData): the file's bytes are
  // u.data[0, size), size <= kInlineDataMax, bytes after them zero; no
  // extents (extent_count = 0, extent_block = 0) and no data block counted
  // in `blocks`. Journaled with the rest of the slot, so the slot's crc
  // covers the data.
  kInodeInlineData = 1 << 5,
};
inline constexpr uint32_t kInodeUserFlags =
    kInodeImmutable | kInodeAppend | kInodeNodump | kInodeNoatime;
inline constexpr uint32_t kInodeFlagsKnown = kInodeOrphan | kInodeUserFlags | kInodeInlineData;

struct DiskInode {
  le32 crc;           // crc32c of the 256 bytes, crc = 0; all journaled
  le32 mode;          // S_IFMT | permissions; 0 = free inode
  le32 uid;
  le32 gid;
  le32 nlink;
  le32 flags;         // InodeFlags
  le32 generation;    // bumped on every reuse of the inode number
  le32 rdev;
  le64 size;          // bytes
  le64 blocks;        // data blocks owned, incl. overflow and xattr blocks
  le64 atime_ns;      // signed ns since the epoch
  le64 mtime_ns;
  le64 ctime_ns;
  le64 btime_ns;
  le64 extent_block;  // first extent overflow block, 0 = none
  le64 xattr_block;   // first xattr block (chain or legacy block), 0 = none
  le64 orphan_next;   // next inode on the orphan list, 0 = end
  le32 extent_count;  // total extents: inline first, then overflow blocks
  le32 project_id;    // FS_IOC_FSSETXATTR fsx_projid; 0 = none
  union {
    DiskExtent extents[kInlineExtents];     // regular files, directories,
                                            // long symlinks
    char symlink[kInlineSymlinkMax];        // symlinks of <= 144 bytes
    uint8_t data[kInlineDataMax];           // regular files with kInodeInlineData
  } u;
};
static_assert(sizeof(DiskInode) == kInodeSize);
static_assert(offsetof(DiskInode, size) == 32);
static_assert(offsetof(DiskInode, atime_ns) == 48);
static_assert(offsetof(DiskInode, extent_block) == 80);
static_assert(offsetof(DiskInode, orphan_next) == 96);
static_assert(offsetof(DiskInode, extent_count) == 104);
static_assert(offsetof(DiskInode, u) == 112);

inline constexpr uint32_t kExtentBlockMagic = 0x54584553;  // "SEXT"

struct DiskExtentBlockHeader {
  le32 magic;
  le32 crc;          // crc32c of the whole block, crc = 0
  le64 owner_ino;
  le64 next_block;   // next overflow block, 0 = end
  le32 count;        // extents used in this block
  le32 reserved0;
};
static_assert(sizeof(DiskExtentBlockHeader) == 32);
inline constexpr uint32_t kExtentsPerBlock =
    (kBlockSize - sizeof(DiskExtentBlockHeader)) / sizeof(DiskExtent);
static_assert(kExtentsPerBlock == 169);

// ---------------------------------------------------------------------------
// Directories: the directory's data blocks, each a header followed by entries
// that tile the rest of the block (ext2 style). A free entry has ino = 0. The
// readdir cookie of an entry is (directory block index << 12 | byte offset)
// + 3, stable while the entry exists; 1 and 2 are "." and "..".
// ---------------------------------------------------------------------------

inline constexpr uint32_t kDirBlockMagic = 0x52494453;  // "SDIR"
inline constexpr uint32_t kNameMax = 255;

struct DiskDirBlockHeader {
  le32 magic;
  le32 crc;         // crc32c of the whole block, crc = 0
  le64 owner_ino;
};
static_assert(sizeof(DiskDirBlockHeader) == 16);

struct DiskDirEntry {
  le64 ino;          // 0 = free space
  le16 rec_len;      // bytes to the next entry, multiple of 8
  uint8_t name_len;
  uint8_t type;      // DT_* value
  le32 reserved0;
  // char name[name_len] follows, not NUL terminated
};
static_assert(sizeof(DiskDirEntry) == 16);

inline constexpr uint32_t dir_entry_size(uint32_t name_len) {
  return (static_cast<uint32_t>(sizeof(DiskDirEntry)) + name_len + 7u) & ~7u;
}
static_assert(dir_entry_size(kNameMax) <= kBlockSize - sizeof(DiskDirBlockHeader));

// ---------------------------------------------------------------------------
// Extended attributes, legacy: one block per inode, entries packed after the
// header. Read, never written since kFeatureIncompatXattrChain.
// ---------------------------------------------------------------------------

inline constexpr uint32_t kXattrBlockMagic = 0x52545853;  // "SXTR"

struct DiskXattrBlockHeader {
  le32 magic;
  le32 crc;         // crc32c of the whole block, crc = 0
  le64 owner_ino;
  le32 count;
  le32 used;        // bytes used after the header
};
static_assert(sizeof(DiskXattrBlockHeader) == 24);

struct DiskXattrEntry {
  uint8_t name_len;  // full name incl. namespace prefix, no NUL
  uint8_t reserved0;
  le16 value_len;
  // char name[name_len], then uint8_t value[value_len]; entry padded to 4
};
static_assert(sizeof(DiskXattrEntry) == 4);

// ---------------------------------------------------------------------------
// Extended attributes, chained (kFeatureIncompatXattrChain): an inode's
// attributes are one byte stream of DiskXattrChainEntry records, cut into
// the payloads of a chain of blocks that xattr_block starts. Every block is
// metadata (journaled); all but the last are full.
// ---------------------------------------------------------------------------

inline constexpr uint32_t kXattrChainMagic = 0x32545853;  // "SXT2"

struct DiskXattrChainHeader {
  le32 magic;
  le32 crc;          // crc32c of the whole block, crc = 0
  le64 owner_ino;
  le64 next_block;   // next block of the chain, 0 = last
  le32 index;        // position in the chain, 0 = the block xattr_block names
  le32 used;         // stream bytes in this block's payload
};
static_assert(sizeof(DiskXattrChainHeader) == 32);

struct DiskXattrChainEntry {
  uint8_t name_len;  // full name incl. namespace prefix, no NUL, >= 1
  uint8_t reserved0;
  le16 reserved1;
  le32 value_len;    // <= kXattrValueMax
  // char name[name_len], then uint8_t value[value_len]; no padding: the
  // next entry follows at once, possibly in the next block
};
static_assert(sizeof(DiskXattrChainEntry) == 8);

inline constexpr uint32_t kXattrChainPayload = kBlockSize - sizeof(DiskXattrChainHeader);
// At most this many blocks per inode (~508 KiB of names and values): bounds
// the journal transaction that rewrites them.
inline constexpr uint32_t kXattrChainMaxBlocks = 128;
inline constexpr uint32_t kXattrValueMax = 65536;  // XATTR_SIZE_MAX

}  // namespace sealfs::format
