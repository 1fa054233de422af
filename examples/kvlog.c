/* kvlog: a small persistent key-value log on a sealfs file, written through
 * libsealfs's native API (docs/protocol.md, "The native API"):
 *
 *   - the file is created preallocated and zeroed (SEALFS_MAP_ALLOCATE |
 *     SEALFS_MAP_RELOCATE) and mapped with address space reserved behind
 *     it (sealfs_map_reserve), so it can grow in place;
 *   - a record and the log's tail word in the header are made durable
 *     together, with one fence (sealfs_persist_ranges);
 *   - when the log is full the file grows under the live mapping
 *     (sealfs_extend): no break, no remap, the same addresses.
 *
 *   kvlog FILE append COUNT   appends COUNT records after the ones there;
 *                             prints "ack SEQ" once record SEQ is durable,
 *                             and "grown BYTES" after each sealfs_extend
 *   kvlog FILE check          reads the log back: "records N" when every
 *                             record holds what its sequence number says,
 *                             exit status 1 otherwise
 *
 * Layout: a 4 KiB header {magic, tail}, then records {u64 seq, u32 len,
 * u32 0, u64 sum, payload padded to 8 bytes}. The tail only says how far
 * to look: a record counts if its sum matches, so a record torn by a crash
 * (its bytes and the tail share one fence, in no order) is never taken for
 * a committed one. A record is acknowledged only after its fence.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sealfs/sealfs.h>

#define HEADER_BYTES 4096u
#define INITIAL_BYTES (64u << 10)
#define RESERVE_BYTES (1ull << 30)
#define VALUE_BYTES 100u
static const char kMagic[8] = "SEALKVL";

struct header {
  char magic[8];
  uint64_t tail; /* end of the last record written (a hint) */
};

struct record {
  uint64_t seq;
  uint32_t len; /* payload bytes */
  uint32_t zero;
  uint64_t sum; /* FNV-1a over seq, len and the payload */
};

struct log {
  int fd;
  struct sealfs_map *map;
  char *base;
  size_t length;
  uint64_t next_seq;
  uint64_t end; /* where the next record goes */
};

static uint64_t fnv1a(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static uint64_t record_sum(const struct record *r, const char *payload) {
  uint64_t h = 14695981039346656037ull;
  h = fnv1a(h, &r->seq, sizeof r->seq);
  h = fnv1a(h, &r->len, sizeof r->len);
  return fnv1a(h, payload, r->len);
}

static size_t padded(size_t n) { return (n + 7u) & ~(size_t)7u; }

/* What record `seq` holds: "key-SEQ=" and VALUE_BYTES letters from seq. */
static size_t make_payload(uint64_t seq, char *out) {
  int n = snprintf(out, 64, "key-%" PRIu64 "=", seq);
  for (unsigned i = 0; i < VALUE_BYTES; ++i) out[n + i] = (char)('a' + (seq * 31u + i) % 26u);
  return (size_t)n + VALUE_BYTES;
}

static void die(const char *what, int err) {
  fprintf(stderr, "kvlog: %s: %s (%s)\n", what, strerror(err < 0 ? -err : err), sealfs_last_error());
  exit(2);
}

static void say(const char *line) {
  /* One write(2) per line: a reader sees whole lines even after SIGKILL. */
  size_t left = strlen(line);
  while (left > 0) {
    ssize_t n = write(STDOUT_FILENO, line, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) exit(3);
    line += n;
    left -= (size_t)n;
  }
}

/* Scans the records from the header on; stops at the first one whose sum
 * or sequence number is wrong. */
static void recover(struct log *l) {
  uint64_t at = HEADER_BYTES, seq = 0;
  char payload[256];
  for (;;) {
    struct record r;
    if (at + sizeof r > l->length) break;
    memcpy(&r, l->base + at, sizeof r);
    if (r.seq != seq || r.len == 0 || r.len > sizeof payload || r.zero != 0 ||
        at + sizeof r + padded(r.len) > l->length) {
      break;
    }
    memcpy(payload, l->base + at + sizeof r, r.len);
    if (record_sum(&r, payload) != r.sum) break;
    at += sizeof r + padded(r.len);
    ++seq;
  }
  l->end = at;
  l->next_seq = seq;
}

static void open_log(struct log *l, const char *path, int create) {
  l->fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
  if (l->fd < 0) die(path, errno);
  struct stat st;
  if (fstat(l->fd, &st) != 0) die("fstat", errno);
  const int fresh = st.st_size == 0;
  if (fresh && ftruncate(l->fd, INITIAL_BYTES) != 0) die("ftruncate", errno);
  l->length = fresh ? INITIAL_BYTES : (size_t)st.st_size;
  /* Preallocated, zeroed, aligned blocks; room to grow in place. */
  int r = sealfs_map_reserve(l->fd, 0, l->length, RESERVE_BYTES, PROT_READ | PROT_WRITE,
                             SEALFS_MAP_ALLOCATE | SEALFS_MAP_RELOCATE, &l->map);
  if (r != 0) die("sealfs_map_reserve", r);
  l->base = sealfs_map_addr(l->map);
  struct header *h = (struct header *)l->base;
  if (fresh || memcmp(h->magic, kMagic, sizeof kMagic) != 0) {
    memcpy(h->magic, kMagic, sizeof kMagic);
    h->tail = HEADER_BYTES;
    if ((r = sealfs_persist(l->map, h, sizeof *h)) != 0) die("sealfs_persist", r);
  }
  recover(l);
}

static void append(struct log *l) {
  char payload[256], line[64];
  struct record r = {l->next_seq, 0, 0, 0};
  r.len = (uint32_t)make_payload(r.seq, payload);
  r.sum = record_sum(&r, payload);
  const size_t bytes = sizeof r + padded(r.len);
  if (l->end + bytes > l->length) {
    /* Double the file under the live mapping: no break, same address. */
    int rc = sealfs_extend(l->map, l->fd, l->length * 2);
    if (rc != 0) die("sealfs_extend", rc);
    if (sealfs_map_addr(l->map) != l->base) die("sealfs_extend moved the mapping", EFAULT);
    l->length = sealfs_map_length(l->map);
    snprintf(line, sizeof line, "grown %zu\n", l->length);
    say(line);
  }
  char *at = l->base + l->end;
  memcpy(at + sizeof r, payload, r.len);
  memcpy(at, &r, sizeof r);
  struct header *h = (struct header *)l->base;
  h->tail = l->end + bytes;
  /* The record and the tail word: two ranges, one fence. */
  struct sealfs_range ranges[2] = {{at, bytes}, {&h->tail, sizeof h->tail}};
  int rc = sealfs_persist_ranges(l->map, ranges, 2);
  if (rc != 0) die("sealfs_persist_ranges", rc);
  snprintf(line, sizeof line, "ack %" PRIu64 "\n", r.seq);
  say(line);
  l->end += bytes;
  l->next_seq++;
}

static int check(struct log *l) {
  char want[256];
  uint64_t at = HEADER_BYTES;
  for (uint64_t seq = 0; seq < l->next_seq; ++seq) {
    struct record r;
    memcpy(&r, l->base + at, sizeof r);
    size_t n = make_payload(seq, want);
    if (r.len != n || memcmp(l->base + at + sizeof r, want, n) != 0) {
      printf("record %" PRIu64 " holds the wrong bytes\n", seq);
      return 1;
    }
    at += sizeof r + padded(r.len);
  }
  printf("records %" PRIu64 "\n", l->next_seq);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3 || (strcmp(argv[2], "append") == 0 && argc != 4) ||
      (strcmp(argv[2], "append") != 0 && strcmp(argv[2], "check") != 0)) {
    fprintf(stderr, "usage: kvlog FILE append COUNT | kvlog FILE check\n");
    return 2;
  }
  struct log l;
  const int appending = strcmp(argv[2], "append") == 0;
  open_log(&l, argv[1], appending);
  int status = 0;
  if (appending) {
    const unsigned long long count = strtoull(argv[3], NULL, 10);
    for (unsigned long long i = 0; i < count; ++i) append(&l);
  } else {
    status = check(&l);
  }
  int r = sealfs_unmap(l.map);
  if (r != 0) die("sealfs_unmap", r);
  close(l.fd);
  return status;
}
