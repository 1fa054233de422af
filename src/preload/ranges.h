// The mappings the preload library manages: every mmap(MAP_SHARED) of a
// sealfs file made through it, whose first part (what exists of the file)
// may be a direct mapping (a libsealfs lease) and whose rest is the
// ordinary mapping the kernel made.
//
// Locking: one mutex guards the table. It is never held across a call that
// may wait for the sealfs daemon or for a FUSE request (mmap of a sealfs
// file, sealfs_map, sealfs_unmap, fsync), because the daemon may be waiting
// for this process to let a lease go, and that happens on libsealfs's
// callback thread, which needs the table. A range being replaced is marked
// `demoting`; whoever else needs it waits for that to finish.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <mutex>

namespace sealfs::preload {

// mmap(2) for a MAP_SHARED mapping of fd, which the caller has found to be
// a candidate (see interpose.cc): the ordinary mapping first, then its
// existing part replaced by a direct one when the daemon grants it.
void* map_shared(void* addr, size_t len, int prot, int flags, int fd, off_t offset);

// Before the program's munmap/mprotect/mmap(MAP_FIXED) of [addr, addr+len):
// ranges wholly inside are let go (lease released, pages unmapped when
// `unmap`), ranges partly inside become ordinary and are forgotten. Returns
// true when anything was tracked there.
bool release_overlapping(void* addr, size_t len, bool unmap);

// mremap(2) of a tracked range, done as a new mapping plus munmap so the
// new part can be direct too. Returns false (and leaves *result) when
// old_addr is not exactly a tracked range; the caller then does it itself.
bool remap_tracked(void* old_addr, size_t old_len, size_t new_len, int flags, void** result);

// Makes stores to the direct parts inside [addr, addr+len) durable; the
// parts that are not direct are returned by `ordinary` for the real msync.
// Returns 0 or -errno.
int persist_range(void* addr, size_t len, void (*ordinary)(void* addr, size_t len, void* arg),
                  void* arg);

// The file open at fd as the kernel has it cached (type, mode, device,
// inode and size; st_dev, st_ino, st_size and st_mode set): no request to
// the daemon. false when fd is not open.
bool cached_stat(int fd, struct stat* st);

// fsync/fdatasync of the file `st` (cached_stat of the descriptor):
// persists the writable direct ranges of that file (0, or the first
// persist's -errno) and, after the real call, makes read-only ranges of it
// direct again where a break or the file's growth left them ordinary.
bool any_tracked();
int persist_file(const struct stat& st);
void reseal_file(const struct stat& st);

// The one mutex of the library: it guards this table and the table of
// windows (windows.h), so that a copy through a window and a change of the
// program's mapping of the same file never overlap.
std::mutex& table_mutex();

// Some mapping the program has of the file (device, inode) shows part of
// [offset, offset + len) through the kernel's page cache (it is ordinary
// there, or being changed). A window must not write there: the cached page
// would not see it. table_mutex() held.
bool ordinary_part_overlaps_locked(dev_t dev, ino_t ino, uint64_t offset, uint64_t len);

// Some writable mapping the program has of the file may hold stores in the
// kernel's page cache (a part of it is ordinary, or being changed): only
// the real fsync/fdatasync writes those back. table_mutex() held.
bool writable_ordinary_part_locked(dev_t dev, ino_t ino);

// SEALFS_PRELOAD_ALLOCATE is not "0": writable leases ask the daemon to
// allocate and zero holes and unwritten extents first (docs/preload.md
// "Holes"). Shared with windows.cc.
bool allocate_holes();

// The libsealfs break handler: the range goes back to the ordinary mapping
// in place before the lease is released.
void install_break_handler();

// fork(): the child gets ordinary mappings where the parent has direct ones
// (those are MADV_DONTFORK).
void install_fork_handlers();

// The thread is inside the library (or libsealfs): calls it makes to the
// interposed functions go straight to the kernel.
struct Inside {
  Inside();
  ~Inside();
  static bool now();
};

}  // namespace sealfs::preload
