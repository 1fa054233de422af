#include "media/region.h"

#include <fmt/format.h>

#include <algorithm>

#include "util/log.h"

namespace sealfs {

const char* granularity_name(Granularity g) {
  switch (g) {
    case Granularity::kByte: return "byte";
    case Granularity::kCacheLine: return "cache-line";
    case Granularity::kPage: return "page";
  }
  return "?";
}

Status Region::media_fault(const char* what, uintptr_t address) const {
  const uint64_t offset = address - reinterpret_cast<uintptr_t>(base_);
  uint64_t expected = kNoFault;
  if (media_fault_offset_.compare_exchange_strong(expected, offset)) {
    // Once: every later write is refused, so one fault is one log line.
    log().error(
        "{}: media error (SIGBUS) at region offset {} during {}: the filesystem is read-only "
        "from now on and needs fsck.sealfs (a sparse region file whose filesystem is full, a "
        "truncated region file, or poisoned persistent memory)",
        description_, offset, what);
    std::function<void()> observer;
    {
      MutexLock lock(observer_mu_);
      observer = fault_observer_;
    }
    if (observer) observer();  // without the leaf: it takes leaves of its own
  }
  return Status(Code::kIoError,
                fmt::format("{}: media error at region offset {}", what, offset));
}

std::vector<Region::ByteRange> Region::data_ranges(uint64_t offset, uint64_t length) const {
  if (offset >= size_) return {};
  return {ByteRange{offset, std::min(length, size_ - offset)}};
}

void Region::on_first_fault(std::function<void()> observer) const {
  MutexLock lock(observer_mu_);
  fault_observer_ = std::move(observer);
}

Status Region::failed_status(const char* what, Code code) const {
  return Status(code,
                fmt::format("{}: read-only after a media error at region offset {}; unmount "
                            "and run fsck.sealfs",
                            what, media_fault_offset()));
}

}  // namespace sealfs
