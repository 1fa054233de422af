/* A SQLite program for the preload tests (tests/integration/preload).
 *
 *   sqlite_workload load DB delete|wal TXNS REGION_NAME
 *     With PRAGMA mmap_size of 256 MiB and synchronous=FULL, commits
 *     transactions 0..TXNS-1 (each inserts kPerTxn rows and rewrites
 *     kPerTxn earlier ones), printing "committed T" after each, and
 *     "mapped region=N db=M" after the first and the last: how many of the
 *     process's mappings are of the sealfs region file (REGION_NAME) and
 *     of the database file.
 *   sqlite_workload bigtxn DB ROWS
 *     WAL mode: inserts ROWS rows in one transaction (more frames than the
 *     first 32 KiB of the WAL index holds, so SQLite extends -shm with
 *     write(2) while it maps its start), then checks integrity_check and
 *     every row; prints "ok ROWS".
 *   sqlite_workload share-init DB delete|wal
 *     Makes DB in that journal mode with a counter row (n = 0) and an
 *     empty table of rows.
 *   sqlite_workload share DB WRITER TXNS
 *     One of several processes writing DB at once: TXNS transactions, each
 *     BEGIN IMMEDIATE, n = n + 1 and one 300-byte row of this writer,
 *     waiting for the others' locks (busy timeout). Prints "shared TXNS".
 *     With SQLITE_WORKLOAD_NO_CHECKPOINT=1 in the environment the WAL is
 *     never checkpointed, so it and its index (-shm) keep growing.
 *   sqlite_workload share-read DB SECONDS
 *     Read transactions for that long: n must equal the number of rows.
 *     Prints "reads N bad B"; exits 1 when B > 0.
 *   sqlite_workload share-verify DB TOTAL
 *     integrity_check ok, TOTAL rows and n = TOTAL: no writer's
 *     transaction was lost to another's (which happens when two processes
 *     hold the write lock at once). Prints "ok TOTAL".
 *   sqlite_workload verify DB TXNS
 *     PRAGMA integrity_check must say ok; transactions 0..C-1 must be
 *     wholly there with the right values, later ones absent. Prints
 *     "ok C". */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maps_check.h"

enum { kPerTxn = 20, kValueSize = 300 };

static void die(sqlite3 *db, const char *what) {
  fprintf(stderr, "sqlite_workload: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
  exit(2);
}

static void exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "sqlite_workload: %s: %s\n", sql, err ? err : "?");
    exit(2);
  }
}

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

static void value_of(uint64_t k, uint64_t t, unsigned char *out) {
  for (int i = 0; i < kValueSize; i += 4) {
    uint32_t w = (uint32_t)mix(k * 1000003ULL + t * 7919ULL + (uint64_t)i);
    memcpy(out + i, &w, 4);
  }
}

static uint64_t updated_key(uint64_t t, int i) { return (t * kPerTxn) / 2 + (uint64_t)i; }

static sqlite3 *open_db(const char *path) {
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) die(db, "open");
  sqlite3_busy_timeout(db, 60000);  /* the share mode's writers wait for each other */
  exec(db, "PRAGMA mmap_size=268435456");
  exec(db, "PRAGMA synchronous=FULL");
  return db;
}

/* PRAGMA integrity_check says ok; otherwise prints what it says. */
static int integrity_ok(sqlite3 *db) {
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) != SQLITE_OK) die(db, "check");
  const int ok = sqlite3_step(q) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
  if (!ok) printf("bad: integrity_check: %s\n", (const char *)sqlite3_column_text(q, 0));
  sqlite3_finalize(q);
  return ok;
}

static int load(const char *path, const char *mode, uint64_t txns, const char *region) {
  sqlite3 *db = open_db(path);
  exec(db, strcmp(mode, "wal") == 0 ? "PRAGMA journal_mode=WAL" : "PRAGMA journal_mode=DELETE");
  exec(db, "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
  sqlite3_stmt *put;
  if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO t(k, v) VALUES (?, ?)", -1, &put, NULL) !=
      SQLITE_OK) {
    die(db, "prepare");
  }
  unsigned char value[kValueSize];
  for (uint64_t t = 0; t < txns; ++t) {
    exec(db, "BEGIN");
    for (int i = 0; i < kPerTxn; ++i) {
      uint64_t keys[2] = {t * kPerTxn + (uint64_t)i, updated_key(t, i)};
      for (int j = 0; j < 2; ++j) {
        if (j == 1 && keys[1] >= t * kPerTxn) continue;
        value_of(keys[j], t, value);
        sqlite3_bind_int64(put, 1, (sqlite3_int64)keys[j]);
        sqlite3_bind_blob(put, 2, value, kValueSize, SQLITE_TRANSIENT);
        if (sqlite3_step(put) != SQLITE_DONE) die(db, "insert");
        sqlite3_reset(put);
      }
    }
    exec(db, "COMMIT");
    printf("committed %llu\n", (unsigned long long)t);
    if (t == 0 || t + 1 == txns) {
      /* Reads go through the map: touch the whole table once. */
      exec(db, "SELECT count(*), sum(length(v)) FROM t");
      printf("mapped region=%d db=%d\n", count_mappings(region), count_mappings(path));
    }
  }
  sqlite3_finalize(put);
  sqlite3_close(db);
  return 0;
}

static int verify(const char *path, uint64_t max_txns) {
  sqlite3 *db = open_db(path);
  sqlite3_stmt *q;
  if (!integrity_ok(db)) return 1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &q, NULL) != SQLITE_OK) die(db, "count");
  if (sqlite3_step(q) != SQLITE_ROW) die(db, "count");
  const uint64_t rows = (uint64_t)sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  if (rows % kPerTxn != 0 || rows / kPerTxn > max_txns) {
    printf("bad: %llu rows\n", (unsigned long long)rows);
    return 1;
  }
  const uint64_t c = rows / kPerTxn;
  if (sqlite3_prepare_v2(db, "SELECT k, v FROM t ORDER BY k", -1, &q, NULL) != SQLITE_OK) die(db, "scan");
  unsigned char want[kValueSize];
  for (uint64_t k = 0; k < c * kPerTxn; ++k) {
    if (sqlite3_step(q) != SQLITE_ROW || (uint64_t)sqlite3_column_int64(q, 0) != k) {
      printf("bad: key %llu missing\n", (unsigned long long)k);
      return 1;
    }
    uint64_t last = k / kPerTxn;
    for (uint64_t t = last + 1; t < c; ++t) {
      uint64_t lo = (t * kPerTxn) / 2;
      if (k >= lo && k < lo + kPerTxn) last = t;
      if (lo > k) break;
    }
    value_of(k, last, want);
    if (sqlite3_column_bytes(q, 1) != kValueSize || memcmp(sqlite3_column_blob(q, 1), want, kValueSize)) {
      printf("bad: key %llu has another value than transaction %llu wrote\n",
             (unsigned long long)k, (unsigned long long)last);
      return 1;
    }
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  printf("ok %llu\n", (unsigned long long)c);
  return 0;
}

static int bigtxn(const char *path, uint64_t rows) {
  sqlite3 *db = open_db(path);
  exec(db, "PRAGMA journal_mode=WAL");
  exec(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
  sqlite3_stmt *put;
  if (sqlite3_prepare_v2(db, "INSERT INTO t(k, v) VALUES (?, ?)", -1, &put, NULL) != SQLITE_OK) {
    die(db, "prepare");
  }
  unsigned char value[kValueSize];
  exec(db, "BEGIN");
  for (uint64_t k = 0; k < rows; ++k) {
    value_of(k, 0, value);
    sqlite3_bind_int64(put, 1, (sqlite3_int64)k);
    sqlite3_bind_blob(put, 2, value, kValueSize, SQLITE_TRANSIENT);
    if (sqlite3_step(put) != SQLITE_DONE) die(db, "insert");
    sqlite3_reset(put);
  }
  exec(db, "COMMIT");
  sqlite3_finalize(put);
  sqlite3_stmt *q;
  if (!integrity_ok(db)) return 1;
  if (sqlite3_prepare_v2(db, "SELECT k, v FROM t ORDER BY k", -1, &q, NULL) != SQLITE_OK) die(db, "scan");
  uint64_t k = 0;
  for (; sqlite3_step(q) == SQLITE_ROW; ++k) {
    value_of(k, 0, value);
    if ((uint64_t)sqlite3_column_int64(q, 0) != k || sqlite3_column_bytes(q, 1) != kValueSize ||
        memcmp(sqlite3_column_blob(q, 1), value, kValueSize) != 0) {
      printf("bad: row %llu\n", (unsigned long long)k);
      return 1;
    }
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  if (k != rows) {
    printf("bad: %llu rows\n", (unsigned long long)k);
    return 1;
  }
  printf("ok %llu\n", (unsigned long long)rows);
  return 0;
}

static int share_init(const char *path, const char *mode) {
  sqlite3 *db = open_db(path);
  exec(db, strcmp(mode, "wal") == 0 ? "PRAGMA journal_mode=WAL" : "PRAGMA journal_mode=DELETE");
  exec(db, "CREATE TABLE c(n INTEGER NOT NULL)");
  exec(db, "INSERT INTO c(n) VALUES (0)");
  exec(db, "CREATE TABLE rows(writer INTEGER NOT NULL, i INTEGER NOT NULL, v BLOB NOT NULL)");
  sqlite3_close(db);
  return 0;
}

static int share(const char *path, int writer, uint64_t txns) {
  sqlite3 *db = open_db(path);
  const char *no_checkpoint = getenv("SQLITE_WORKLOAD_NO_CHECKPOINT");
  if (no_checkpoint != NULL && strcmp(no_checkpoint, "1") == 0) exec(db, "PRAGMA wal_autocheckpoint=0");
  sqlite3_stmt *put;
  if (sqlite3_prepare_v2(db, "INSERT INTO rows(writer, i, v) VALUES (?, ?, ?)", -1, &put, NULL) !=
      SQLITE_OK) {
    die(db, "prepare");
  }
  unsigned char value[kValueSize];
  for (uint64_t t = 0; t < txns; ++t) {
    exec(db, "BEGIN IMMEDIATE");
    exec(db, "UPDATE c SET n = n + 1");
    value_of(t, writer, value);
    sqlite3_bind_int64(put, 1, writer);
    sqlite3_bind_int64(put, 2, (sqlite3_int64)t);
    sqlite3_bind_blob(put, 3, value, kValueSize, SQLITE_TRANSIENT);
    if (sqlite3_step(put) != SQLITE_DONE) die(db, "insert");
    sqlite3_reset(put);
    exec(db, "COMMIT");
  }
  sqlite3_finalize(put);
  sqlite3_close(db);
  printf("shared %llu\n", (unsigned long long)txns);
  return 0;
}

static int share_read(const char *path, int seconds) {
  sqlite3 *db = open_db(path);
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(db, "SELECT (SELECT n FROM c), (SELECT count(*) FROM rows)", -1, &q, NULL) !=
      SQLITE_OK) {
    die(db, "prepare");
  }
  const time_t end = time(NULL) + seconds;
  long reads = 0, bad = 0;
  while (time(NULL) < end) {
    const int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
      const sqlite3_int64 n = sqlite3_column_int64(q, 0), rows = sqlite3_column_int64(q, 1);
      reads++;
      if (n != rows) {
        if (bad < 5) printf("bad: counter %lld, %lld rows\n", (long long)n, (long long)rows);
        bad++;
      }
    } else if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
      printf("bad: %s\n", sqlite3_errmsg(db));
      bad++;
    }
    sqlite3_reset(q);
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  printf("reads %ld bad %ld\n", reads, bad);
  return bad > 0 ? 1 : 0;
}

static int share_verify(const char *path, uint64_t total) {
  sqlite3 *db = open_db(path);
  sqlite3_stmt *q;
  if (!integrity_ok(db)) return 1;
  if (sqlite3_prepare_v2(db, "SELECT (SELECT n FROM c), (SELECT count(*) FROM rows)", -1, &q, NULL) !=
          SQLITE_OK ||
      sqlite3_step(q) != SQLITE_ROW) {
    die(db, "count");
  }
  const uint64_t n = (uint64_t)sqlite3_column_int64(q, 0), rows = (uint64_t)sqlite3_column_int64(q, 1);
  sqlite3_finalize(q);
  sqlite3_close(db);
  if (n != total || rows != total) {
    printf("bad: counter %llu and %llu rows after %llu transactions\n", (unsigned long long)n,
           (unsigned long long)rows, (unsigned long long)total);
    return 1;
  }
  printf("ok %llu\n", (unsigned long long)total);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 4 && strcmp(argv[1], "share-init") == 0) return share_init(argv[2], argv[3]);
  if (argc == 5 && strcmp(argv[1], "share") == 0) {
    return share(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10));
  }
  if (argc == 4 && strcmp(argv[1], "share-read") == 0) return share_read(argv[2], atoi(argv[3]));
  if (argc == 4 && strcmp(argv[1], "share-verify") == 0) {
    return share_verify(argv[2], strtoull(argv[3], NULL, 10));
  }
  if (argc == 6 && strcmp(argv[1], "load") == 0) {
    return load(argv[2], argv[3], strtoull(argv[4], NULL, 10), argv[5]);
  }
  if (argc == 4 && strcmp(argv[1], "verify") == 0) return verify(argv[2], strtoull(argv[3], NULL, 10));
  if (argc == 4 && strcmp(argv[1], "bigtxn") == 0) return bigtxn(argv[2], strtoull(argv[3], NULL, 10));
  fprintf(stderr, "usage: sqlite_workload load DB delete|wal TXNS REGION_NAME | verify DB TXNS | "
                  "bigtxn DB ROWS | share-init DB delete|wal | share DB WRITER TXNS | "
                  "share-read DB SECONDS | share-verify DB TOTAL\n");
  return 2;
}
