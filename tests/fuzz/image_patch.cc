#include "image_patch.h"

#include <algorithm>
#include <cstring>

#include "meta/inode.h"
#include "sealfs/format.h"
#include "util/crc32c.h"

namespace sealfs::fuzz {
namespace {

uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t u32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Writes crc32c(object with its crc field zeroed) into the crc field.
void seal(std::byte* object, size_t length, size_t crc_offset) {
  const uint32_t crc = crc32c_with_hole(object, length, crc_offset);
  std::memcpy(object + crc_offset, &crc, sizeof(crc));
}

// Re-seals whatever object holds byte `offset` of `block`, by the block's
// role in the geometry or by the magic it starts with. Journal transactions
// are left alone: their crc is seeded by the header's salt and spans
// records, and a torn transaction is already what recovery is built for.
void reseal(std::byte* image, const Geometry& g, uint64_t block, size_t offset) {
  std::byte* p = image + block * format::kBlockSize;
  if (block == 0 || block == g.backup_block()) {
    if (offset < sizeof(format::DiskSuperblock)) {
      seal(p, sizeof(format::DiskSuperblock), offsetof(format::DiskSuperblock, crc));
    }
    return;
  }
  if (block == g.journal_start) {
    for (size_t slot : {size_t{0}, size_t{format::kJournalHeaderSlotOffset}}) {
      if (offset >= slot && offset < slot + sizeof(format::DiskJournalHeader)) {
        seal(p + slot, sizeof(format::DiskJournalHeader),
             offsetof(format::DiskJournalHeader, crc));
      }
    }
    return;
  }
  if (block >= g.inode_start && block < g.inode_start + g.inode_blocks) {
    auto* slot = p + offset / format::kInodeSize * format::kInodeSize;
    format::DiskInode disk{};
    std::memcpy(&disk, slot, sizeof(disk));
    seal_inode_crc(disk);
    std::memcpy(slot, &disk, sizeof(disk));
    return;
  }
  switch (u32(p)) {
    case format::kHolderMagic:
    case format::kExtentBlockMagic:
    case format::kDirBlockMagic:
    case format::kXattrBlockMagic:
      // Each of these block headers is {le32 magic; le32 crc; ...} over
      // the whole block.
      seal(p, format::kBlockSize, 4);
      return;
    default:
      return;
  }
}

}  // namespace

const BaseImage& mutate(const uint8_t* data, size_t size, std::vector<std::byte>& image) {
  const auto& bases = base_images();
  const BaseImage& base = bases[size == 0 ? 1 : data[0] % bases.size()];
  image.assign(base.bytes.begin(), base.bytes.end());
  size_t pos = 1;
  while (pos + 5 <= size) {
    const uint64_t block = base.blocks[u16(data + pos) % base.blocks.size()];
    const size_t offset = u16(data + pos + 2) % format::kBlockSize;
    const uint8_t control = data[pos + 4];
    pos += 5;
    const size_t want = (control & 0x1f) + 1u;
    const size_t length =
        std::min({want, size - pos, static_cast<size_t>(format::kBlockSize - offset)});
    std::byte* at = image.data() + block * format::kBlockSize + offset;
    for (size_t i = 0; i < length; ++i) {
      const auto b = static_cast<std::byte>(data[pos + i]);
      at[i] = (control & 0x20) ? (at[i] ^ b) : b;
    }
    pos += length;
    if (control & 0xc0) reseal(image.data(), base.geo, block, offset);
  }
  return base;
}

}  // namespace sealfs::fuzz
