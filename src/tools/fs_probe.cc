#include "tools/fs_probe.h"

#include <cstdint>
#include <cstring>

#include <fmt/format.h>

#include "media/superblock.h"
#include "sealfs/format.h"
#include "tools/uuid_text.h"

namespace sealfs {
namespace {

constexpr size_t kExtMagicOffset = 1080;  // 1024 (superblock) + 56 (s_magic)
constexpr uint16_t kExtMagic = 0xEF53;

std::optional<std::string> probe_sealfs(const std::byte* head, size_t length) {
  if (length < sizeof(format::DiskSuperblock)) return std::nullopt;
  format::DiskSuperblock disk;
  std::memcpy(&disk, head, sizeof(disk));
  if (disk.magic.get() != format::kSuperMagic) return std::nullopt;
  // The magic alone is enough to refuse: a damaged sealfs is still someone's
  // data. The size check is skipped here (the caller's region may be bigger
  // or smaller than the old format); only the verdict's wording uses it.
  Result<Superblock> sb = decode_superblock(disk, UINT64_MAX);
  if (!sb.is_ok()) return "sealfs (damaged superblock: " + sb.status().message() + ")";
  return fmt::format("sealfs (label '{}', uuid {})", sb->label, uuid_text(sb->uuid));
}

}  // namespace

std::optional<std::string> probe_filesystem(const std::byte* head, size_t length) {
  if (auto found = probe_sealfs(head, length)) return found;
  if (length >= kExtMagicOffset + 2) {
    uint16_t magic = static_cast<uint16_t>(std::to_integer<uint16_t>(head[kExtMagicOffset]) |
                                           std::to_integer<uint16_t>(head[kExtMagicOffset + 1])
                                               << 8);
    if (magic == kExtMagic) return std::string("ext2/3/4");
  }
  if (length >= 4 && std::memcmp(head, "XFSB", 4) == 0) return std::string("XFS");
  return std::nullopt;
}

}  // namespace sealfs
