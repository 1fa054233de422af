// Windows: the preload library's own writable direct mappings of whole
// files, through which the program's pread(2) and pwrite(2) inside a file's
// size become memory copies to and from the region instead of FUSE
// requests (docs/preload.md, "pread and pwrite"). LMDB's default mode and
// SQLite write their databases, and SQLite its WAL, with pwrite: their
// commits go through these.
//
// A window is made for a file after a few preads or pwrites inside its
// size (not at the first: a file written once, as SQLite's rollback
// journal, is not worth a lease), covers [0, the file's size then) and
// serves what lies inside that: read and write when it was made through a
// descriptor open for both, else read only. Everything else (a write that
// extends the file, O_APPEND, a descriptor not open for it, a file with a
// hole or that is not on sealfs, a range the program maps through the page
// cache) goes to the kernel as before. A break of the window's lease
// (another process's truncate, the program's own extending write) takes it
// away; a file whose windows keep breaking gets a new one after more and
// more calls.
//
// Locking: the library's one mutex (ranges.h, table_mutex) guards the
// windows too, and a copy to or from a window runs under it: a break takes
// a window away only between copies, and a change of the program's own
// mapping of the file (ranges.cc) never runs beside a copy into the same
// pages. The copy never waits for the daemon: it goes between the region
// and a per-thread bounce buffer, and the program's buffer (which may be a
// mapping through the mount, whose fault would wait for the daemon) is
// read or written outside the lock.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

namespace sealfs::preload {

// pwrite(2) / pread(2) of fd through a window when there is one that
// covers the range (or, for a write, one is made now). Returns false when
// the call is not for a window: the caller makes the real call. Otherwise
// *result is what the call returns (errno set when it is -1).
bool window_pwrite(int fd, const void* buf, size_t count, off_t offset, ssize_t* result);
bool window_pread(int fd, void* buf, size_t count, off_t offset, ssize_t* result);

// fdatasync(fd) has nothing to do in the kernel or the daemon, so the
// library answers it (docs/preload.md "Commits without a request"): the
// file has a writable window (windows exist only in mounts that keep no
// written data back, SEALFS_MOUNT_WRITE_THROUGH, and every pwrite through
// one was persisted before it returned), and the program has no writable
// mapping of it through the page cache. At most once a second per window it
// tells the daemon (sealfs_note_stores), which moves the file's times.
// `st` is the descriptor's cached_stat (ranges.h).
bool window_answers_fdatasync(int fd, const struct stat& st);

// The break handler: when lease_id is a window's, takes it out of the
// table, releases it and returns true.
bool release_window_for_break(uint64_t lease_id);

// The program maps the file through the kernel's page cache where the
// library does not manage it (a mapping it could not or would not make
// direct, or one it forgot after a partial munmap or an mprotect): a copy
// into a window would leave those pages old, so the file gets no more
// window copies in this process. The _locked one with table_mutex() held.
void note_page_cache_mapping(int fd);
void note_page_cache_mapping_locked(dev_t dev, ino_t ino);

// fork(): a child has no windows (their pages are MADV_DONTFORK); called
// by the child's fork handler with table_mutex() held.
void forget_windows_in_child();

}  // namespace sealfs::preload
