/* Process behaviour under sealfs-run (tests/integration/preload):
 *
 *   preload_behaviour fork FILE REGION_NAME
 *     Maps FILE (MAP_SHARED, read-only, whole) and checks it is on the
 *     region; forks; the child compares the inherited mapping with what
 *     read(2) gives and exits 0 when equal. Prints "child ok".
 *   preload_behaviour signal FILE
 *     Maps FILE (which starts libsealfs's threads), then blocks SIGUSR1 in
 *     this thread only, sends it to the process and sigwait()s for it. A
 *     thread of the library that did not block it would take the signal
 *     (default action: the process dies). Prints "signal ok".
 *   preload_behaviour window FILE
 *     FILE has at least 64 blocks of 4 KiB. Writes 64 blocks with pwrite
 *     (block (i * 37) % blocks gets window_byte(i, k) at byte k), reading
 *     each back with pread, then block 1 through a second, write-only
 *     descriptor (window_byte(64, k)). Prints "window ok".
 *   preload_behaviour window-break FILE
 *     Writes blocks 0..7 of FILE (which makes a window), prints "window
 *     made", waits until the file is shorter (the test truncates it), then
 *     writes every block of the old size with window_byte(100 + b, k) and
 *     reads them back. Prints "after break ok".
 *   preload_behaviour window-mapped FILE
 *     Maps FILE read-only, writes blocks 0..7 (a window), extends the file
 *     by one block with pwrite (a break: the mapping goes back to the page
 *     cache), writes block 5 sixteen times (a new window would be made),
 *     loads block 0 through the mapping, then writes block 0 with
 *     window_byte(7, k) and checks that the mapping shows it. Prints
 *     "mapping sees the writes".
 *   preload_behaviour window-mprotect FILE
 *     Maps FILE read-write, mprotects the mapping with the same protection
 *     (the library lets it go: it stays through the page cache), makes
 *     window-worthy preads, stores 'X' at byte 0 through the mapping and
 *     reads it with pread, then pwrites 'Y' at byte 1 and loads it through
 *     the mapping. Prints "mprotect ok".
 *   preload_behaviour window-read FILE
 *     Writes blocks 0..7 with pwrite (a window), reads block 2 with read(2)
 *     (the page cache), pwrites block 2 again with window_byte(22, k) and
 *     reads it with read(2). Prints "read ok".
 *   preload_behaviour window-reader FILE
 *     Opens FILE read-write and only preads it, sixteen times. Prints
 *     "reader ok".
 *   preload_behaviour window-fork FILE
 *     Writes blocks 0..7 (a window), forks; the child writes block 3 with
 *     window_byte(33, k) and reads it back; the parent then reads block 3.
 *     Prints "fork ok".
 *   preload_behaviour window-commits FILE MARKER
 *     Writes blocks 0..7 (a window), prints "window made", waits for the
 *     file MARKER (outside the mount) to exist, then commits 64 times: a
 *     pwrite of block i % 8 with window_byte(200 + i, k) and an fdatasync.
 *     Prints "commits ok", then waits for MARKER to go before it exits
 *     (closing a file on the mount needs the daemon).
 *   preload_behaviour window-times FILE MARKER
 *     Writes blocks 0..7 (a window), prints "window made", waits for MARKER
 *     to exist, then commits (pwrite of block 0 and fdatasync) every 10 ms
 *     for 1.5 s, checks that fdatasync of an O_PATH descriptor of FILE
 *     still fails with EBADF, prints "commits ok" and waits for MARKER to
 *     go before it exits (the window is held until then).
 *   preload_behaviour window-reuse FILE OTHER
 *     FILE has at least 64 blocks, OTHER is empty. Writes blocks 0..7 of
 *     FILE (a window), then one pwrite of 'R' over all of FILE and one block
 *     past its end (the window serves the file's size, the block past it
 *     goes through the mount) while another thread, a little into that
 *     copy, dup2()s OTHER's descriptor onto the one written. One pwrite
 *     names one file: it fails if both files got bytes of it. Prints
 *     "reuse ok" and which file got the bytes.
 *   preload_behaviour locks FILE OTHER
 *     FILE has at least 64 blocks. Takes a record lock (F_SETLK) on its
 *     first byte, then makes the library do everything it does with a file:
 *     a window (pwrite, pread, fdatasync), a direct mapping written, synced
 *     and unmapped, a read-only one grown with mremap, fsync. After each
 *     step a child process must still be refused the lock (a library that
 *     closed a descriptor of the file would have dropped it). Then takes a
 *     flock, maps and unmaps the file once more and closes its descriptor:
 *     no descriptor of the file may be left in the process, and a child
 *     must get the flock. The same when the descriptor is closed before the
 *     munmap (with a flock through it). A lock taken with lockf, and one
 *     taken through another descriptor than the mapped one (closed before
 *     the munmap), hold too, and closing that other descriptor leaves no
 *     descriptor of the file. Then, with a mapping made, closes
 *     the library's own descriptor of the file, puts OTHER's under its
 *     number and breaks the mapping with an extending ftruncate: the
 *     library must not map OTHER there. Prints "locks ok".
 *   preload_behaviour write-then-map FILE
 *     FILE has at least 64 blocks. pwrite()s block 0 with
 *     window_byte(7, k), then maps the file read-only (MAP_SHARED) and
 *     compares block 0 of the mapping with what it wrote. Prints "map
 *     sees the write".
 * Exit status 0 on success, 1 on a wrong result, 2 on a setup failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "maps_check.h"

static void *map_file(const char *path, size_t *len, int *fd) {
  struct stat st;
  *fd = open(path, O_RDONLY);
  if (*fd < 0 || fstat(*fd, &st) != 0 || st.st_size == 0) {
    perror(path);
    exit(2);
  }
  *len = (size_t)st.st_size;
  void *p = mmap(NULL, *len, PROT_READ, MAP_SHARED, *fd, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(2);
  }
  return p;
}

static int fork_case(const char *path, const char *region) {
  size_t len;
  int fd;
  const unsigned char *p = map_file(path, &len, &fd);
  printf("mapped region=%d\n", count_mappings(region));
  fflush(stdout);
  pid_t child = fork();
  if (child < 0) return 2;
  if (child == 0) {
    unsigned char *want = malloc(len);
    if (want == NULL || pread(fd, want, len, 0) != (ssize_t)len) _exit(2);
    _exit(memcmp(p, want, len) == 0 ? 0 : 1);
  }
  int status;
  if (waitpid(child, &status, 0) != child) return 2;
  if (!WIFEXITED(status)) {
    printf("child died of signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return 1;
  }
  if (WEXITSTATUS(status) != 0) {
    printf("child exit %d\n", WEXITSTATUS(status));
    return 1;
  }
  printf("child ok\n");
  return 0;
}

/* The parent stores through its mapping after the fork; the child, which
 * read its inherited mapping before, must see the stores there. */
static int fork_store_case(const char *path, const char *region) {
  struct stat st;
  int fd = open(path, O_RDWR);
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 4096) return 2;
  const size_t len = (size_t)st.st_size;
  unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 2;
  printf("mapped region=%d\n", count_mappings(region));
  fflush(stdout);
  int to_child[2], to_parent[2];
  if (pipe(to_child) != 0 || pipe(to_parent) != 0) return 2;
  pid_t child = fork();
  if (child < 0) return 2;
  char c = 0;
  if (child == 0) {
    unsigned sum = 0;
    for (size_t i = 0; i < len; i += 4096) sum += p[i];  /* every page faulted in */
    if (write(to_parent[1], "r", 1) != 1 || read(to_child[0], &c, 1) != 1) _exit(2);
    for (size_t i = 0; i < len; i += 4096) {
      if (p[i] != 'Z') {
        printf("child: page %zu shows %#x, not the parent's store (sum %u)\n", i / 4096, p[i], sum);
        _exit(1);
      }
    }
    _exit(0);
  }
  if (read(to_parent[0], &c, 1) != 1) return 2;
  for (size_t i = 0; i < len; i += 4096) p[i] = 'Z';
  if (msync(p, len, MS_SYNC) != 0) return 2;
  if (write(to_child[1], "s", 1) != 1) return 2;
  int status;
  if (waitpid(child, &status, 0) != child) return 2;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    printf("child failed (status %#x)\n", status);
    return 1;
  }
  printf("child saw the stores\n");
  return 0;
}

static int signal_case(const char *path) {
  size_t len;
  int fd;
  (void)map_file(path, &len, &fd);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return 2;
  if (kill(getpid(), SIGUSR1) != 0) return 2;
  int sig = 0;
  if (sigwait(&set, &sig) != 0 || sig != SIGUSR1) return 1;
  printf("signal ok\n");
  return 0;
}

enum { kBlock = 4096 };

/* The byte at offset k of the i-th block written (the test computes it too). */
static unsigned char window_byte(int i, int k) { return (unsigned char)((i * 31 + k * 7 + 1) % 251); }

static void fill(unsigned char *block, int i) {
  for (int k = 0; k < kBlock; ++k) block[k] = window_byte(i, k);
}

static int open_blocks(const char *path, int flags, long *blocks) {
  int fd = open(path, flags);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    perror(path);
    exit(2);
  }
  *blocks = (long)(st.st_size / kBlock);
  return fd;
}

/* pwrite of block b with pattern i, read back with pread; 0 when equal. */
static int write_and_check(int fd, long b, int i) {
  unsigned char want[kBlock], got[kBlock];
  fill(want, i);
  if (pwrite(fd, want, kBlock, (off_t)b * kBlock) != kBlock) {
    perror("pwrite");
    return 2;
  }
  if (pread(fd, got, kBlock, (off_t)b * kBlock) != kBlock) {
    perror("pread");
    return 2;
  }
  if (memcmp(want, got, kBlock) != 0) {
    printf("block %ld reads back wrong\n", b);
    return 1;
  }
  return 0;
}

/* Blocks 0..7 written with patterns 0..7 and read back: more calls inside
 * the file than a window needs, so the file has one afterwards. 0 when
 * every block read back right. */
static int write_first_blocks(int fd) {
  for (int b = 0; b < 8; ++b) {
    int rc = write_and_check(fd, b, b);
    if (rc != 0) return rc;
  }
  return 0;
}

static int window_case(const char *path) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  if (blocks < 64) return 2;
  for (int i = 0; i < 64; ++i) {
    int rc = write_and_check(fd, (long)i * 37 % blocks, i);
    if (rc != 0) return rc;
  }
  int wfd = open(path, O_WRONLY);
  unsigned char block[kBlock], got[kBlock];
  fill(block, 64);
  if (wfd < 0 || pwrite(wfd, block, kBlock, kBlock) != kBlock) return 2;
  if (pread(fd, got, kBlock, kBlock) != kBlock || memcmp(block, got, kBlock) != 0) {
    printf("the write-only descriptor's write does not read back\n");
    return 1;
  }
  printf("window ok\n");
  return 0;
}

static int window_break_case(const char *path) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  int made = write_first_blocks(fd);
  if (made != 0) return made;
  printf("window made\n");
  for (int waited = 0;; ++waited) {
    struct stat st;
    if (fstat(fd, &st) != 0) return 2;
    if (st.st_size < blocks * kBlock) break;
    if (waited > 6000) return 2; /* 60 s */
    usleep(10000);
  }
  for (long b = 0; b < blocks; ++b) {
    int rc = write_and_check(fd, b, (int)(100 + b));
    if (rc != 0) return rc;
  }
  printf("after break ok\n");
  return 0;
}

static int window_mapped_case(const char *path) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  const volatile unsigned char *map =
      mmap(NULL, (size_t)blocks * kBlock, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return 2;
  int made = write_first_blocks(fd);
  if (made != 0) return made;
  unsigned char block[kBlock];
  fill(block, 9);
  if (pwrite(fd, block, kBlock, (off_t)blocks * kBlock) != kBlock) return 2; /* extends: a break */
  for (int i = 0; i < 16; ++i) { /* enough calls for a new window */
    if (pwrite(fd, block, kBlock, 5 * kBlock) != kBlock) return 2;
  }
  unsigned char seen = map[0]; /* the page is now cached through the mount */
  (void)seen;
  fill(block, 7);
  if (pwrite(fd, block, kBlock, 0) != kBlock) return 2;
  for (int k = 0; k < kBlock; ++k) {
    if (map[k] != block[k]) {
      printf("the mapping shows old bytes at %d\n", k);
      return 1;
    }
  }
  printf("mapping sees the writes\n");
  return 0;
}

static int window_mprotect_case(const char *path) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  size_t len = (size_t)blocks * kBlock;
  volatile unsigned char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED || mprotect((void *)map, len, PROT_READ | PROT_WRITE) != 0) return 2;
  unsigned char block[kBlock];
  for (int i = 0; i < 16; ++i) {
    if (pread(fd, block, kBlock, (off_t)(i % 8) * kBlock) != kBlock) return 2;
  }
  map[0] = 'X';
  unsigned char c = 0;
  if (pread(fd, &c, 1, 0) != 1) return 2;
  if (c != 'X') {
    printf("pread does not see the store through the mapping: %c\n", c);
    return 1;
  }
  if (pwrite(fd, "Y", 1, 1) != 1) return 2;
  if (map[1] != 'Y') {
    printf("the mapping does not see the pwrite: %c\n", map[1]);
    return 1;
  }
  printf("mprotect ok\n");
  return 0;
}

static int window_read_case(const char *path) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  int made = write_first_blocks(fd);
  if (made != 0) return made;
  unsigned char want[kBlock], got[kBlock];
  if (lseek(fd, 2 * kBlock, SEEK_SET) < 0 || read(fd, got, kBlock) != kBlock) return 2;
  fill(want, 22);
  if (pwrite(fd, want, kBlock, 2 * kBlock) != kBlock) return 2;
  if (lseek(fd, 2 * kBlock, SEEK_SET) < 0 || read(fd, got, kBlock) != kBlock) return 2;
  if (memcmp(want, got, kBlock) != 0) {
    printf("read(2) after pwrite shows old bytes\n");
    return 1;
  }
  printf("read ok\n");
  return 0;
}

static int window_reader_case(const char *path) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  unsigned char block[kBlock];
  for (int i = 0; i < 16; ++i) {
    if (pread(fd, block, kBlock, (off_t)(i % blocks) * kBlock) != kBlock) return 2;
  }
  printf("reader ok\n");
  return 0;
}

static int window_fork_case(const char *path) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  int made = write_first_blocks(fd);
  if (made != 0) return made;
  fflush(stdout);
  pid_t child = fork();
  if (child < 0) return 2;
  if (child == 0) _exit(write_and_check(fd, 3, 33));
  int status;
  if (waitpid(child, &status, 0) != child) return 2;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    printf("child failed: status %d\n", status);
    return 1;
  }
  unsigned char want[kBlock], got[kBlock];
  fill(want, 33);
  if (pread(fd, got, kBlock, 3 * kBlock) != kBlock || memcmp(want, got, kBlock) != 0) {
    printf("the parent does not read the child's write\n");
    return 1;
  }
  printf("fork ok\n");
  return 0;
}

static int wait_for_marker(const char *marker, int present) {
  for (int waited = 0; (access(marker, F_OK) == 0) != present; ++waited) {
    if (waited > 6000) return 2; /* 60 s */
    usleep(10000);
  }
  return 0;
}

static int window_commits_case(const char *path, const char *marker) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  int made = write_first_blocks(fd);
  if (made != 0) return made;
  printf("window made\n");
  if (wait_for_marker(marker, 1) != 0) return 2;
  unsigned char block[kBlock];
  for (int i = 0; i < 64; ++i) {
    fill(block, 200 + i);
    if (pwrite(fd, block, kBlock, (off_t)(i % 8) * kBlock) != kBlock || fdatasync(fd) != 0) {
      perror("commit");
      return 2;
    }
  }
  printf("commits ok\n");
  return wait_for_marker(marker, 0);
}

static int window_times_case(const char *path, const char *marker) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  int made = write_first_blocks(fd);
  if (made != 0) return made;
  printf("window made\n");
  if (wait_for_marker(marker, 1) != 0) return 2;
  unsigned char block[kBlock];
  fill(block, 300);
  for (int i = 0; i < 150; ++i) {
    if (pwrite(fd, block, kBlock, 0) != kBlock || fdatasync(fd) != 0) {
      perror("commit");
      return 2;
    }
    usleep(10000);
  }
  int path_fd = open(path, O_PATH);
  if (path_fd < 0) return 2;
  errno = 0;
  if (fdatasync(path_fd) != -1 || errno != EBADF) {
    printf("fdatasync of an O_PATH descriptor: %s\n", strerror(errno));
    return 1;
  }
  printf("commits ok\n");
  return wait_for_marker(marker, 0);
}

struct reuse {
  int fd;
  int other;
  int go; /* atomic: the pwrite is about to start */
};

static void *reuse_descriptor(void *arg) {
  struct reuse *r = arg;
  while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE)) {
  }
  /* Into the copy through the window (tens of milliseconds for the file). */
  struct timespec pause = {0, 2 * 1000 * 1000};
  nanosleep(&pause, NULL);
  if (dup2(r->other, r->fd) < 0) perror("dup2");
  return NULL;
}

static int window_reuse_case(const char *path, const char *other_path) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  int made = write_first_blocks(fd);
  if (made != 0) return made;
  int other = open(other_path, O_RDWR);
  size_t len = (size_t)(blocks + 1) * kBlock;
  unsigned char *bytes = malloc(len);
  if (other < 0 || bytes == NULL) return 2;
  memset(bytes, 'R', len);
  struct reuse r = {fd, other, 0};
  pthread_t thread;
  if (pthread_create(&thread, NULL, reuse_descriptor, &r) != 0) return 2;
  __atomic_store_n(&r.go, 1, __ATOMIC_RELEASE);
  ssize_t written = pwrite(fd, bytes, len, 0);
  pthread_join(thread, NULL);
  /* What each file holds now, read through fresh descriptors. */
  int file_again = open(path, O_RDONLY);
  unsigned char first = 0;
  struct stat other_st;
  if (file_again < 0 || pread(file_again, &first, 1, 0) != 1 || stat(other_path, &other_st) != 0) {
    return 2;
  }
  const int file_got = first == 'R';
  const int other_got = other_st.st_size > 0;
  if (file_got && other_got) {
    printf("one pwrite (returned %zd) wrote into both files: %s and %lld bytes of %s\n", written,
           path, (long long)other_st.st_size, other_path);
    return 1;
  }
  printf("reuse ok: %s got the bytes (pwrite returned %zd)\n", file_got ? "the file" : "the other file",
         written);
  return 0;
}

/* 1 when a child process can take the record lock on FILE's first byte
 * (or, with use_flock, an exclusive flock), 0 when refused, 2 on failure. */
static int other_can_lock(const char *path, int use_flock) {
  pid_t child = fork();
  if (child < 0) return 2;
  if (child == 0) {
    int fd = open(path, O_RDWR);
    if (fd < 0) _exit(2);
    if (use_flock) _exit(flock(fd, LOCK_EX | LOCK_NB) == 0 ? 1 : 0);
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    _exit(fcntl(fd, F_SETLK, &lock) == 0 ? 1 : 0);
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return 2;
  return WEXITSTATUS(status);
}

/* Descriptors of this process that name the file with this inode. */
static int descriptors_of(ino_t ino) {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) return -1;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    struct stat st;
    if (e->d_name[0] != '.' && fstatat(dirfd(dir), e->d_name, &st, 0) == 0 && S_ISREG(st.st_mode) &&
        st.st_ino == ino) {
      count++;
    }
  }
  closedir(dir);
  return count;
}

static int still_locked(const char *path, const char *after) {
  int can = other_can_lock(path, 0);
  if (can == 0) return 0;
  printf("%s: %s\n", after, can == 1 ? "another process got the lock: the library dropped it" : "child failed");
  return can == 1 ? 1 : 2;
}

/* A descriptor of this process that names the file and is not `mine`. */
static int library_descriptor(ino_t ino, int mine) {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) return -1;
  int found = -1;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    struct stat st;
    const int n = atoi(e->d_name);
    if (e->d_name[0] != '.' && n != mine && n != dirfd(dir) && fstatat(dirfd(dir), e->d_name, &st, 0) == 0 &&
        st.st_ino == ino) {
      found = n;
    }
  }
  closedir(dir);
  return found;
}

/* open, flock (when asked), mmap, close, then munmap: nothing of the file
 * may stay open, and another process must get the flock. */
static int close_before_munmap(const char *path, size_t len, ino_t ino, int with_flock) {
  int fd = open(path, O_RDWR);
  if (fd < 0 || (with_flock && flock(fd, LOCK_EX) != 0)) return 2;
  unsigned char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 2;
  close(fd);
  if (munmap(p, len) != 0) return 2;
  int left = descriptors_of(ino);
  if (left != 0) {
    printf("%d descriptors of the file left after close, then munmap\n", left);
    return 1;
  }
  if (with_flock && other_can_lock(path, 1) != 1) {
    printf("another process cannot take the flock after close, then munmap\n");
    return 1;
  }
  return 0;
}

/* A lock taken with lockf survives a mapping made and let go. */
static int lockf_lock_holds(const char *path, size_t len) {
  int fd = open(path, O_RDWR);
  if (fd < 0 || lockf(fd, F_LOCK, 1) != 0) return 2;
  unsigned char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED || munmap(p, len) != 0) return 2;
  int rc = still_locked(path, "lockf, then a mapping");
  close(fd);
  return rc;
}

/* Locked through `locker`, mapped through another descriptor that is
 * closed before the munmap: the lock holds, and once `locker` is closed
 * too nothing of the file is left open. */
static int lock_through_another_descriptor(const char *path, size_t len, ino_t ino) {
  int locker = open(path, O_RDWR);
  struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
  if (locker < 0 || fcntl(locker, F_SETLK, &lock) != 0) return 2;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return 2;
  unsigned char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 2;
  close(fd);  /* drops the lock, as without the library: take it again */
  if (fcntl(locker, F_SETLK, &lock) != 0 || munmap(p, len) != 0) return 2;
  int rc = still_locked(path, "locked through another descriptor, then munmap");
  if (rc != 0) return rc;
  close(locker);
  int left = descriptors_of(ino);
  if (left != 0) {
    printf("%d descriptors of the file left after the locking descriptor was closed\n", left);
    return 1;
  }
  return 0;
}

/* The program closes the library's descriptor of a mapped file and puts
 * another file under its number; a break of the mapping must not show
 * that other file at the mapping's addresses. */
static int anchor_number_reused(const char *path, const char *other_path, size_t len, ino_t ino) {
  int fd = open(path, O_RDWR);
  int other = open(other_path, O_RDWR);
  if (fd < 0 || other < 0) return 2;
  unsigned char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 2;
  int anchor = library_descriptor(ino, fd);
  if (anchor < 0) {
    printf("no descriptor of the library found for the mapped file\n");
    return 1;
  }
  if (dup2(other, anchor) != anchor) return 2;  /* closes the library's, reuses the number */
  if (ftruncate(fd, (off_t)len * 2) != 0) return 2;  /* breaks the direct mapping */
  const char *base = strrchr(other_path, '/');
  if (count_mappings(base != NULL ? base + 1 : other_path) != 0) {
    printf("the library mapped another file where the program mapped %s\n", path);
    return 1;
  }
  close(anchor);
  close(other);
  close(fd);
  return 0;
}

static int locks_case(const char *path, const char *other_path) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  if (blocks < 64) return 2;
  const size_t len = (size_t)blocks * kBlock;
  struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
  if (fcntl(fd, F_SETLK, &lock) != 0) {
    perror("F_SETLK");
    return 2;
  }
  int rc = still_locked(path, "locked");
  if (rc != 0) return rc;
  if ((rc = write_first_blocks(fd)) != 0) return rc;
  if (fdatasync(fd) != 0) return 2;
  if ((rc = still_locked(path, "after a window")) != 0) return rc;
  unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 2;
  p[3 * kBlock] = 'L';
  if (msync(p, len, MS_SYNC) != 0 || munmap(p, len) != 0) return 2;
  if ((rc = still_locked(path, "after a mapping")) != 0) return rc;
  p = mmap(NULL, len / 2, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 2;
  unsigned char *grown = mremap(p, len / 2, len, MREMAP_MAYMOVE);
  if (grown == MAP_FAILED || grown[3 * kBlock] != 'L' || munmap(grown, len) != 0) return 2;
  if (fsync(fd) != 0) return 2;
  if ((rc = still_locked(path, "after mremap and fsync")) != 0) return rc;
  struct stat st;
  if (fstat(fd, &st) != 0 || flock(fd, LOCK_EX) != 0) return 2;
  p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED || munmap(p, len) != 0) return 2;
  close(fd);
  int left = descriptors_of(st.st_ino);
  if (left != 0) {
    printf("%d descriptors of the file left after the program closed its own\n", left);
    return 1;
  }
  if (other_can_lock(path, 1) != 1) {
    printf("another process cannot take the flock after the program closed its descriptor\n");
    return 1;
  }
  if ((rc = close_before_munmap(path, len, st.st_ino, 0)) != 0) return rc;
  if ((rc = close_before_munmap(path, len, st.st_ino, 1)) != 0) return rc;
  if ((rc = lockf_lock_holds(path, len)) != 0) return rc;
  if ((rc = lock_through_another_descriptor(path, len, st.st_ino)) != 0) return rc;
  if ((rc = anchor_number_reused(path, other_path, len, st.st_ino)) != 0) return rc;
  printf("locks ok\n");
  return 0;
}

static int write_then_map_case(const char *path) {
  long blocks;
  int fd = open_blocks(path, O_RDWR, &blocks);
  if (blocks < 64) return 2;
  unsigned char block[kBlock];
  fill(block, 7);
  if (pwrite(fd, block, kBlock, 0) != kBlock) return 2;
  unsigned char *p = mmap(NULL, (size_t)blocks * kBlock, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 2;
  const int same = memcmp(p, block, kBlock) == 0;
  munmap(p, (size_t)blocks * kBlock);
  close(fd);
  if (!same) {
    printf("the mapping shows block 0 as it was before the program's own pwrite\n");
    return 1;
  }
  printf("map sees the write\n");
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 4 && strcmp(argv[1], "fork") == 0) return fork_case(argv[2], argv[3]);
  if (argc == 4 && strcmp(argv[1], "fork-store") == 0) return fork_store_case(argv[2], argv[3]);
  if (argc == 3 && strcmp(argv[1], "signal") == 0) return signal_case(argv[2]);
  if (argc == 3 && strcmp(argv[1], "window") == 0) return window_case(argv[2]);
  if (argc == 3 && strcmp(argv[1], "window-break") == 0) return window_break_case(argv[2]);
  if (argc == 3 && strcmp(argv[1], "window-mapped") == 0) return window_mapped_case(argv[2]);
  if (argc == 3 && strcmp(argv[1], "window-fork") == 0) return window_fork_case(argv[2]);
  if (argc == 3 && strcmp(argv[1], "window-mprotect") == 0) return window_mprotect_case(argv[2]);
  if (argc == 3 && strcmp(argv[1], "window-read") == 0) return window_read_case(argv[2]);
  if (argc == 3 && strcmp(argv[1], "window-reader") == 0) return window_reader_case(argv[2]);
  if (argc == 4 && strcmp(argv[1], "window-commits") == 0) return window_commits_case(argv[2], argv[3]);
  if (argc == 4 && strcmp(argv[1], "window-times") == 0) return window_times_case(argv[2], argv[3]);
  if (argc == 4 && strcmp(argv[1], "window-reuse") == 0) return window_reuse_case(argv[2], argv[3]);
  if (argc == 4 && strcmp(argv[1], "locks") == 0) return locks_case(argv[2], argv[3]);
  if (argc == 3 && strcmp(argv[1], "write-then-map") == 0) return write_then_map_case(argv[2]);
  fprintf(stderr, "usage: preload_behaviour fork|fork-store FILE REGION_NAME | signal FILE | window[-...] FILE [MARKER] | locks FILE OTHER\n");
  return 2;
}
