// DataWriter: the one way file data reaches the region.
//
// Holds write access limited to the data area. Callers write and flush data
// here, drain(), and only then commit the transaction that exposes the blocks
// (ordered data: no committed extent ever points at unwritten bytes).
//
// A media fault (SIGBUS on the mapping: backing store full, poison) during a
// copy stops that copy and marks the region failed; write() and zero() do not
// report it themselves, drain() does. So a caller that writes several pieces
// and drains once learns of the fault before it commits anything, and a
// region that failed on another thread also fails this caller's drain.
#pragma once

#include <cstddef>
#include <cstdint>

#include "media/region.h"

namespace sealfs {

class DataWriter {
 public:
  DataWriter(Region& region, uint64_t data_start_block, uint64_t data_blocks);

  // Copies into the data area at a byte offset of the region, with flush.
  void write(uint64_t region_offset, const void* src, size_t len);
  void zero(uint64_t region_offset, size_t len);
  // kIoError if the region has had a media fault (see above).
  [[nodiscard]] Status drain();
  // Writable pointer into the data area (e.g. for a read-modify-write).
  std::byte* data_pointer(uint64_t region_offset, size_t len);
  Region& region() { return region_; }

 private:
  void check(uint64_t region_offset, size_t len) const;
  Region& region_;
  uint64_t begin_;  // byte offsets
  uint64_t end_;
};

}  // namespace sealfs
