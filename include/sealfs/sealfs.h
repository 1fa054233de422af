/* libsealfs: direct mappings of sealfs files.
 *
 * A direct mapping puts a file's extents of the pmem region straight into
 * the caller's address space: loads and stores reach the media with no
 * kernel or daemon on the path. While it exists the file's block map is
 * sealed. Operations that would change it (truncate, fallocate, an
 * allocating write, unlink of the last name, unmount) BREAK the lease: the
 * library tells the application (callback, pollable descriptor, signal),
 * the application stops using the range and calls sealfs_unmap(). A holder
 * that does not let go by the deadline is revoked by the daemon's policy:
 *   fence      (default) the range is replaced so that every access raises
 *              SIGBUS, as the kernel's MAP_DIRECT did;
 *   kill       the holder is sent SIGKILL;
 *   quarantine the mapping stays; its blocks leave the file and are not
 *              reused while the holder lives.
 *
 * Trust: a direct mapping gives access to the region itself, so only the
 * daemon's uid, root and members of the mount's dax_group may have one;
 * others get -EACCES and keep the ordinary file API.
 *
 * fork(): mappings are marked MADV_DONTFORK, so a child does not inherit
 * them (the daemon could not know the child can still reach the blocks).
 * In the child, every inherited struct sealfs_map is dead: sealfs_unmap()
 * frees it and returns 0, and its address must not be used.
 *
 * Every function returns 0 or a negative errno; sealfs_last_error() gives a
 * per-thread explanation of the last failure.
 *
 * The control socket is found through the file's virtual xattr
 * "user.sealfs.control"; the environment variable SEALFS_CONTROL_SOCKET
 * overrides it (tests, or a daemon that cannot publish the xattr).
 */
#ifndef SEALFS_SEALFS_H
#define SEALFS_SEALFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sealfs_map;
struct sealfs_reg;

/* Break reasons. */
enum {
  SEALFS_BREAK_TRUNCATE = 1,
  SEALFS_BREAK_FALLOCATE = 2,
  SEALFS_BREAK_WRITE = 3,    /* allocating or extending write(2) */
  SEALFS_BREAK_UNLINK = 4,
  SEALFS_BREAK_RENAME = 5,   /* rename over the file */
  SEALFS_BREAK_UNMOUNT = 6,
  SEALFS_BREAK_RELOCATE = 7, /* another client asked to relocate the range */
  SEALFS_BREAK_DAEMON_GONE = 8, /* local: the control connection was lost; already fenced */
  SEALFS_BREAK_OTHER = 9,
  SEALFS_BREAK_SHARED = 10,  /* another process opened the file (SEALFS_MAP_EXCLUSIVE) */
};

struct sealfs_break_event {
  struct sealfs_map *map; /* NULL for a layout lease */
  uint64_t lease_id;
  int reason;             /* SEALFS_BREAK_* */
  uint64_t deadline_ns;   /* CLOCK_MONOTONIC; release before it */
};

/* sealfs_map() flags */
#define SEALFS_MAP_ALLOCATE (1u << 0)   /* allocate and zero holes/unwritten extents first */
#define SEALFS_MAP_RELOCATE (1u << 1)   /* move data into aligned extents first */
#define SEALFS_MAP_WAIT_BREAK (1u << 2) /* during a break, wait for it to commit instead of -ENXIO */
/* Only while no other process has the file open through the mount: refused
 * (-EBUSY) while one has, broken (SEALFS_BREAK_SHARED) when one opens it,
 * and that open waits for the release. For a program whose file nobody else
 * should see through the page cache meanwhile (libsealfs-preload). */
#define SEALFS_MAP_EXCLUSIVE (1u << 3)
/* Revoke policy for this mapping (default: the mount's, normally fence). */
#define SEALFS_MAP_POLICY_FENCE (1u << 8)
#define SEALFS_MAP_POLICY_KILL (2u << 8)
#define SEALFS_MAP_POLICY_QUARANTINE (3u << 8)
#define SEALFS_MAP_POLICY_MASK (3u << 8)

/* Maps [offset, offset+length) of the file open at fd. prot is PROT_READ,
 * optionally | PROT_WRITE (not more than fd's open mode). offset must be a
 * multiple of the page size. ALLOCATE and RELOCATE change the file's blocks
 * and need fd open for writing. Errors: -EACCES (untrusted peer, prot
 * exceeds the open mode, or ALLOCATE/RELOCATE through a descriptor not
 * open for writing), -ENODATA (hole/unwritten extent), -ERANGE (past
 * EOF), -EINVAL (misaligned or bad arguments), -ENXIO (the file is breaking
 * its leases), -EBUSY (SEALFS_MAP_EXCLUSIVE: another process has it open), -EOPNOTSUPP (not a sealfs file / no control socket),
 * -ENODEV (not a regular file), -EXDEV (fd not on the daemon's mount). */
int sealfs_map(int fd, off_t offset, size_t length, int prot, unsigned flags,
               struct sealfs_map **out);
/* As sealfs_map with an explicit break time for this lease (ns; capped by
 * the daemon's hard cap; 0 = the mount's lease_break_time). */
int sealfs_map_ex(int fd, off_t offset, size_t length, int prot, unsigned flags,
                  uint64_t break_time_ns, struct sealfs_map **out);
/* As sealfs_map at the caller's page-aligned addr: once the daemon has
 * granted exactly [offset, offset+length), the pages of [addr,
 * addr+length) are replaced (MAP_FIXED) by the direct mapping. A refusal
 * leaves the range untouched; a failure after the grant leaves an ordinary
 * MAP_SHARED mapping of the file there. For interposers (libsealfs-preload)
 * that must keep the addresses a program chose. */
int sealfs_map_at(void *addr, int fd, off_t offset, size_t length, int prot, unsigned flags,
                  struct sealfs_map **out);
/* As sealfs_map, keeping `reserve` bytes of address space (from the
 * mapping's address; rounded up to pages; no memory behind it) so that
 * sealfs_extend() can grow the mapping in place up to that length. A
 * reserve smaller than the mapping is the mapping's length. */
int sealfs_map_reserve(int fd, off_t offset, size_t length, size_t reserve, int prot,
                       unsigned flags, struct sealfs_map **out);
/* Grows a live writable mapping to new_length bytes from its offset,
 * without a break of it or of any other lease of the file: the file grows
 * if it ends before (the old last block's bytes past the old size become
 * zeros), holes and unwritten extents of the added range are allocated and
 * zeroed, the lease covers the added range, and the added pages appear at
 * sealfs_map_addr(m) + the old length (the address does not change). fd is
 * the mapped file, open read-write. A sealfs_unmap() of the mapping
 * during the call (another thread's, a break callback's) waits for it to
 * end; a second sealfs_extend() of it fails with -EBUSY. Errors: -ENOMEM
 * (the addresses after the mapping are taken: map with
 * sealfs_map_reserve), -ENXIO (the lease is breaking, or was revoked during
 * the call: the added range is then not mapped), -EBUSY, -EACCES (a
 * read-only mapping or descriptor), -EINVAL (new_length not larger, or
 * another file, or the added range's blocks off the region's alignment),
 * -ENOSPC, as sealfs_map for the rest. On failure the mapping is as it
 * was, and a refusal by the daemon leaves the file's size as it was. */
int sealfs_extend(struct sealfs_map *m, int fd, size_t new_length);
void *sealfs_map_addr(const struct sealfs_map *m);
size_t sealfs_map_length(const struct sealfs_map *m);
off_t sealfs_map_offset(const struct sealfs_map *m);
uint64_t sealfs_map_generation(const struct sealfs_map *m);
uint64_t sealfs_map_lease_id(const struct sealfs_map *m);
/* Tells the daemon that stores were made through a writable mapping: it
 * sets the file's mtime and ctime to now, as an fdatasync through the mount
 * does while the mapping is held (and the mapping's end does anyway). No
 * answer is awaited. 0, or -EINVAL for a read-only or dead mapping. */
int sealfs_note_stores(const struct sealfs_map *m);
/* What the mount of the mapping's file promises, as SEALFS_MOUNT_* bits. */
unsigned sealfs_map_mount_flags(const struct sealfs_map *m);
/* The mount has no writeback cache: every write(2) to its files that has
 * returned is on the media, so an fdatasync has nothing to write back for
 * those, nor for stores made durable with sealfs_persist. (Pages stored
 * through an ordinary, page-cache mapping still wait for msync or fsync.) */
#define SEALFS_MOUNT_WRITE_THROUGH (1u << 0)
/* 1 once a break has been announced for this mapping, 2 once it has been
 * fenced (access raises SIGBUS), else 0. */
int sealfs_map_state(const struct sealfs_map *m);
/* Makes stores to [addr, addr+len) durable (inside the mapping). */
int sealfs_persist(const struct sealfs_map *m, const void *addr, size_t len);
/* A range for sealfs_persist_ranges. */
struct sealfs_range {
  const void *addr;
  size_t len;
};
/* Makes stores to every range durable with one fence (cache-line and
 * byte granularity; one msync per range on page granularity). No order
 * between the ranges. -EINVAL, with nothing flushed, if any range is
 * outside the mapping. */
int sealfs_persist_ranges(const struct sealfs_map *m, const struct sealfs_range *ranges,
                          size_t count);
/* Unmaps, releases the lease and frees m (also after a break or fence). */
int sealfs_unmap(struct sealfs_map *m);
/* As sealfs_unmap, but the range is not unmapped: it becomes, at the same
 * addresses, an ordinary MAP_SHARED mapping of the same range of the file
 * open at fd (the kernel's page cache through the mount), then the lease
 * is released. The program keeps running on the file, slower. On failure
 * the range is unmapped; the lease is released and m freed in every case. */
int sealfs_unmap_to_file(struct sealfs_map *m, int fd);

/* Break delivery. The descriptor is an eventfd owned by the library:
 * readable while break events are queued; sealfs_next_break() dequeues. */
int sealfs_break_fd(void);
int sealfs_next_break(struct sealfs_break_event *ev); /* -EAGAIN when none */
/* Called on the library's callback thread for every break, after the event
 * is queued for sealfs_next_break(); it may call sealfs_unmap(). NULL
 * removes it. */
int sealfs_set_break_handler(void (*cb)(struct sealfs_map *, const struct sealfs_break_event *, void *),
                             void *arg);
/* Like F_SETSIG: signal the process with signo (si_value = lease id) on
 * every break; 0 = no signal. */
int sealfs_set_break_signal(int signo);

/* Registration leases: for memory registered with a device (DMA). Each
 * registration gets its own callback, run once on the library thread when
 * the mapping's lease breaks. -ENXIO while the mapping is breaking,
 * -EINVAL without a live mapping. sealfs_unregister() waits for a callback
 * of that registration that is running on another thread, then frees it. */
int sealfs_register(struct sealfs_map *m,
                    void (*cb)(struct sealfs_map *, const struct sealfs_break_event *, void *),
                    void *arg, struct sealfs_reg **out);
int sealfs_unregister(struct sealfs_reg *reg);

/* Layout leases: a stable, breakable view of the file's physical extents
 * without a mapping (inspection tools, hypervisors). Breaks are delivered
 * like mapping breaks, with ev.map == NULL. */
struct sealfs_extent {
  uint64_t file_offset;
  uint64_t region_offset;
  uint64_t length;
};
struct sealfs_layout;
int sealfs_layout_lease(int fd, off_t offset, size_t length, unsigned flags,
                        struct sealfs_layout **out);
/* Returns the number of extents; copies at most max into out. */
size_t sealfs_layout_extents(const struct sealfs_layout *l, struct sealfs_extent *out, size_t max);
uint64_t sealfs_layout_generation(const struct sealfs_layout *l);
uint64_t sealfs_layout_lease_id(const struct sealfs_layout *l);
int sealfs_layout_release(struct sealfs_layout *l);

/* Text for the last failure on this thread ("" if none). */
const char *sealfs_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* SEALFS_SEALFS_H */
