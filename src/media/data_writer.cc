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
  if (region_.media_failed()) return;  // drain() reports it
  RegionWriteKey key;
  std::byte* dst = region_.writable(key) + region_offset;
  Status s = region_.guarded("file data write",
                             [&] { region_.copy_flush(key, dst, src, len); });
  (void)s;  // the region is now failed; drain() reports it
}

void DataWriter::zero(uint64_t region_offset, size_t len) {
  check(region_offset, len);
  if (region_.media_failed()) return;
  RegionWriteKey key;
  std::byte* dst = region_.writable(key) + region_offset;
  Status s = region_.guarded("file data zeroing", [&] { region_.zero_flush(key, dst, len); });
  (void)s;
}

Status DataWriter::drain() {
  region_.drain();
  if (region_.media_failed()) return region_.failed_status("file data", Code::kIoError);
  return Status::ok();
}

std::byte* DataWriter::data_pointer(uint64_t region_offset, size_t len) {
  check(region_offset, len);
  return region_.writable(RegionWriteKey()) + region_offset;
}

}  // namespace sealfs
