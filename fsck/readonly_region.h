// ReadOnlyRegion: a read-only view of another region's mapping.
//
// fsck -n must not write a byte. Wrapping the target in this view makes that
// a property of the Region rather than of fsck's care: the journal refuses
// to replay or commit (kReadOnly) and no write key can reach the bytes.
#pragma once

#include <cstdlib>

#include "media/region.h"

namespace sealfs::fsck {

class ReadOnlyRegion final : public Region {
 public:
  explicit ReadOnlyRegion(const Region& source) : source_(source) {
    base_ = const_cast<std::byte*>(source.data());
    size_ = source.size();
    alignment_ = source.alignment();
    granularity_ = source.granularity();
    read_only_ = true;
    description_ = source.description() + " (read-only view)";
  }
  void flush(const void*, size_t) override {}
  void drain() override {}
  // Nothing holding a write key may write through a read-only view.
  void copy_flush(RegionWriteKey, void*, const void*, size_t) override { std::abort(); }
  void zero_flush(RegionWriteKey, void*, size_t) override { std::abort(); }
  std::vector<ByteRange> data_ranges(uint64_t offset, uint64_t length) const override {
    return source_.data_ranges(offset, length);
  }

 private:
  const Region& source_;
};

}  // namespace sealfs::fsck
