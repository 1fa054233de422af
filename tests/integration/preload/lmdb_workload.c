/* An LMDB program for the preload tests (tests/integration/preload).
 *
 *   lmdb_workload load DIR writemap|default TXNS REGION_NAME [READERS]
 *     With READERS threads reading at random all along (each key they
 *     find must hold a value some transaction wrote for it), commits
 *     transactions 0..TXNS-1, each putting kPerTxn records and
 *     updating kPerTxn earlier ones, printing "committed T" after each
 *     commit returns, and after the first and the last commit "mapped
 *     region=N data=M": how many of the process's mappings are of the
 *     sealfs region file (REGION_NAME) and of data.mdb.
 *   lmdb_workload verify DIR TXNS
 *     Checks that transactions 0..C-1 are wholly there with the right
 *     values and later ones wholly absent, for some C; prints "ok C" and
 *     exits 0, or says what is wrong and exits 1. C >= TXNS is not required:
 *     the caller compares C with the last "committed" line it saw.
 *
 *   lmdb_workload count-write DIR TXNS
 *     Default mode, one of several processes at once: each transaction
 *     adds one to a counter and inserts one record numbered with the new
 *     count; prints "counted N" after each commit returns.
 *   lmdb_workload count-read DIR SECONDS
 *     In read transactions for that long: the counter must equal the
 *     number of records, each record must hold its value. Prints "reads N
 *     bad B" and exits 1 when B > 0 (a reader saw a state no commit made).
 *
 * Values are a function of the key and of the last transaction that wrote
 * it, so any lost or torn update shows. */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maps_check.h"

enum { kPerTxn = 16, kValueSize = 200 };

static void die(const char *what, int rc) {
  fprintf(stderr, "lmdb_workload: %s: %s\n", what, mdb_strerror(rc));
  exit(2);
}

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

/* The value of key k as last written by transaction t. */
static void value_of(uint64_t k, uint64_t t, unsigned char *out) {
  for (int i = 0; i < kValueSize; i += 8) {
    uint64_t w = mix(k * 1000003ULL + t * 7919ULL + (uint64_t)i);
    memcpy(out + i, &w, 8);
  }
}

/* Transaction t inserts keys t*kPerTxn.. and rewrites keys (t*kPerTxn)/2..,
 * which earlier transactions inserted. */
static uint64_t updated_key(uint64_t t, int i) { return (t * kPerTxn) / 2 + (uint64_t)i; }

static MDB_env *open_env(const char *dir, unsigned flags) {
  MDB_env *env;
  int rc = mdb_env_create(&env);
  if (rc) die("mdb_env_create", rc);
  if ((rc = mdb_env_set_mapsize(env, 32u << 20))) die("mdb_env_set_mapsize", rc);
  if ((rc = mdb_env_open(env, dir, flags, 0644))) die("mdb_env_open", rc);
  return env;
}

struct reader_arg {
  MDB_env *env;
  volatile int *stop;
  uint64_t seed;
  long bad;
  long reads;
};

/* Random reads in short read transactions until told to stop: a key that is
 * there must hold the value of a transaction that inserted or updated it. */
static void *reader(void *p) {
  struct reader_arg *a = p;
  unsigned char want[kValueSize];
  while (!*a->stop) {
    MDB_txn *txn;
    MDB_dbi dbi;
    if (mdb_txn_begin(a->env, NULL, MDB_RDONLY, &txn) != 0) continue;
    if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0) {
      for (int i = 0; i < 64; ++i) {
        a->seed = mix(a->seed + 1);
        const uint64_t k = a->seed % 4096;
        uint64_t kbe = __builtin_bswap64(k);
        MDB_val key = {sizeof(kbe), &kbe}, v;
        if (mdb_get(txn, dbi, &key, &v) != 0) continue;
        a->reads++;
        int found = 0;
        for (uint64_t t = k / kPerTxn; t <= k / kPerTxn + 2 * (k / kPerTxn + 2) && !found; ++t) {
          value_of(k, t, want);
          found = v.mv_size == kValueSize && memcmp(v.mv_data, want, kValueSize) == 0;
        }
        if (!found) a->bad++;
      }
    }
    mdb_txn_abort(txn);
  }
  return NULL;
}

static int load(const char *dir, const char *mode, uint64_t txns, const char *region, int readers) {
  const unsigned flags = strcmp(mode, "writemap") == 0 ? MDB_WRITEMAP : 0;
  MDB_env *env = open_env(dir, flags);
  MDB_dbi dbi;
  volatile int stop = 0;
  pthread_t threads[8];
  struct reader_arg args[8];
  if (readers > 8) readers = 8;
  for (int r = 0; r < readers; ++r) {
    args[r] = (struct reader_arg){env, &stop, (uint64_t)r * 7777, 0, 0};
    if (pthread_create(&threads[r], NULL, reader, &args[r]) != 0) die("pthread_create", errno);
  }
  unsigned char value[kValueSize];
  for (uint64_t t = 0; t < txns; ++t) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc) die("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi))) die("mdb_dbi_open", rc);
    for (int i = 0; i < kPerTxn; ++i) {
      uint64_t keys[2] = {t * kPerTxn + (uint64_t)i, updated_key(t, i)};
      for (int j = 0; j < 2; ++j) {
        if (j == 1 && keys[1] >= t * kPerTxn) continue;  /* not inserted yet */
        uint64_t kbe = __builtin_bswap64(keys[j]);
        MDB_val k = {sizeof(kbe), &kbe}, v = {kValueSize, value};
        value_of(keys[j], t, value);
        if ((rc = mdb_put(txn, dbi, &k, &v, 0))) die("mdb_put", rc);
      }
    }
    if ((rc = mdb_txn_commit(txn))) die("mdb_txn_commit", rc);
    printf("committed %llu\n", (unsigned long long)t);
    if (t == 0 || t + 1 == txns) {
      printf("mapped region=%d data=%d\n", count_mappings(region), count_mappings("data.mdb"));
    }
  }
  stop = 1;
  long bad = 0, reads = 0;
  for (int r = 0; r < readers; ++r) {
    pthread_join(threads[r], NULL);
    bad += args[r].bad;
    reads += args[r].reads;
  }
  if (readers > 0) printf("readers bad=%ld reads=%ld\n", bad, reads);
  mdb_env_close(env);
  return 0;
}

/* The transaction that last wrote key k if transactions 0..c-1 committed. */
static int64_t last_writer(uint64_t k, uint64_t c) {
  uint64_t inserted = k / kPerTxn;
  if (inserted >= c) return -1;
  int64_t last = (int64_t)inserted;
  /* updated by t when (t*kPerTxn)/2 <= k < (t*kPerTxn)/2 + kPerTxn, k < t*kPerTxn */
  for (uint64_t t = inserted + 1; t < c; ++t) {
    uint64_t lo = (t * kPerTxn) / 2;
    if (k >= lo && k < lo + kPerTxn) last = (int64_t)t;
    if (lo > k) break;
  }
  return last;
}

static int verify(const char *dir, uint64_t max_txns) {
  MDB_env *env = open_env(dir, 0);
  MDB_txn *txn;
  MDB_dbi dbi;
  int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
  if (rc) die("mdb_txn_begin", rc);
  if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi))) die("mdb_dbi_open", rc);
  MDB_stat st;
  mdb_stat(txn, dbi, &st);
  if (st.ms_entries % kPerTxn != 0) {
    printf("bad: %zu entries, not a whole number of transactions\n", st.ms_entries);
    return 1;
  }
  const uint64_t c = st.ms_entries / kPerTxn;
  if (c > max_txns) {
    printf("bad: %llu transactions, more than %llu\n", (unsigned long long)c,
           (unsigned long long)max_txns);
    return 1;
  }
  unsigned char want[kValueSize];
  for (uint64_t k = 0; k < c * kPerTxn; ++k) {
    uint64_t kbe = __builtin_bswap64(k);
    MDB_val key = {sizeof(kbe), &kbe}, v;
    if ((rc = mdb_get(txn, dbi, &key, &v))) {
      printf("bad: key %llu: %s\n", (unsigned long long)k, mdb_strerror(rc));
      return 1;
    }
    value_of(k, (uint64_t)last_writer(k, c), want);
    if (v.mv_size != kValueSize || memcmp(v.mv_data, want, kValueSize) != 0) {
      printf("bad: key %llu has another value than transaction %lld wrote\n",
             (unsigned long long)k, (long long)last_writer(k, c));
      return 1;
    }
  }
  mdb_txn_abort(txn);
  mdb_env_close(env);
  printf("ok %llu\n", (unsigned long long)c);
  return 0;
}

static MDB_val text_key(const char *text) { return (MDB_val){strlen(text), (void *)text}; }

static int count_write(const char *dir, uint64_t txns) {
  MDB_env *env = open_env(dir, 0);
  unsigned char value[kValueSize];
  for (uint64_t t = 0; t < txns; ++t) {
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc) die("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi))) die("mdb_dbi_open", rc);
    MDB_val ck = text_key("ctr"), cv;
    uint64_t n = 0;
    if (mdb_get(txn, dbi, &ck, &cv) == 0 && cv.mv_size == sizeof(n)) memcpy(&n, cv.mv_data, sizeof(n));
    n++;
    cv = (MDB_val){sizeof(n), &n};
    if ((rc = mdb_put(txn, dbi, &ck, &cv, 0))) die("mdb_put ctr", rc);
    char name[32];
    snprintf(name, sizeof(name), "k%012llu", (unsigned long long)n);
    MDB_val k = text_key(name), v = {kValueSize, value};
    value_of(n, n, value);
    if ((rc = mdb_put(txn, dbi, &k, &v, 0))) die("mdb_put", rc);
    if ((rc = mdb_txn_commit(txn))) die("mdb_txn_commit", rc);
    printf("counted %llu\n", (unsigned long long)n);
  }
  mdb_env_close(env);
  return 0;
}

static int count_read(const char *dir, int seconds) {
  MDB_env *env = open_env(dir, 0);
  const time_t end = time(NULL) + seconds;
  long reads = 0, bad = 0;
  unsigned char want[kValueSize];
  while (time(NULL) < end) {
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0) continue;
    if (mdb_dbi_open(txn, NULL, 0, &dbi) != 0 || mdb_cursor_open(txn, dbi, &cur) != 0) {
      mdb_txn_abort(txn);
      continue;
    }
    MDB_val ck = text_key("ctr"), cv;
    uint64_t n = 0;
    if (mdb_get(txn, dbi, &ck, &cv) == 0 && cv.mv_size == sizeof(n)) memcpy(&n, cv.mv_data, sizeof(n));
    uint64_t records = 0;
    int torn = 0;
    MDB_val k = text_key("k"), v;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && k.mv_size > 0 &&
                                                             ((const char *)k.mv_data)[0] == 'k';
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      records++;
      char digits[32] = {0};  /* the key is not NUL-terminated in the page */
      memcpy(digits, (const char *)k.mv_data + 1, k.mv_size - 1 < sizeof(digits) - 1 ? k.mv_size - 1 : sizeof(digits) - 1);
      const uint64_t id = strtoull(digits, NULL, 10);
      value_of(id, id, want);
      if (v.mv_size != kValueSize || memcmp(v.mv_data, want, kValueSize) != 0) torn = 1;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    reads++;
    if (records != n || torn) {
      if (bad < 5) printf("bad: counter %llu, %llu records%s\n", (unsigned long long)n,
                          (unsigned long long)records, torn ? ", a value torn" : "");
      bad++;
    }
  }
  mdb_env_close(env);
  printf("reads %ld bad %ld\n", reads, bad);
  return bad > 0 ? 1 : 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if ((argc == 6 || argc == 7) && strcmp(argv[1], "load") == 0) {
    return load(argv[2], argv[3], strtoull(argv[4], NULL, 10), argv[5],
                argc == 7 ? atoi(argv[6]) : 0);
  }
  if (argc == 4 && strcmp(argv[1], "verify") == 0) {
    return verify(argv[2], strtoull(argv[3], NULL, 10));
  }
  if (argc == 4 && strcmp(argv[1], "count-write") == 0) {
    return count_write(argv[2], strtoull(argv[3], NULL, 10));
  }
  if (argc == 4 && strcmp(argv[1], "count-read") == 0) return count_read(argv[2], atoi(argv[3]));
  fprintf(stderr, "usage: lmdb_workload load DIR writemap|default TXNS REGION_NAME [READERS] | verify DIR TXNS | "
                  "count-write DIR TXNS | count-read DIR SECONDS\n");
  return 2;
}
