// Region backed by libpmem2: a devdax character device, a file on a DAX
// filesystem, or an ordinary file.
//
// devdax facts honoured here: st_size is 0 (the size comes from
// pmem2_source_size), it cannot be truncated or mapped privately, and every
// mapping offset and length must be a multiple of pmem2_source_alignment
// (often 2 MiB).
//
// An ordinary file gives page granularity: persistence costs msync, and the
// open logs a warning. emulate_pmem makes a DRAM-backed file (tmpfs, memfd)
// persist with CPU cache-line flushes and a fence instead, so benchmarks pay
// what real pmem costs; it is logged loudly because it is NOT durable on a
// disk-backed file.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "media/region.h"
#include "media/region_owner.h"
#include "util/status.h"

namespace sealfs {

enum class RegionKind { kDevDax, kFsDax, kFile };
const char* region_kind_name(RegionKind kind);

struct RegionOptions {
  bool read_only = false;
  bool emulate_pmem = false;
  // Map only the first `length` bytes (0 = whole source, rounded down to the
  // alignment).
  uint64_t length = 0;
  // Claim the region (media/region_owner.h) before mapping it; the claim
  // lasts as long as the region object. Without it nothing is claimed (unit
  // tests, and tools that run under a caller's claim).
  std::optional<ClaimRequest> claim;
  // "region is not DAX" at warning level: the daemon's open, once per mount.
  // Tools (mkfs, fsck) and tests open at info level, where it is not shown
  // by default: a person formatting or checking a file hears it from the
  // mount, not from every tool on every run.
  bool warn_if_not_dax = false;
};

class RegionPmem2 final : public Region {
 public:
  // Errors: kNotFound (no such path), kAccess (permission), kInvalid (not a
  // regular file or devdax device, or empty), kIoError (libpmem2 failed; the
  // message carries pmem2_errormsg()).
  static Result<std::unique_ptr<RegionPmem2>> open(const std::string& path,
                                                   const RegionOptions& options);
  ~RegionPmem2() override;

  RegionKind kind() const { return kind_; }
  bool emulated() const { return emulated_; }
  int fd() const { return fd_; }  // the source descriptor (lease grants dup it)
  RegionClaim* claim() const { return claim_.get(); }  // nullptr if none was asked

  void flush(const void* addr, size_t len) override;
  void drain() override;
  void copy_flush(RegionWriteKey key, void* dst, const void* src, size_t len) override;
  void zero_flush(RegionWriteKey key, void* dst, size_t len) override;
  // A file's holes (SEEK_DATA / SEEK_HOLE) read as zero; a devdax device
  // has none.
  std::vector<ByteRange> data_ranges(uint64_t offset, uint64_t length) const override;

 private:
  RegionPmem2() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<RegionClaim> claim_;
  RegionKind kind_ = RegionKind::kFile;
  bool emulated_ = false;
  int fd_ = -1;
};

}  // namespace sealfs
