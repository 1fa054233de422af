/* SQLite under the preload benchmark (bench/preload/run.sh).
 *
 *   sqlite_bench DB wal|delete ROWS UPDATES
 *
 * PRAGMA mmap_size=1 GiB, synchronous=FULL. Inserts ROWS rows (integer key,
 * 100-byte blob) in one transaction, then commits UPDATES transactions of
 * one random UPDATE each (or as many as 10 s allow), then runs 200,000
 * random point SELECTs. Prints:
 *   load_s=S update_ops=N read_ops=N (updates N, checksum N) */
#define _POSIX_C_SOURCE 200809L  /* clock_gettime */

#include <sqlite3.h>
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

static sqlite3 *db;

static void exec(const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "sqlite_bench: %s: %s\n", sql, err);
    exit(1);
  }
}

static sqlite3_stmt *prepare(const char *sql) {
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
    fprintf(stderr, "sqlite_bench: %s: %s\n", sql, sqlite3_errmsg(db));
    exit(1);
  }
  return s;
}

static void step(sqlite3_stmt *s, int want) {
  if (sqlite3_step(s) != want) {
    fprintf(stderr, "sqlite_bench: step: %s\n", sqlite3_errmsg(db));
    exit(1);
  }
  sqlite3_reset(s);
}

static uint64_t next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: sqlite_bench DB wal|delete ROWS UPDATES\n");
    return 2;
  }
  const uint64_t rows = strtoull(argv[3], NULL, 10);
  uint64_t updates = strtoull(argv[4], NULL, 10);
  if (sqlite3_open(argv[1], &db) != SQLITE_OK) {
    fprintf(stderr, "sqlite_bench: %s: %s\n", argv[1], sqlite3_errmsg(db));
    return 1;
  }
  exec("PRAGMA mmap_size=1073741824");
  exec(strcmp(argv[2], "wal") == 0 ? "PRAGMA journal_mode=WAL" : "PRAGMA journal_mode=DELETE");
  exec("PRAGMA synchronous=FULL");
  exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
  char value[100];
  memset(value, 'v', sizeof(value));
  sqlite3_stmt *ins = prepare("INSERT INTO t(k, v) VALUES (?, ?)");
  double t0 = now();
  exec("BEGIN");
  for (uint64_t k = 0; k < rows; ++k) {
    sqlite3_bind_int64(ins, 1, (sqlite3_int64)k);
    sqlite3_bind_blob(ins, 2, value, sizeof(value), SQLITE_STATIC);
    step(ins, SQLITE_DONE);
  }
  exec("COMMIT");
  const double load = now() - t0;
  sqlite3_stmt *upd = prepare("UPDATE t SET v = ? WHERE k = ?");
  uint64_t seed = 88172645463325252ull;
  t0 = now();
  uint64_t u = 0;
  for (; u < updates && now() - t0 < kUpdateSeconds; ++u) {
    memcpy(value, &u, sizeof(u));
    sqlite3_bind_blob(upd, 1, value, sizeof(value), SQLITE_STATIC);
    sqlite3_bind_int64(upd, 2, (sqlite3_int64)(next(&seed) % rows));
    step(upd, SQLITE_DONE);  /* autocommit: one durable transaction each */
  }
  const double update = now() - t0;
  updates = u;
  sqlite3_stmt *sel = prepare("SELECT v FROM t WHERE k = ?");
  const uint64_t reads = 200000;
  uint64_t sum = 0;
  t0 = now();
  exec("BEGIN");
  for (uint64_t r = 0; r < reads; ++r) {
    sqlite3_bind_int64(sel, 1, (sqlite3_int64)(next(&seed) % rows));
    if (sqlite3_step(sel) != SQLITE_ROW) {
      fprintf(stderr, "sqlite_bench: select: %s\n", sqlite3_errmsg(db));
      return 1;
    }
    sum += ((const unsigned char *)sqlite3_column_blob(sel, 0))[0];
    sqlite3_reset(sel);
  }
  exec("COMMIT");
  const double read = now() - t0;
  sqlite3_finalize(ins);
  sqlite3_finalize(upd);
  sqlite3_finalize(sel);
  sqlite3_close(db);
  printf("load_s=%.3f update_ops=%.0f read_ops=%.0f (updates %llu, checksum %llu)\n", load,
         (double)updates / update, (double)reads / read, (unsigned long long)updates,
         (unsigned long long)sum);
  return 0;
}
