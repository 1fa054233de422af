// Which pages of a writable direct mapping were written since the last
// persist, so that a persist of a large range flushes those pages only
// (docs/protocol.md "Persisting only what was written").
//
// The kernel keeps the record: the mapping is registered with a
// userfaultfd in asynchronous write-protect mode (Linux 6.7+), where a
// store to a write-protected page is let through by the kernel itself (no
// handler thread) and leaves the page "written"; the PAGEMAP_SCAN ioctl of
// /proc/self/pagemap returns the written pages of a range and
// write-protects them again in the same page-table walk. Only the
// registered range is affected: nothing process-wide is reset.
//
// Where that is not available (an older kernel, a region the kernel cannot
// write-protect such as devdax or fsdax, SEALFS_TRACK_WRITES=0 in the
// environment) registration fails and the caller flushes whole ranges.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace sealfs::client {

// From this size on a mapping's pages are write-protected when they are
// registered; a smaller mapping's at its first persist, which writes all of
// them back.
constexpr size_t kProtectAtMapAtLeast = size_t{64} << 20;

// Registers the pages of [addr, addr + len) (page aligned) of a mapping of
// mapping_len bytes for write tracking, and write-protects them if
// mapping_len >= kProtectAtMapAtLeast: call it before anything is stored
// through them. True when they are tracked from now on.
bool track_writes(void* addr, size_t len, size_t mapping_len);

// Calls flush(start, end, arg) for each run of pages of [start, end) (page
// aligned) written since they were last scanned, after write-protecting
// them again. 0, or -errno when the range cannot be scanned (some of it is
// not tracked, or the kernel refuses): the caller then flushes the whole
// range, since the scan may have stopped halfway.
int for_each_written_run(uintptr_t start, uintptr_t end,
                         void (*flush)(uintptr_t start, uintptr_t end, void* arg), void* arg);

}  // namespace sealfs::client
