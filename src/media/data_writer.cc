#include "media/data_writer.h"

#include <cstdlib>

#include "sealfs/format.h"
#include "util/log.h"

namespace sealfs {

DataWriter::DataWriter(Region& region, uint64_t data_start_block, uint64_t data_blocks)
    : region_(region),
      begin_(data_start_block * format::kBlockSize),
      end_((data_start_block + data_blocks) * format::kBlockSize) {}

void DataWriter::check(uint64_t region_offset, size_t len) const {
  if (region_offset < begin_ || region_offset + len > end_ || region_offset + len < region_offset) {
    log().critical("data write outside the data area: offset {} length {}", region_offset, len);
    std::abort();
  }
}

void DataWriter::write(uint64_t region_offset, const void* src, size_t len) {
  check(region_offset, len);
  RegionWriteKey key;
  region_.copy_flush(key, region_.writable(key) + region_offset, src, len);
}

void DataWriter::zero(uint64_t region_offset, size_t len) {
  check(region_offset, len);
  RegionWriteKey key;
  region_.zero_flush(key, region_.writable(key) + region_offset, len);
}

std::byte* DataWriter::data_pointer(uint64_t region_offset, size_t len) {
  check(region_offset, len);
  return region_.writable(RegionWriteKey()) + region_offset;
}

}  // namespace sealfs
