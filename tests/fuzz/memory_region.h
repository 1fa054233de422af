// A Region over bytes the caller owns: stores are durable when visible, as
// on eADR hardware, so flush and drain cost nothing. The image fuzz target
// uses it instead of RegionDram, whose crash bookkeeping (a snapshot of
// every flushed cache line, a second durable image, a trace) made one
// execution cost hundreds of milliseconds under ASan.
#pragma once

#include <cstring>
#include <vector>

#include "media/region.h"

namespace sealfs::fuzz {

class MemoryRegion final : public Region {
 public:
  // `bytes` must outlive the region and keep its size.
  explicit MemoryRegion(std::vector<std::byte>& bytes) {
    base_ = bytes.data();
    size_ = bytes.size();
    alignment_ = 4096;
    granularity_ = Granularity::kByte;
    description_ = "fuzz memory";
  }
  void flush(const void*, size_t) override {}
  void drain() override {}
  void copy_flush(RegionWriteKey, void* dst, const void* src, size_t len) override {
    std::memmove(dst, src, len);
  }
  void zero_flush(RegionWriteKey, void* dst, size_t len) override { std::memset(dst, 0, len); }
};

}  // namespace sealfs::fuzz
