#!/usr/bin/env bash
# FUSE-path benchmark: sealfs, tmpfs and bindfs side by side in one run, all
# storing their data in the same tmpfs (/dev/shm), so the differences are
# the FUSE path and the daemons themselves. Prints a Markdown table with
# absolute numbers and each peer's ratio to tmpfs.
#
#   bench/fuse/run.sh            full run (100,000 files, 1 GiB file, 10 s per random row)
#   QUICK=1 bench/fuse/run.sh    a quick run (10,000 files, 128 MiB, 3 s)
#
# Environment: FILES, SEQ_MIB, REQ_KIB (default 1024), RAND_SECONDS, PEERS
# (default "tmpfs bindfs sealfs"), SEQ_DIRECT=1 (O_DIRECT sequential reads),
# REGION_SIZE (sealfs region, default 2*SEQ_MIB+1024 MiB), BUILD_DIR, OUT
# (also write the table to this file).
#
# How each row is measured:
# - creates/stats/unlinks: one thread, one directory, openat(O_CREAT|O_EXCL)
#   + close, fstatat, unlinkat over FILES names (bench/fuse/fsbench.cc).
# - sequential write: one thread, REQ_KIB write(2)s, then fsync, all timed.
# - sequential read: the file is reopened after `sync; echo 3 >
#   /proc/sys/vm/drop_caches` (when root), so FUSE peers serve it from their
#   daemon, not from the page cache left by the write; buffered read(2)s of
#   REQ_KIB (O_DIRECT with SEQ_DIRECT=1). tmpfs's page cache is its storage.
# - 4 KiB random reads/writes: fio, psync, O_DIRECT (so every request reaches
#   the daemon), on the sequential file, 1 and 2 threads, RAND_SECONDS each.
# - sealfs runs with -o emulate_pmem on a region file in /dev/shm; bindfs
#   with its defaults (single-threaded).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
if [ "${QUICK:-0}" = 1 ]; then
  FILES=${FILES:-10000} SEQ_MIB=${SEQ_MIB:-128} RAND_SECONDS=${RAND_SECONDS:-3}
else
  FILES=${FILES:-100000} SEQ_MIB=${SEQ_MIB:-1024} RAND_SECONDS=${RAND_SECONDS:-10}
fi
REQ_KIB=${REQ_KIB:-1024}
PEERS=${PEERS:-"tmpfs bindfs sealfs"}
REGION_SIZE=${REGION_SIZE:-$((SEQ_MIB * 2 + 1024))M}
SEQ_DIRECT=${SEQ_DIRECT:-0}

command -v fio >/dev/null && command -v bindfs >/dev/null || "$top/scripts/install-deps.sh"

scratch=$(mktemp -d /dev/shm/sealfs-bench-XXXXXX)
mounts=$(mktemp -d /tmp/sealfs-bench-mnt-XXXXXX)
results=$scratch/results.tsv
: >"$results"

unmount() {
  mountpoint -q "$1" || return 0
  if [ "$(id -u)" -eq 0 ]; then umount "$1"; else fusermount3 -u "$1"; fi
}
cleanup() {
  for m in "$mounts"/*; do [ -d "$m" ] && unmount "$m" || true; done
  rm -rf "$scratch" "$mounts"
}
trap cleanup EXIT

fsbench=$build/bench/fuse/fsbench
if [ ! -x "$fsbench" ] && [ -f "$build/build.ninja" ]; then
  ninja -C "$build" bench/fuse/fsbench >/dev/null 2>&1 || true
fi
if [ ! -x "$fsbench" ]; then
  # bench/fuse not in this build yet: the helper is one self-contained file.
  fsbench=$scratch/fsbench
  g++ -std=c++20 -O2 -D_GNU_SOURCE "$top/bench/fuse/fsbench.cc" -o "$fsbench"
fi

drop_caches() {
  sync
  if [ "$(id -u)" -eq 0 ]; then echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi
}

record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; }

# Prints the directory the peer serves, after mounting it if needed.
setup_peer() {
  case $1 in
    tmpfs)
      mkdir "$scratch/tmpfs" && echo "$scratch/tmpfs" ;;
    bindfs)
      mkdir "$scratch/bindfs-src" "$mounts/bindfs"
      bindfs "$scratch/bindfs-src" "$mounts/bindfs" && echo "$mounts/bindfs" ;;
    sealfs)
      local sealfs_bin=${SEALFS_BIN:-$build/src/fuse/sealfs}
      local mkfs_bin=${MKFS_BIN:-$build/src/tools/mkfs.sealfs}
      if [ ! -x "$sealfs_bin" ] || [ ! -x "$mkfs_bin" ]; then
        echo "run.sh: sealfs or mkfs.sealfs not built in $build; skipping sealfs" >&2
        return 1
      fi
      truncate -s "$REGION_SIZE" "$scratch/sealfs.region"
      "$mkfs_bin" -f --size "$REGION_SIZE" "$scratch/sealfs.region" >/dev/null
      mkdir "$mounts/sealfs"
      "$sealfs_bin" -o emulate_pmem "$scratch/sealfs.region" "$mounts/sealfs" &&
        mountpoint -q "$mounts/sealfs" && echo "$mounts/sealfs" ;;
    *) echo "run.sh: unknown peer $1" >&2; return 1 ;;
  esac
}

teardown_peer() {
  case $1 in
    bindfs|sealfs) unmount "$mounts/$1" ;;
  esac
  rm -rf "${scratch:?}/$1" "$scratch/$1-src" "$scratch/$1.region"
}

fio_iops() {  # DIR RW THREADS
  fio --name=rand --filename="$1/seq.dat" --size="${SEQ_MIB}M" --rw="$2" --bs=4k \
      --direct=1 --ioengine=psync --numjobs="$3" --group_reporting --time_based \
      --runtime="$RAND_SECONDS" --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print(round(j["read"]["iops"]+j["write"]["iops"]))'
}

for peer in $PEERS; do
  echo "== $peer" >&2
  dir=$(setup_peer "$peer") || continue
  mkdir "$dir/meta"
  while read -r name value; do record "$peer" "$name" "$value"; done \
    < <("$fsbench" meta "$dir/meta" "$FILES")
  rmdir "$dir/meta"
  while read -r name value; do record "$peer" "$name" "$value"; done \
    < <("$fsbench" write "$dir/seq.dat" "$SEQ_MIB" "$REQ_KIB")
  drop_caches
  while read -r name value; do record "$peer" "$name" "$value"; done \
    < <("$fsbench" read "$dir/seq.dat" "$REQ_KIB" "$([ "$SEQ_DIRECT" = 1 ] && echo direct)")
  for rw in randread randwrite; do
    for threads in 1 2; do
      record "$peer" "${rw}_$threads" "$(fio_iops "$dir" "$rw" "$threads")"
    done
  done
  rm -f "$dir/seq.dat"
  teardown_peer "$peer"
done

table=$(python3 - "$results" "$PEERS" <<PY
import sys
rows = {}
for line in open(sys.argv[1]):
    peer, name, value = line.rstrip("\n").split("\t")
    rows.setdefault(name, {})[peer] = float(value)
peers = [p for p in sys.argv[2].split() if any(p in r for r in rows.values())]
labels = [
    ("creates_per_s", "creates/s ($FILES files, one dir)"),
    ("stats_per_s", "stats/s"),
    ("unlinks_per_s", "unlinks/s"),
    ("write_mib_per_s", "seq write MiB/s ($SEQ_MIB MiB, ${REQ_KIB} KiB req, + fsync)"),
    ("read_mib_per_s", "seq read MiB/s (${REQ_KIB} KiB req, cold)"),
    ("randread_1", "4 KiB random reads/s, 1 thread"),
    ("randread_2", "4 KiB random reads/s, 2 threads"),
    ("randwrite_1", "4 KiB random writes/s, 1 thread"),
    ("randwrite_2", "4 KiB random writes/s, 2 threads"),
]
head = ["workload"]
for p in peers:
    head += [p] + ([p + "/tmpfs"] if p != "tmpfs" and "tmpfs" in peers else [])
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for key, label in labels:
    r = rows.get(key, {})
    cells = [label]
    for p in peers:
        v = r.get(p)
        cells.append("-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}")
        if p != "tmpfs" and "tmpfs" in peers:
            t = r.get("tmpfs")
            cells.append("-" if v is None or not t else f"{v / t:.2f}")
    print("| " + " | ".join(cells) + " |")
PY
)
echo
echo "FUSE path, $(date -u +%Y-%m-%d), kernel $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "$table"
if [ -n "${OUT:-}" ]; then echo "$table" >"$OUT"; fi
