#!/usr/bin/env bash
# Page-cache rows for two sealfs daemons side by side (issue 14 item 6: what
# turning off auto_inval_data and keeping the cache at some opens costs or
# saves). The two binaries take turns, round by round, each on a fresh
# region in /dev/shm (emulate_pmem) and a fresh mount, so a busy machine
# weighs on both alike; compare only within one run. Prints one line per
# daemon and round, and the load average before and after.
#
#   bench/fuse/page_cache_ab.sh A_SEALFS B_SEALFS [ROUNDS]
#
# Environment: MKFS_BIN (default build/src/tools/mkfs.sealfs), SECONDS_PER_ROW
# (default 5), MIB (file size, default 64). Needs fio and /dev/fuse.
#
# Rows (fio, 4 KiB, psync, buffered, --invalidate=0 so that fio itself does
# not drop the page cache; all on one file written with dd first):
# - randrw: one job, random reads and writes 50/50 (read + write IOPS);
# - randread: one job, random reads of the file (cached after dd);
# - writer+reader: a random-write job beside a random-read job on the same
#   file (write IOPS, read IOPS).
set -euo pipefail

a_bin=${1:?usage: $0 A_SEALFS B_SEALFS [ROUNDS]}
b_bin=${2:?usage: $0 A_SEALFS B_SEALFS [ROUNDS]}
rounds=${3:-3}
here=$(cd "$(dirname "$0")/../.." && pwd)
mkfs=${MKFS_BIN:-$here/build/src/tools/mkfs.sealfs}
secs=${SECONDS_PER_ROW:-5}
mib=${MIB:-64}

work=$(mktemp -d /dev/shm/page_cache_ab.XXXXXX)
mnt=$work/mnt
img=$work/region.img
mkdir -p "$mnt"
cleanup() {
  fusermount3 -u "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fio_row() {  # prints the terse lines of one fio run
  fio --output-format=terse --terse-version=3 "$@" 2>/dev/null | grep '^3;'
}

common=(--size="${mib}M" --bs=4k --ioengine=psync --direct=0 --invalidate=0 --time_based
        --runtime="$secs")

run_one() {  # binary label
  local bin=$1 label=$2
  rm -f "$img"
  truncate -s $((mib * 4 + 1024))M "$img"
  "$mkfs" "$img" >/dev/null 2>&1
  "$bin" -o emulate_pmem "$img" "$mnt" 2>/dev/null
  local f=$mnt/f
  dd if=/dev/urandom of="$f" bs=1M count="$mib" status=none
  # Terse v3: field 3 job name, 8 read IOPS, 49 write IOPS.
  local randrw randread mixed
  randrw=$(fio_row --name=rw --filename="$f" --rw=randrw "${common[@]}" |
           awk -F';' '{print $8 + $49}')
  randread=$(fio_row --name=r --filename="$f" --rw=randread "${common[@]}" |
             awk -F';' '{print $8}')
  mixed=$(fio_row --name=w --filename="$f" --rw=randwrite "${common[@]}" \
                  --name=r --filename="$f" --rw=randread "${common[@]}" |
          awk -F';' '$3 == "w" {w = $49} $3 == "r" {r = $8} END {print w " " r}')
  fusermount3 -u "$mnt"
  echo "$label randrw=$randrw randread=$randread writer+reader(write read)=$mixed"
}

echo "$(date -u '+%F %H:%M UTC'), ${mib} MiB file, ${secs} s per row, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$rounds"); do
  run_one "$a_bin" A
  run_one "$b_bin" B
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
