// Descriptors the preload library keeps of the program's files, and the
// one rule for closing them: a process's POSIX record locks on a file
// (fcntl F_SETLK, lockf: what SQLite and LMDB lock with) all go when the
// process closes ANY descriptor of that file, so the library closes a
// descriptor of a sealfs file only
//   - just before the program itself closes a descriptor of the same file
//     (one the library saw it map or lock through), which drops those
//     locks anyway, or
//   - when no mapping uses it any more and no descriptor the program took
//     a record lock through (the library's fcntl and lockf note them) names
//     the file, with every lock call held back until that close is done
//     (the lock gate below): a lock the program takes is never dropped.
//
// A mapping the library manages needs a descriptor of its file for as long
// as it lives (a break maps the file again at the same addresses; a sync
// asks the daemon for a new lease), and the program may close its own
// meanwhile. Those descriptors are anchors: one per file and access mode,
// shared by the file's mappings, counted, made at a high number
// (O_CLOEXEC), each with a generation so that a number the program closed
// and the library reused is never taken for the old anchor. An anchor of
// a locked file that no mapping uses waits for the program's close of the
// file or for its exit; exec closes it (close-on-exec), which drops the
// locks (docs/preload.md, "Locks").
//
// The lock gate: a lock call announces itself (a counter) and marks its
// descriptor before it runs, and waits while a close of an anchor is under
// way; a close runs only when no lock call is under way and no marked
// descriptor names the anchor's file. Both sides use atomics only, so a
// lock call from a signal handler never waits on a mutex; one that
// interrupted the very thread closing an anchor does not wait for it.
//
// Locking: anchor_mutex() is a leaf, taken under table_mutex() (ranges.h)
// and never held across a close or a call that may wait for the daemon.
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <mutex>

namespace sealfs::preload {

struct AnchorRef {
  int fd = -1;
  uint64_t generation = 0;
};

// An anchor for the file open at program_fd (device and inode as fstat
// gave them), with program_fd's access mode; one more user of it.
// program_fd may be an anchor itself. {-1, 0} when out of descriptors, or
// when program_fd no longer names that file.
AnchorRef acquire_anchor(int program_fd, dev_t dev, ino_t ino);

// One user less. An anchor left without users is closed by
// close_dropped_anchors(), if the rule above allows it now: call that with
// no lock of the library held (a close of a FUSE file may wait for the
// daemon).
void release_anchor(const AnchorRef& anchor);
void close_dropped_anchors();

// The anchor's number still names the file (the program did not close it
// and open another file under it): check before mapping through it.
bool anchor_names(const AnchorRef& anchor, dev_t dev, ino_t ino);

// interpose.cc's close(fd), before the real close: when fd is a descriptor
// the program mapped or locked a file through, the unused anchors of that
// file are closed now. Cheap for every other descriptor (atomic loads).
void before_program_close(int fd);

// The library's fcntl (F_SETLK, F_SETLKW taking a lock) and lockf (F_LOCK,
// F_TLOCK) around the real call: the lock gate above.
void before_lock_call(int fd);
void after_lock_call();

// The leaf mutex above; the fork handlers (ranges.cc) hold it across fork,
// and the child calls anchors_in_child() (the child owns its copy of the
// tables; a vfork child, which shares the parent's memory, leaves them
// alone). anchors_init() names the owner at load.
std::mutex& anchor_mutex();
void anchors_in_child();
void anchors_init();

}  // namespace sealfs::preload
