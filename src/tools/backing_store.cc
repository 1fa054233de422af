#include "tools/backing_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include <fmt/format.h>

#include "util/units.h"

namespace sealfs {

Result<BackingSpace> measure_backing_space(const std::string& target, uint64_t region_bytes) {
  BackingSpace space;
  space.region_bytes = region_bytes;
  std::filesystem::path dir = std::filesystem::path(target).parent_path();
  if (dir.empty()) dir = std::filesystem::path(".");
  // The file itself when it exists (its filesystem is the one that counts,
  // even if it is a mountpoint), else the directory it will be made in.
  std::filesystem::path measured(target);
  struct stat st;
  if (::stat(target.c_str(), &st) == 0) {
    space.allocated_bytes =
        std::min(static_cast<uint64_t>(st.st_blocks) * 512, region_bytes);
  } else if (errno == ENOENT) {
    measured = dir;
  } else {
    return Status::from_errno(errno, "stat " + target);
  }
  struct statvfs vfs;
  if (::statvfs(measured.c_str(), &vfs) != 0) {
    return Status::from_errno(errno, "statvfs " + measured.string());
  }
  space.free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  space.filesystem = dir.string();
  return space;
}

Status judge_backing_space(const std::string& target, const BackingSpace& space,
                           SparsePolicy policy, std::string* warning) {
  warning->clear();
  if (!space.sparse() || policy == SparsePolicy::kAllocate) return Status::ok();
  const std::string numbers = fmt::format(
      "{} is sparse: {} of its {} are allocated, and the filesystem holding it ({}) has {} "
      "free",
      target, format_size(space.allocated_bytes), format_size(space.region_bytes),
      space.filesystem, format_size(space.free_bytes));
  if (!space.fits() && policy == SparsePolicy::kRefuse) {
    return Status(Code::kNoSpace,
                  fmt::format("{}, {} short of the whole region. Once that filesystem is "
                              "full, every sealfs write fails with EIO and the mount turns "
                              "read-only. Refusing: use --allocate to reserve the space now, "
                              "--sparse-ok to format anyway, or a smaller --size",
                              numbers, format_size(space.missing_bytes() - space.free_bytes)));
  }
  *warning = fmt::format(
      "WARNING: {}{}. If that filesystem fills up, sealfs writes fail with EIO and the mount "
      "turns read-only until fsck.sealfs; --allocate reserves the space now",
      numbers,
      space.fits() ? "" : fmt::format(", {} short of the whole region (--sparse-ok)",
                                      format_size(space.missing_bytes() - space.free_bytes)));
  return Status::ok();
}

Status allocate_range(int fd, uint64_t offset, uint64_t length) {
  int rc;
  do {
    rc = ::fallocate(fd, 0, static_cast<off_t>(offset), static_cast<off_t>(length));
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return Status::ok();
  const int err = errno;
  const std::string what =
      fmt::format("allocating {} at offset {}", format_size(length), offset);
  if (err == EOPNOTSUPP) return Status(Code::kNotSupported, what + ": not supported here");
  return Status::from_errno(err, what);
}

Status reserve_format_blocks(int fd, const Geometry& g) {
  // The areas before the inode table are written whole (superblock, journal,
  // holder table); the inode table and bitmap are zero already (holes
  // punched) or zeroed only where they hold old, hence allocated, bytes.
  RETURN_IF_ERROR(allocate_range(fd, 0, block_offset(g.inode_start)));
  return allocate_range(fd, block_offset(g.backup_block()), format::kBlockSize);
}

}  // namespace sealfs
