#!/usr/bin/env bash
# Databases on sealed files (issue 11): LMDB and SQLite, one run, side by
# side on
#   (a) tmpfs (a directory in /dev/shm: the floor, nothing is durable),
#   (b) sealfs through FUSE (emulate_pmem region file in /dev/shm),
#   (c) the same mount under sealfs-run (libsealfs-preload): direct maps,
#       windows for pread/pwrite, commits answered by the library, all on
#       exclusive leases, which the program alone using its files gets
#       (docs/preload.md "One process or several"; a database another
#       process has open runs as in (b)).
# Prints a Markdown table: load time, random durable updates per second
# (one update per transaction), random reads per second.
#
#   bench/preload/run.sh                    RECORDS=500000 UPDATES=20000
#   RECORDS=100000 UPDATES=5000 bench/preload/run.sh   (quicker)
#
# LMDB runs in its default mode (read-only map, pwrite + fdatasync) and with
# MDB_WRITEMAP (stores into the map, msync); SQLite with mmap_size 1 GiB in
# WAL and DELETE journal modes, synchronous=FULL. Each cell is one run
# (the same programs, bench/preload/*.c, with the same seed).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
RECORDS=${RECORDS:-500000}
UPDATES=${UPDATES:-20000}
SQLITE_UPDATES=${SQLITE_UPDATES:-$UPDATES}
# Which columns to run (any of: tmpfs fuse sealfs-run).
WHERE=${WHERE:-tmpfs fuse sealfs-run}

lmdb=$build/bench/preload/lmdb_bench
sqlite=$build/bench/preload/sqlite_bench
run=$build/src/preload/sealfs-run
export SEALFS_PRELOAD_LIBRARY=$build/src/preload/libsealfs-preload.so
ninja -C "$build" bench/preload/lmdb_bench bench/preload/sqlite_bench src/fuse/sealfs \
  src/tools/mkfs.sealfs src/preload/libsealfs-preload.so >/dev/null

scratch=$(mktemp -d /dev/shm/sealfs-pbench-XXXXXX)
mnt=$(mktemp -d /tmp/sealfs-pbench-mnt-XXXXXX)
cleanup() {
  if mountpoint -q "$mnt"; then umount "$mnt" 2>/dev/null || fusermount3 -u "$mnt"; fi
  rm -rf "$scratch"
  rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT
region=$scratch/sealfs.region
truncate -s 4G "$region"
"$build/src/tools/mkfs.sealfs" -f --size 4G "$region" >/dev/null 2>&1
"$build/src/fuse/sealfs" -o emulate_pmem "$region" "$mnt"
mountpoint -q "$mnt" || { echo "run.sh: sealfs did not mount" >&2; exit 1; }
mkdir "$scratch/tmpfs"

# One cell: the program's line, as "load_s | updates/s | reads/s".
cell() {
  local out
  out=$("$@") || { echo "run.sh: failed: $*" >&2; exit 1; }
  sed -E 's/load_s=([0-9.]+) update_ops=([0-9]+) read_ops=([0-9]+).*/\1 s | \2 | \3/' <<<"$out"
}

echo "| workload | where | load | updates/s | reads/s |"
echo "|---|---|---|---|---|"
n=0
for mode in default writemap; do
  for where in $WHERE; do
    n=$((n + 1))
    case $where in
      tmpfs) dir=$scratch/tmpfs/lmdb$n; prefix=() ;;
      fuse) dir=$mnt/lmdb$n; prefix=() ;;
      sealfs-run) dir=$mnt/lmdb$n; prefix=("$run") ;;
    esac
    mkdir "$dir"
    echo "| LMDB $mode, $RECORDS records | $where | $(cell "${prefix[@]}" "$lmdb" "$dir" "$mode" "$RECORDS" "$UPDATES") |"
  done
done
for mode in wal delete; do
  for where in $WHERE; do
    n=$((n + 1))
    case $where in
      tmpfs) db=$scratch/tmpfs/db$n; prefix=() ;;
      fuse) db=$mnt/db$n; prefix=() ;;
      sealfs-run) db=$mnt/db$n; prefix=("$run") ;;
    esac
    echo "| SQLite $mode, $RECORDS rows | $where | $(cell "${prefix[@]}" "$sqlite" "$db" "$mode" "$RECORDS" "$SQLITE_UPDATES") |"
  done
done
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), RECORDS=$RECORDS UPDATES=$UPDATES SQLITE_UPDATES=$SQLITE_UPDATES"
