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
 * Exit status 0 on success, 1 on a wrong result, 2 on a setup failure. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 4 && strcmp(argv[1], "fork") == 0) return fork_case(argv[2], argv[3]);
  if (argc == 3 && strcmp(argv[1], "signal") == 0) return signal_case(argv[2]);
  fprintf(stderr, "usage: preload_behaviour fork FILE REGION_NAME | signal FILE\n");
  return 2;
}
