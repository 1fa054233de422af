/* map_file: create a file on a sealfs mount, map it, store a record.
 *
 *   cc map_file.c $(pkg-config --cflags --libs sealfs) -o map_file
 *   ./map_file /mnt/sealfs/table.db
 *
 * A file sized with ftruncate(2) is a hole: sealfs_map() maps only written
 * blocks unless SEALFS_MAP_ALLOCATE asks it to allocate (and zero) them. */
#define _POSIX_C_SOURCE 200809L /* ftruncate, also under -std=c11 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sealfs/sealfs.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  const char *path = argv[1];
  const size_t len = 16 << 20; /* 16 MiB */
  const char record[] = "hello, persistent memory";

  int fd = open(path, O_RDWR | O_CREAT, 0644);
  if (fd < 0) {
    perror(path);
    return 1;
  }
  if (ftruncate(fd, (off_t)len) != 0) {
    perror("ftruncate");
    close(fd);
    return 1;
  }
  struct sealfs_map *m;
  int err = sealfs_map(fd, 0, len, PROT_READ | PROT_WRITE, SEALFS_MAP_ALLOCATE, &m);
  if (err) {
    fprintf(stderr, "sealfs_map: %s (%s)\n", strerror(-err), sealfs_last_error());
    close(fd);
    return 1;
  }
  char *p = sealfs_map_addr(m);
  memcpy(p, record, sizeof record);
  /* cache flush + fence on DAX, msync on a plain file */
  err = sealfs_persist(m, p, sizeof record);
  if (err) fprintf(stderr, "sealfs_persist: %s (%s)\n", strerror(-err), sealfs_last_error());
  /* poll(sealfs_break_fd()) or sealfs_set_break_handler(): when truncate,
     fallocate, an extending write, unlink or rename needs the blocks, the
     library reports a break; unmap before the deadline */
  int unmap_err = sealfs_unmap(m);
  if (unmap_err) fprintf(stderr, "sealfs_unmap: %s\n", strerror(-unmap_err));
  if (close(fd) != 0) {
    perror("close");
    return 1;
  }
  if (err || unmap_err) return 1;
  printf("%s: %zu bytes stored through a direct mapping of %zu\n", path, sizeof record, len);
  return 0;
}
