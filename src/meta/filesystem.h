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

#include "media/region.h"
#include "util/status.h"

namespace sealfs {

using Ino = uint64_t;

// Who is asking (from fuse_req_ctx): new inodes take their owner from here.
struct Cred {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t umask = 022;
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
  struct timespec atime {}, mtime{}, ctime{}, btime{};
  struct stat to_stat() const;
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
  };
  uint32_t valid = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  struct timespec atime {}, mtime{}, ctime{};
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

// A piece of a read: a pointer into the mapped region, or nullptr for zeros.
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
  // Returning true makes the operation fail with Code::kBusy and message
  // "layout sealed" without side effects; the caller breaks the leases and
  // retries.
  virtual bool sealed(Ino ino) = 0;
};

struct MountOptions {
  bool read_only = false;
  LayoutGate* gate = nullptr;
  // Blocks quarantined against holders that are still alive stay out of
  // the free space; decides liveness of a (pid, start time).
  std::function<bool(uint32_t pid, uint64_t start_time)> holder_alive;
};

struct FsckLikeStats {
  uint64_t orphans_freed = 0;
  uint64_t transactions_replayed = 0;
  bool torn_tail = false;
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
  // flags: RENAME_NOREPLACE, RENAME_EXCHANGE.
  virtual Status rename(Ino parent, std::string_view name, Ino new_parent,
                        std::string_view new_name, unsigned flags) = 0;

  // Open files. open() handles O_TRUNC; create() is mknod + open and fails
  // with kExists under O_EXCL.
  virtual Status open(Ino ino, int flags) = 0;
  virtual Result<Attr> create(Ino parent, std::string_view name, uint32_t mode, int flags,
                              const Cred& cred) = 0;  // +1 lookup, +1 open
  virtual void release(Ino ino) = 0;

  // Data. read() calls `consume` with the segments while the inode is locked
  // shared, so the pointers stay valid for the duration of the call only.
  virtual Status read(Ino ino, uint64_t offset, size_t length,
                      const std::function<void(const std::vector<ReadSegment>&)>& consume) = 0;
  virtual Result<size_t> read_copy(Ino ino, uint64_t offset, void* buf, size_t length) = 0;
  // Returns bytes written. append = O_APPEND (offset ignored).
  virtual Result<size_t> write(Ino ino, uint64_t offset, const void* buf, size_t length,
                               bool append) = 0;
  virtual Status fsync(Ino ino, bool datasync) = 0;
  // mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|KEEP_SIZE,
  // FALLOC_FL_ZERO_RANGE (optionally |KEEP_SIZE). Others: kNotSupported.
  virtual Status fallocate(Ino ino, int mode, uint64_t offset, uint64_t length) = 0;
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
  virtual Status setxattr(Ino ino, std::string_view name, const void* value, size_t size,
                          int flags) = 0;
  virtual Result<std::vector<uint8_t>> getxattr(Ino ino, std::string_view name) = 0;
  virtual Result<std::vector<std::string>> listxattr(Ino ino) = 0;
  virtual Status removexattr(Ino ino, std::string_view name) = 0;

  virtual StatFs statfs() = 0;
  virtual const Region& region() const = 0;
};

}  // namespace sealfs
