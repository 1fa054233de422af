/* LMDB under the preload benchmark (bench/preload/run.sh).
 *
 *   lmdb_bench DIR writemap|default RECORDS UPDATES
 *
 * Loads RECORDS records (8-byte keys, 100-byte values) in transactions of
 * 10,000 (map size 1 GiB), then commits UPDATES transactions of one random
 * update each, or as many as 10 s allow (durable commits: LMDB's default
 * sync), then does 200,000 random reads in one read transaction. Prints:
 *   load_s=S update_ops=N read_ops=N (updates N, checksum N) */
#define _POSIX_C_SOURCE 200809L  /* clock_gettime */

#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The update phase stops after this long even if UPDATES are not done:
 * some configurations commit a few times a second. */
static const double kUpdateSeconds = 10.0;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(int rc, const char *what) {
  if (rc != 0) {
    fprintf(stderr, "lmdb_bench: %s: %s\n", what, mdb_strerror(rc));
    exit(1);
  }
}

static uint64_t next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: lmdb_bench DIR writemap|default RECORDS UPDATES\n");
    return 2;
  }
  const uint64_t records = strtoull(argv[3], NULL, 10);
  uint64_t updates = strtoull(argv[4], NULL, 10);
  MDB_env *env;
  check(mdb_env_create(&env), "create");
  check(mdb_env_set_mapsize(env, 1ull << 30), "mapsize");
  check(mdb_env_open(env, argv[1], strcmp(argv[2], "writemap") == 0 ? MDB_WRITEMAP : 0, 0644), "open");
  MDB_txn *txn;
  MDB_dbi dbi;
  char value[100];
  memset(value, 'v', sizeof(value));
  double t0 = now();
  for (uint64_t k = 0; k < records;) {
    check(mdb_txn_begin(env, NULL, 0, &txn), "begin");
    check(mdb_dbi_open(txn, NULL, 0, &dbi), "dbi");
    for (int i = 0; i < 10000 && k < records; ++i, ++k) {
      uint64_t kbe = __builtin_bswap64(k);
      MDB_val key = {8, &kbe}, v = {sizeof(value), value};
      check(mdb_put(txn, dbi, &key, &v, MDB_APPEND), "put");
    }
    check(mdb_txn_commit(txn), "commit");
  }
  const double load = now() - t0;
  uint64_t seed = 88172645463325252ull;
  t0 = now();
  uint64_t u = 0;
  for (; u < updates && now() - t0 < kUpdateSeconds; ++u) {
    uint64_t kbe = __builtin_bswap64(next(&seed) % records);
    memcpy(value, &u, sizeof(u));
    MDB_val key = {8, &kbe}, v = {sizeof(value), value};
    check(mdb_txn_begin(env, NULL, 0, &txn), "begin");
    check(mdb_put(txn, dbi, &key, &v, 0), "update");
    check(mdb_txn_commit(txn), "commit");
  }
  const double update = now() - t0;
  updates = u;
  check(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "begin read");
  const uint64_t reads = 200000;
  uint64_t sum = 0;
  t0 = now();
  for (uint64_t r = 0; r < reads; ++r) {
    uint64_t kbe = __builtin_bswap64(next(&seed) % records);
    MDB_val key = {8, &kbe}, v;
    check(mdb_get(txn, dbi, &key, &v), "get");
    sum += ((const unsigned char *)v.mv_data)[0];
  }
  const double read = now() - t0;
  mdb_txn_abort(txn);
  mdb_env_close(env);
  printf("load_s=%.3f update_ops=%.0f read_ops=%.0f (updates %llu, checksum %llu)\n", load,
         (double)updates / update, (double)reads / read, (unsigned long long)updates,
         (unsigned long long)sum);
  return 0;
}
