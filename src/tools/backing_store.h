// Backing store checks for mkfs: can the filesystem that holds a region file
// give the region every block it will ever need?
//
// A region file is usually sparse (mkfs --size only sets its length). Its
// blocks are allocated when the daemon first stores to them; when the
// backing filesystem has no block left, the store faults with SIGBUS (the
// daemon turns that into EIO and a read-only filesystem: media_fault.h).
// mkfs therefore refuses a sparse region that the backing filesystem could
// not hold today, unless told to allocate it now or to go ahead anyway.
#pragma once

#include <cstdint>
#include <string>

#include "media/superblock.h"
#include "util/status.h"

namespace sealfs {

enum class SparsePolicy {
  kRefuse,     // refuse a sparse region that does not fit (the default)
  kAllocate,   // --allocate: allocate every block of the region first
  kAllowSparse // --sparse-ok: format anyway, with a warning
};

struct BackingSpace {
  std::string filesystem;    // the directory whose filesystem was measured
  uint64_t region_bytes = 0;
  uint64_t allocated_bytes = 0;  // st_blocks * 512, at most region_bytes
  uint64_t free_bytes = 0;       // f_bavail * f_frsize (what an ordinary user gets)

  uint64_t missing_bytes() const { return region_bytes - allocated_bytes; }
  bool sparse() const { return missing_bytes() != 0; }
  bool fits() const { return missing_bytes() <= free_bytes; }
};

// Measures a regular file `target` (or, when it does not exist yet, the
// directory it would be created in) for a region of `region_bytes`.
Result<BackingSpace> measure_backing_space(const std::string& target, uint64_t region_bytes);

// The verdict for `space` under `policy`: ok, with *warning set when the
// user should hear about it (sparse region), or kNoSpace naming the numbers.
// kAllocate is judged by the allocation itself, so it is always ok here.
Status judge_backing_space(const std::string& target, const BackingSpace& space,
                           SparsePolicy policy, std::string* warning);

// Allocates (fallocate mode 0) every block of [offset, offset + length) of
// `fd`, growing the file if that range ends past its size. Contents do not
// change: allocated ranges that were holes still read as zeros. kNoSpace when
// the filesystem is full, kNotSupported when it cannot allocate.
Status allocate_range(int fd, uint64_t offset, uint64_t length);

// Allocates the blocks Formatter::format stores to in a file that may be
// sparse (superblock, journal, holder table, backup superblock), so that
// writing the format cannot fault for want of space half way.
Status reserve_format_blocks(int fd, const Geometry& g);

}  // namespace sealfs
