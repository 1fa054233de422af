// The control-socket wire protocol between libsealfs and the lease engine.
//
// Header-only on purpose: the client library includes it without linking the
// engine. Every message is a fixed-size little-endian record: a Header, then
// the body of its type, then (MapReply only) `extent_count` WireExtents.
// Descriptors travel as SCM_RIGHTS on the first byte of the message that
// carries them (MapRequest: the application's file; MapReply: the region).
// docs/protocol.md is the normative description; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace sealfs::wire {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the wire format is little-endian and so is every supported host");

inline constexpr uint32_t kMagic = 0x534c4653;  // "SFLS" read as little-endian bytes
inline constexpr uint16_t kVersion = 1;
// Bounds a malicious peer cannot push past.
inline constexpr uint32_t kMaxExtents = 4096;
inline constexpr uint32_t kMaxMessage = 64 * 1024 + 4096 * 24;
// An inspection page: the reply and kMaxRecords of the largest record.
inline constexpr uint32_t kMaxInspectMessage = 24 + 80 + 2048 * 88;

enum class Type : uint16_t {
  // client -> daemon
  kMap = 1,          // MapRequest + SCM_RIGHTS(file)      -> MapReply
  kRelease = 2,      // LeaseRef                           -> Reply
  kRevokeAck = 3,    // LeaseRef, after fencing            (no reply)
  kRegister = 4,     // LeaseRef                           -> Reply (ENXIO while breaking)
  // Inspection (sealfs-layout, docs/layout.md); any peer may ask.
  kExtents = 5,      // InspectRequest + SCM_RIGHTS(file)  -> InspectReply + ExtentRecords
  kLeaseTable = 6,   // InspectRequest                     -> InspectReply + LeaseRecords
  kSuper = 7,        // InspectRequest                     -> InspectReply + SuperRecord
  kFreeSpace = 8,    // InspectRequest                     -> InspectReply + SpaceRecords
  // The native API (docs/protocol.md "The native API").
  kExtend = 9,       // ExtendRequest + SCM_RIGHTS(file)   -> MapReply of the added range
  kStores = 10,      // LeaseRef of a writable lease: stores were made (no reply)
  // daemon -> client
  kReply = 16,       // Reply
  kMapReply = 17,    // MapReply + extents (+ SCM_RIGHTS(region) for mappings)
  kBreak = 18,       // BreakNotice, request_id 0
  kRevoke = 19,      // LeaseRef, request_id 0
  kError = 20,       // Reply; the daemon closes the connection after it
  kInspectReply = 21,  // InspectReply + records of the request's kind
};

struct Header {
  uint32_t magic;
  uint16_t version;
  uint16_t type;
  uint32_t length;      // of the whole message, header included
  uint32_t reserved;    // must be zero
  uint64_t request_id;  // echoed in the answer; 0 for unsolicited messages
};
static_assert(sizeof(Header) == 24);

// MapRequest.flags
inline constexpr uint32_t kMapAllocate = 1u << 0;   // allocate and zero holes first
inline constexpr uint32_t kMapRelocate = 1u << 1;   // move data into aligned extents first
inline constexpr uint32_t kMapWaitBreak = 1u << 2;  // during a break: wait instead of ENXIO
inline constexpr uint32_t kMapLayoutOnly = 1u << 3; // layout lease: extents, no region fd
// The client wrote the file's cached pages back (fdatasync) just before
// asking. A daemon mounted with writeback_cache refuses a request without it
// (kFlushFirst): pages the kernel still holds dirty are not in the region.
inline constexpr uint32_t kMapFlushed = 1u << 4;
// Exclusive: granted only while no other process has the file open through
// the mount; broken when one opens it (docs/protocol.md "Exclusive leases").
inline constexpr uint32_t kMapExclusive = 1u << 5;
inline constexpr uint32_t kMapKnownFlags = 0x3f;

// MapRequest.prot (PROT_* values, fixed here so the daemon need not trust
// the client's headers)
inline constexpr uint32_t kProtRead = 1;
inline constexpr uint32_t kProtWrite = 2;

// Revoke policies (MapRequest.policy; 0 = the mount's default)
inline constexpr uint32_t kPolicyDefault = 0;
inline constexpr uint32_t kPolicyFence = 1;
inline constexpr uint32_t kPolicyKill = 2;
inline constexpr uint32_t kPolicyQuarantine = 3;

struct MapRequest {
  uint64_t offset;         // file offset, page aligned
  uint64_t length;         // bytes, > 0
  uint32_t prot;           // kProtRead | kProtWrite
  uint32_t flags;          // kMap*
  uint64_t break_time_ns;  // 0 = mount default; capped by the daemon
  uint32_t policy;         // kPolicy*
  uint32_t reserved;       // must be zero
  uint64_t seen_generation;  // informational: the generation the client held
};
static_assert(sizeof(MapRequest) == 48);

struct LeaseRef {
  uint64_t lease_id;
};
static_assert(sizeof(LeaseRef) == 8);

// EXTEND: grow a writable lease (and the file, if it ends before) to
// new_length bytes from the lease's offset, without a break.
struct ExtendRequest {
  uint64_t lease_id;
  uint64_t new_length;  // page aligned, > the lease's length
  uint32_t flags;       // kMapFlushed only
  uint32_t reserved;    // must be zero
};
static_assert(sizeof(ExtendRequest) == 24);

struct Reply {
  int32_t error;    // 0 or a positive errno
  uint32_t detail;  // Refusal code for map errors, else 0
};
static_assert(sizeof(Reply) == 8);

// Region kinds (MapReply.region_flags)
inline constexpr uint32_t kRegionFsdax = 1u << 0;   // map with MAP_SYNC
inline constexpr uint32_t kRegionDevdax = 1u << 1;
// Of the mount, not the region: the kernel keeps no written data back for
// the daemon (no writeback cache), so every write(2) that returned is on
// the media (sealfs.h, SEALFS_MOUNT_WRITE_THROUGH).
inline constexpr uint32_t kMountWriteThrough = 1u << 2;

// Store granularity (MapReply.granularity), as libpmem2 names them.
inline constexpr uint32_t kGranularityByte = 0;
inline constexpr uint32_t kGranularityCacheLine = 1;
inline constexpr uint32_t kGranularityPage = 2;

struct MapReply {
  int32_t error;          // 0 or positive errno; then nothing else is valid but detail
  uint32_t detail;        // Refusal
  uint64_t lease_id;
  uint64_t generation;
  uint64_t alignment;     // bytes; every extent is aligned to it
  uint32_t granularity;   // kGranularity*
  uint32_t region_flags;  // kRegion* and kMountWriteThrough
  uint64_t offset;        // granted file range (the request's, page rounded)
  uint64_t length;
  uint64_t break_time_ns;  // the break time this lease will get
  uint32_t extent_count;   // WireExtents that follow
  uint32_t has_fd;         // 1 when SCM_RIGHTS carries the region descriptor
};
static_assert(sizeof(MapReply) == 72);

struct WireExtent {
  uint64_t file_offset;
  uint64_t region_offset;
  uint64_t length;
};
static_assert(sizeof(WireExtent) == 24);

struct BreakNotice {
  uint64_t lease_id;
  uint32_t reason;     // SEALFS_BREAK_* from sealfs.h
  uint32_t reserved;
  uint64_t deadline_ns;  // CLOCK_MONOTONIC
};
static_assert(sizeof(BreakNotice) == 24);

// --- Inspection --------------------------------------------------------
// Answers come in pages of at most kMaxRecords records: a request names the
// first record it wants (`cursor`), the reply says where the next page
// starts (`next_cursor`, 0 when there is no more). Each page is a snapshot
// of its own; pages of a changing table need not agree with each other.
inline constexpr uint32_t kMaxRecords = 2048;

struct InspectRequest {
  uint64_t cursor;    // 0 for the first page
  uint64_t reserved;  // must be zero
};
static_assert(sizeof(InspectRequest) == 16);

struct InspectReply {
  int32_t error;         // 0 or a positive errno; then no records follow
  uint32_t count;        // records that follow
  uint64_t next_cursor;  // 0: this was the last page
  uint64_t now_ns;       // CLOCK_MONOTONIC, for break deadlines
  uint64_t block_size;
  uint64_t alignment;    // device alignment, bytes
  // kExtents: the file's inode, mode and size, and its chattr flags
  // (sealfs/format.h kInodeUserFlags bits, with kInodeInlineData when its
  // bytes live in the inode slot and it has no extents, a) and project id (b);
  // kLeaseTable: leases of other users not shown to this peer (a, b unused);
  // kFreeSpace: data area start and length in bytes (a, b).
  uint64_t ino;
  uint64_t size;
  uint32_t mode;
  uint32_t hidden;
  uint64_t a, b;
};
static_assert(sizeof(InspectReply) == 80);

// ExtentRecord.flags
inline constexpr uint32_t kExtentUnwritten = 1u << 0;
inline constexpr uint32_t kExtentLeased = 1u << 1;       // in a lease that is not revoked
inline constexpr uint32_t kExtentQuarantined = 1u << 2;  // a revoked holder may still reach it

struct ExtentRecord {
  uint64_t file_offset;
  uint64_t region_offset;
  uint64_t length;
  uint32_t flags;
  uint32_t reserved;
};
static_assert(sizeof(ExtentRecord) == 32);

// LeaseRecord.state: lease_core.h's LeaseState in this order.
inline constexpr uint32_t kLeaseActive = 0, kLeaseBreaking = 1, kLeaseRevoking = 2,
                          kLeaseRevoked = 3, kLeaseOrphaned = 4;
struct LeaseRecord {
  uint64_t lease_id;
  uint64_t ino;
  uint64_t offset;
  uint64_t length;
  uint64_t generation;
  uint64_t deadline_ns;  // CLOCK_MONOTONIC; 0 unless breaking or revoking
  uint64_t holder_start_time;
  uint32_t holder_pid;
  uint32_t holder_uid;
  uint32_t prot;         // kProt*
  uint32_t layout_only;  // 1: a layout lease (extents, no mapping)
  uint32_t state;        // kLease*
  uint32_t reason;       // SEALFS_BREAK_* while breaking, else 0
  uint32_t policy;       // kPolicy*
  uint32_t flags;        // kLeaseRecord* (zero from daemons before exclusive leases)
};
static_assert(sizeof(LeaseRecord) == 88);
inline constexpr uint32_t kLeaseRecordExclusive = 1u << 0;  // granted with kMapExclusive

// The two superblock copies as they are on media, for the tool to decode
// with the same verifier as every other reader.
struct SuperRecord {
  uint64_t region_size;    // bytes the daemon maps
  uint64_t backup_offset;  // region offset of the backup copy
  uint8_t primary[512];
  uint8_t backup[512];
};
static_assert(sizeof(SuperRecord) == 1040);

// SpaceRecord.kind
inline constexpr uint32_t kSpaceFree = 0;
inline constexpr uint32_t kSpaceQuarantined = 1;
struct SpaceRecord {
  uint64_t region_offset;
  uint64_t length;
  uint64_t ino;               // quarantined: the file the blocks left
  uint64_t holder_start_time;
  uint32_t holder_pid;        // quarantined: who may still reach them
  uint32_t kind;
};
static_assert(sizeof(SpaceRecord) == 40);

// Bytes of each record that follows an InspectReply answering `request`.
inline size_t record_size(Type request) {
  switch (request) {
    case Type::kExtents: return sizeof(ExtentRecord);
    case Type::kLeaseTable: return sizeof(LeaseRecord);
    case Type::kSuper: return sizeof(SuperRecord);
    case Type::kFreeSpace: return sizeof(SpaceRecord);
    default: return 0;
  }
}

// Why a range cannot be leased (Reply.detail / MapReply.detail).
enum class Refusal : uint32_t {
  kNone = 0,
  kHole = 1,         // ENODATA
  kUnwritten = 2,    // ENODATA
  kPastEof = 3,      // ERANGE
  kMisaligned = 4,   // EINVAL
  kNotRegular = 5,   // ENODEV
  kNotDax = 6,       // EOPNOTSUPP
  kBreaking = 7,     // ENXIO
  kUntrusted = 8,    // EACCES
  kOpenMode = 9,     // EACCES
  kWrongMount = 10,  // EXDEV
  kBadRequest = 11,  // EINVAL / EPROTO
  kNoSpace = 12,     // ENOSPC
  kNoLease = 13,     // ENOENT
  kDevdaxLength = 14,  // EINVAL: device dax maps whole alignment units
  kFlushFirst = 15,    // EAGAIN: fdatasync the file, then ask again with kMapFlushed
  kSealedFile = 16,    // EPERM: writable map of an immutable or append-only file, or
                       // ALLOCATE/RELOCATE that would change an immutable one
  kSharedFile = 17,    // EBUSY: exclusive, and another process has the file open
};

inline const char* refusal_text(uint32_t r) {
  switch (static_cast<Refusal>(r)) {
    case Refusal::kNone: return "";
    case Refusal::kHole: return "the range has a hole (use SEALFS_MAP_ALLOCATE)";
    case Refusal::kUnwritten: return "the range has unwritten extents (use SEALFS_MAP_ALLOCATE)";
    case Refusal::kPastEof: return "the range extends past end of file";
    case Refusal::kMisaligned: return "extents are not aligned to the device alignment (use SEALFS_MAP_RELOCATE)";
    case Refusal::kNotRegular: return "not a regular file";
    case Refusal::kNotDax: return "the region cannot be mapped directly";
    case Refusal::kBreaking: return "the file's lease is breaking";
    case Refusal::kUntrusted: return "peer is not trusted with the region (daemon uid, root or dax_group)";
    case Refusal::kOpenMode: return "requested protection exceeds the descriptor's open mode";
    case Refusal::kWrongMount: return "descriptor is not on this sealfs mount";
    case Refusal::kBadRequest: return "malformed request";
    case Refusal::kNoSpace: return "holder table full";
    case Refusal::kNoLease: return "no such lease";
    case Refusal::kDevdaxLength:
      return "on device dax the range's offset and length must be multiples of the device "
             "alignment";
    case Refusal::kFlushFirst:
      return "the mount caches writes (writeback_cache): write the file's cached pages back "
             "(fdatasync) and ask again";
    case Refusal::kSealedFile:
      return "the file is immutable or append-only (chattr): no writable mapping, and an "
             "immutable file's layout cannot change";
    case Refusal::kSharedFile:
      return "another process has the file open (or a thread of this one that has exited "
             "opened it): no exclusive mapping until that descriptor is closed";
  }
  return "unknown refusal";
}

// The exact body size of each fixed-size type; 0 for unknown types.
inline size_t body_size(Type t) {
  switch (t) {
    case Type::kMap: return sizeof(MapRequest);
    case Type::kExtend: return sizeof(ExtendRequest);
    case Type::kRelease:
    case Type::kRevokeAck:
    case Type::kRegister:
    case Type::kStores:
    case Type::kRevoke: return sizeof(LeaseRef);
    case Type::kReply:
    case Type::kError: return sizeof(Reply);
    case Type::kMapReply: return sizeof(MapReply);  // plus extents
    case Type::kBreak: return sizeof(BreakNotice);
    case Type::kExtents:
    case Type::kLeaseTable:
    case Type::kSuper:
    case Type::kFreeSpace: return sizeof(InspectRequest);
    case Type::kInspectReply: return sizeof(InspectReply);  // plus records
  }
  return 0;
}

inline Header make_header(Type t, uint32_t length, uint64_t request_id) {
  Header h{};
  h.magic = kMagic;
  h.version = kVersion;
  h.type = static_cast<uint16_t>(t);
  h.length = length;
  h.request_id = request_id;
  return h;
}

// Checks a header from an untrusted peer. Returns false for anything a
// well-behaved peer never sends; the receiver answers kError and closes.
inline bool header_valid(const Header& h, bool from_client) {
  if (h.magic != kMagic || h.version != kVersion || h.reserved != 0) return false;
  const Type t = static_cast<Type>(h.type);
  const size_t body = body_size(t);
  if (body == 0) return false;
  const bool client_type = h.type < 16;
  if (client_type != from_client) return false;
  if (t == Type::kMapReply) {
    if (h.length < sizeof(Header) + body || h.length > kMaxMessage) return false;
    return (h.length - sizeof(Header) - body) % sizeof(WireExtent) == 0;
  }
  if (t == Type::kInspectReply) {
    // The record size depends on the request; the reader checks the rest.
    return h.length >= sizeof(Header) + body && h.length <= kMaxInspectMessage;
  }
  return h.length == sizeof(Header) + body;
}

template <typename T>
inline T load(const void* p) {
  static_assert(std::is_trivially_copyable_v<T>);
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace sealfs::wire
