/* Which files back the process's mappings, from /proc/self/maps: the tests
 * prove a database runs on a direct mapping when its map is backed by the
 * sealfs region file instead of the database file on the mount. */
#ifndef SEALFS_PRELOAD_TEST_MAPS_CHECK_H
#define SEALFS_PRELOAD_TEST_MAPS_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Mappings whose path contains needle. */
__attribute__((unused)) static int count_mappings(const char *needle) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[4096];
  int n = 0;
  if (f == NULL) return -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strstr(line, needle) != NULL) n++;
  }
  fclose(f);
  return n;
}

#endif
