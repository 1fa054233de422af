// Descriptors the preload library keeps of the program's files, and the
// one rule for closing them: a process's POSIX record locks on a file
// (fcntl F_SETLK, what SQLite and LMDB lock with) all go when the process
// closes ANY descriptor of that file, so the library closes a descriptor
// of a sealfs file only just before the program itself closes one of the
// same file, which drops those locks anyway (docs/preload.md, "Locks").
//
// A mapping the library manages needs a descriptor of its file for as long
// as it lives (a break maps the file again at the same addresses; a sync
// asks the daemon for a new lease), and the program may close its own
// meanwhile. Those descriptors are anchors: one per file and access mode,
// shared by every mapping of the file, counted, and kept when the count
// falls to zero, until the program closes a descriptor of the file that
// the library saw it map (interpose.cc's close). A program that closes its
// descriptors some other way (dup2 over them, close_range, a libc-internal
// close) keeps at most one anchor per file and mode open until it exits.
//
// Locking: its own mutex, a leaf: taken under table_mutex() (ranges.h) and
// never held across another call of the library.
#pragma once

#include <sys/types.h>

#include <mutex>

namespace sealfs::preload {

// An anchor for the file open at program_fd (its device and inode as
// fstat gave them), with program_fd's access mode; one more user of it.
// program_fd may be an anchor itself. -1 when out of descriptors.
int acquire_anchor(int program_fd, dev_t dev, ino_t ino);

// One user less of the anchor (it stays open; see above).
void release_anchor(int anchor);

// interpose.cc's close(fd), before the real close: when fd is a
// descriptor the program mapped a file through, the anchors of that file
// that no mapping uses are closed now. Cheap for every other descriptor
// (one atomic load).
void before_program_close(int fd);

// The leaf mutex above; the fork handlers (ranges.cc) hold it across fork.
std::mutex& anchor_mutex();

}  // namespace sealfs::preload
