#include "fsck/image.h"

#include <algorithm>
#include <cstring>

#include "meta/inode.h"

namespace sealfs::fsck {

namespace {
const std::byte* zero_block() {
  static const std::vector<std::byte> zeros(format::kBlockSize);
  return zeros.data();
}
}  // namespace

const std::byte* Image::read_block(uint64_t block) const {
  auto it = overlay_.find(block);
  if (it != overlay_.end()) return it->second.data();
  if (block >= region_blocks()) return zero_block();
  return region_.data() + block * format::kBlockSize;
}

std::vector<Image::BlockRun> Image::nonzero_blocks(uint64_t first, uint64_t count) const {
  std::vector<BlockRun> runs;
  const uint64_t last = first + count;
  for (const Region::ByteRange& r :
       region_.data_ranges(first * format::kBlockSize, count * format::kBlockSize)) {
    uint64_t begin = r.offset / format::kBlockSize;
    uint64_t end = (r.offset + r.length + format::kBlockSize - 1) / format::kBlockSize;
    runs.push_back(BlockRun{std::max(begin, first), std::min(end, last)});
  }
  for (auto it = overlay_.lower_bound(first); it != overlay_.end() && it->first < last; ++it) {
    runs.push_back(BlockRun{it->first, it->first + 1});
  }
  std::sort(runs.begin(), runs.end(),
            [](const BlockRun& a, const BlockRun& b) { return a.begin < b.begin; });
  std::vector<BlockRun> merged;
  for (const BlockRun& r : runs) {
    if (r.begin >= r.end) continue;
    if (!merged.empty() && r.begin <= merged.back().end) {
      merged.back().end = std::max(merged.back().end, r.end);
    } else {
      merged.push_back(r);
    }
  }
  return merged;
}

std::byte* Image::edit_block(uint64_t block) {
  auto it = overlay_.find(block);
  if (it != overlay_.end()) return it->second.data();
  std::vector<std::byte> copy(format::kBlockSize);
  std::memcpy(copy.data(), read_block(block), format::kBlockSize);
  auto [pos, inserted] = overlay_.emplace(block, std::move(copy));
  (void)inserted;
  return pos->second.data();
}

format::DiskInode Image::read_inode(uint64_t ino) const {
  format::DiskInode disk{};
  if (ino == 0 || ino > geo_.inode_count) return disk;
  uint64_t offset = inode_offset(geo_, ino);
  const std::byte* b = read_block(offset / format::kBlockSize);
  std::memcpy(&disk, b + offset % format::kBlockSize, sizeof(disk));
  return disk;
}

void Image::write_inode(uint64_t ino, const format::DiskInode& disk) {
  if (ino == 0 || ino > geo_.inode_count) return;
  format::DiskInode sealed = disk;
  seal_inode_crc(sealed);
  uint64_t offset = inode_offset(geo_, ino);
  std::byte* b = edit_block(offset / format::kBlockSize);
  std::memcpy(b + offset % format::kBlockSize, &sealed, sizeof(sealed));
}

bool Image::bit(uint64_t region_block) const {
  if (!in_data_area(region_block)) return false;
  uint64_t i = region_block - geo_.data_start;
  const std::byte* b = read_block(geo_.bitmap_start + i / (8 * format::kBlockSize));
  uint64_t byte = (i / 8) % format::kBlockSize;
  return (std::to_integer<unsigned>(b[byte]) >> (i % 8)) & 1u;
}

void Image::set_bit(uint64_t region_block, bool used) {
  if (!in_data_area(region_block)) return;
  uint64_t i = region_block - geo_.data_start;
  std::byte* b = edit_block(geo_.bitmap_start + i / (8 * format::kBlockSize));
  uint64_t byte = (i / 8) % format::kBlockSize;
  auto mask = std::byte{static_cast<unsigned char>(1u << (i % 8))};
  b[byte] = used ? (b[byte] | mask) : (b[byte] & ~mask);
}

std::optional<uint64_t> Image::allocate_block() {
  for (uint64_t n = 0; n < geo_.data_blocks; ++n) {
    uint64_t i = (alloc_hint_ + n) % geo_.data_blocks;
    uint64_t block = geo_.data_start + i;
    if (!bit(block)) {
      set_bit(block, true);
      alloc_hint_ = i + 1;
      return block;
    }
  }
  return std::nullopt;
}

Transaction* Image::extra() {
  if (journal_ == nullptr) return nullptr;
  if (!extra_) extra_.emplace(journal_->begin());
  return &*extra_;
}

Status Image::commit() {
  if (journal_ == nullptr) {
    discard();
    return Status::ok();
  }
  const uint64_t record = format::kBlockSize + sizeof(format::DiskTxnRecord);
  const uint64_t budget = journal_->max_transaction_bytes() / 2;
  Transaction txn = extra_ ? std::move(*extra_) : journal_->begin();
  extra_.reset();
  for (auto& [block, bytes] : overlay_) {
    if (!txn.empty() && txn.log_bytes() + record > budget) {
      RETURN_IF_ERROR(journal_->commit(std::move(txn)));
      txn = journal_->begin();
    }
    txn.write(block * format::kBlockSize, bytes.data(), bytes.size());
  }
  if (!txn.empty()) RETURN_IF_ERROR(journal_->commit(std::move(txn)));
  overlay_.clear();
  return Status::ok();
}

}  // namespace sealfs::fsck
