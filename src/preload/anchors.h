// Descriptors the preload library keeps of the program's files, and the
// one rule for closing them: a process's POSIX record locks on a file
// (fcntl F_SETLK, what SQLite and LMDB lock with) all go when the process
// closes ANY descriptor of that file, so the library closes a descriptor
// of a sealfs file only
//   - just before the program itself closes one of the same file (a
//     descriptor the library saw it map the file through), which drops
//     those locks anyway, or
//   - when no mapping uses it any more and /proc/locks shows that the
//     process holds no record lock on the file. A lock another thread of
//     the program takes on the file in the microseconds between that look
//     and the close is dropped with it (docs/preload.md, "Locks").
//
// A mapping the library manages needs a descriptor of its file for as long
// as it lives (a break maps the file again at the same addresses; a sync
// asks the daemon for a new lease), and the program may close its own
// meanwhile. Those descriptors are anchors: one per file and access mode,
// shared by the file's mappings, counted, made at a high number
// (O_CLOEXEC). Anchors of a locked file that no mapping uses wait for the
// program's close of the file, or for its exit (exec closes them, and so
// drops the locks: docs/preload.md).
//
// Locking: its own mutex, a leaf: taken under table_mutex() (ranges.h) and
// never held across a close or a call that may wait for the daemon.
#pragma once

#include <sys/types.h>

#include <mutex>

namespace sealfs::preload {

// An anchor for the file open at program_fd (its device and inode as
// fstat gave them), with program_fd's access mode; one more user of it.
// program_fd may be an anchor itself. -1 when out of descriptors, or when
// program_fd no longer names that file.
int acquire_anchor(int program_fd, dev_t dev, ino_t ino);

// One user less of the anchor. The last user of an unlocked file's anchor
// leaves it to close_dropped_anchors(), which closes what the releases
// dropped: call it with no lock of the library held (a close of a FUSE
// file may wait for the daemon).
void release_anchor(int anchor);
void close_dropped_anchors();

// The anchor still names the file (the program did not close its number
// and open another file under it): check before mapping through it.
bool anchor_names(int anchor, dev_t dev, ino_t ino);

// interpose.cc's close(fd), before the real close: when fd is a
// descriptor the program mapped a file through, the anchors of that file
// that no mapping uses are closed now. Cheap for every other descriptor
// (one atomic load).
void before_program_close(int fd);

// The leaf mutex above; the fork handlers (ranges.cc) hold it across fork,
// and the child's calls anchors_in_child() (the child owns its copy of the
// tables; a vfork child, which shares them, leaves them alone).
std::mutex& anchor_mutex();
void anchors_in_child();

}  // namespace sealfs::preload
