#!/usr/bin/env bash
# Scale benchmark (issue 12): many small files, and large empty regions.
# Prints a Markdown table, each figure beside the issue's goal.
#
#   bench/scale/run.sh                 100,000 files of 100 bytes in 1000 directories
#   FILES=1000000 bench/scale/run.sh   the issue's million (region 64 GiB)
#
# Environment: FILES, DIRS (1000), REGION_SIZE (16G; 64G from 500,000
# files), STORE (where the populated region lives: /dev/shm, DRAM as pmem
# would be; the region is made sparse, so STORE needs room for what the
# files use (their directories' blocks; files of up to 144 bytes take no
# block of their own), not for REGION_SIZE), EMPTY_STORE
# (where the empty 64 GiB and 1 TiB regions live: /var/tmp, a disk
# filesystem, so that a read of a hole costs page cache and not pinned
# memory), BUILD_DIR, OUT (also write the report there),
# MOUNT_OPTS (more -o options of the daemon, e.g. background_verify).
#
# How each figure is taken:
# - create rate: one Python process, open(O_CREAT|O_EXCL)+write(100 B)+close
#   per file, directories made first; files / wall time.
# - region bytes per file: (used blocks after - before) * block size / FILES,
#   from statfs of the mount.
# - mount until live: from starting the daemon (it returns once the mount is
#   live) to a successful stat(2) of the last file made.
# - daemon anonymous memory per inode: RssAnon of /proc/PID/status after the
#   remount (once it has not changed for 2 s: the inode cache's thread drops
#   what the mount's verification read past the bound), after `find` has
#   read every directory (it looks up no file: it needs only the entries'
#   types), after `find -type f -size +0` has looked every file up (the
#   kernel then holds every inode, which no bound can drop), and after
#   `echo 2 > /proc/sys/vm/drop_caches` made the kernel forget them (once
#   RssAnon has settled; root only), divided by FILES (the mapped region is
#   not anonymous and not counted).
# - mount until changes are accepted: the same start to a successful
#   statfs (stat -f), which waits for a background verifier; without
#   background_verify it is the mount until live plus one request.
# - unmount until exit: from starting `umount` to the daemon being a zombie
#   or gone (the reaping of the zombie is its parent's business: on this VM
#   PID 1 reaps about a second later). The daemon learns of the unmount at
#   its start; `umount` itself returns once the kernel has dropped its own
#   dentries and inodes of the mount, which is kernel work in proportion to
#   what the kernel cached (a figure of its own, "umount returns").
# - find: `find MOUNT | wc -l` right after the remount (cold kernel caches).
# - fsck: `fsck.sealfs -n` of the unmounted region.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
FILES=${FILES:-100000}
DIRS=${DIRS:-1000}
if [ -z "${REGION_SIZE:-}" ]; then
  if [ "$FILES" -ge 500000 ]; then REGION_SIZE=64G; else REGION_SIZE=16G; fi
fi
STORE=${STORE:-/dev/shm}
opts=emulate_pmem${MOUNT_OPTS:+,$MOUNT_OPTS}
EMPTY_STORE=${EMPTY_STORE:-/var/tmp}
sealfs=$build/src/fuse/sealfs
mkfs=$build/src/tools/mkfs.sealfs
fsck=$build/fsck/fsck.sealfs
for b in "$sealfs" "$mkfs" "$fsck"; do
  [ -x "$b" ] || { echo "run.sh: $b is not built (ninja -C $build)" >&2; exit 1; }
done

scratch=$(mktemp -d "$STORE/sealfs-scale-XXXXXX")
empty=$(mktemp -d "$EMPTY_STORE/sealfs-scale-empty-XXXXXX")
mnt=$(mktemp -d /tmp/sealfs-scale-mnt-XXXXXX)
cleanup() {
  mountpoint -q "$mnt" && umount "$mnt"
  rm -rf "$scratch" "$empty"
  rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { printf '%.3f' "$(echo "$(now) - $1" | bc)"; }
daemon_pid() { pgrep -n -f -- "$sealfs -o $opts $1 " || pgrep -n -f -- "$sealfs -o $opts $1\$"; }
mount_region() {  # REGION: prints seconds until the mount is live
  local start
  start=$(now)
  "$sealfs" -o "$opts" "$1" "$mnt" 2>/dev/null
  since "$start"
}
unmount_region() {  # PID: prints seconds until the daemon has exited, then until umount returned
  local start state umount_pid daemon_s
  start=$(now)
  umount "$mnt" &
  umount_pid=$!
  while state=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${state:0:1}" != Z ]; do sleep 0.01; done
  daemon_s=$(since "$start")
  wait "$umount_pid"
  echo "$daemon_s $(since "$start")"
}
used_bytes() { stat -f -c '%b %f %S' "$mnt" | awk '{printf "%.0f\n", ($1 - $2) * $3}'; }
rss_kib() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }
# RssAnon once it has not changed for two seconds (the forgets arrive and
# the daemon's cache thread works after drop_caches returns), 20 s at most.
settled_rss_kib() {
  local last="" now_kib same=0 i
  for i in $(seq 80); do
    now_kib=$(rss_kib "$1")
    if [ "$now_kib" = "$last" ]; then same=$((same + 1)); else same=0; fi
    [ "$same" -ge 8 ] && break
    last=$now_kib
    sleep 0.25
  done
  echo "$now_kib"
}

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 |"); }  # what, value, goal, met
met() { if [ "$(echo "$1" | bc)" = 1 ]; then echo yes; else echo no; fi; }
# A goal stated for a million files is judged only on a run of that size.
met_at_million() { if [ "$FILES" -ge 1000000 ]; then met "$1"; else echo "n/a (FILES < 1M)"; fi; }

echo "== $FILES files of 100 bytes in $DIRS directories, $REGION_SIZE region in $STORE" >&2
region=$scratch/region
truncate -s "$REGION_SIZE" "$region"
chmod 0600 "$region"
inodes=$((FILES + FILES / 4 + DIRS + 1024))
"$mkfs" -f -q --sparse-ok -N "$inodes" --size "$REGION_SIZE" "$region"
mount_region "$region" >/dev/null
before=$(used_bytes)
start=$(now)
python3 - "$mnt" "$FILES" "$DIRS" <<'PY'
import os, sys
top, files, dirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in range(dirs):
    os.mkdir(f"{top}/d{d:04}")
data = b"x" * 100
for i in range(files):
    fd = os.open(f"{top}/d{i % dirs:04}/f{i:08}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, data)
    os.close(fd)
PY
create_s=$(since "$start")
after=$(used_bytes)
last="$mnt/d$(printf %04d $(((FILES - 1) % DIRS)))/f$(printf %08d $((FILES - 1)))"
pid=$(daemon_pid "$region")
read -r unmount_populated_s umount_populated_s < <(unmount_region "$pid")

start=$(now)
"$sealfs" -o "$opts" "$region" "$mnt" 2>/dev/null
stat "$last" >/dev/null
mount_s=$(since "$start")
stat -f "$mnt" >/dev/null
verified_s=$(since "$start")
pid=$(daemon_pid "$region")
rss_mount=$(settled_rss_kib "$pid")  # once the cache's thread has cut the mount's read to the bound
start=$(now)
found=$(find "$mnt" | wc -l)
find_s=$(since "$start")
rss_find=$(rss_kib "$pid")
# A stat of every file: the kernel looks each up and holds it (find alone
# reads directories and their entries' types, and looks up no file).
start=$(now)
find "$mnt" -type f -size +0 >/dev/null
stat_all_s=$(since "$start")
rss_stat=$(rss_kib "$pid")
# The kernel drops its unused dentries and inodes, and sends a FORGET for
# each: what the daemon keeps of them after that is its cache's bound.
rss_drop=""
if sync && echo 2 2>/dev/null >/proc/sys/vm/drop_caches; then
  rss_drop=$(settled_rss_kib "$pid")
fi
read -r unmount_s umount_s < <(unmount_region "$pid")
start=$(now)
"$fsck" -n "$region" >/dev/null
fsck_s=$(since "$start")

create_rate=$(echo "$FILES / $create_s" | bc)
per_file=$(echo "($after - $before) / $FILES" | bc)
b_mount=$(echo "$rss_mount * 1024 / $FILES" | bc)
b_find=$(echo "$rss_find * 1024 / $FILES" | bc)
b_stat=$(echo "$rss_stat * 1024 / $FILES" | bc)
row "creates/s ($FILES files of 100 B)" "$create_rate" "-" "-"
row "region bytes per 100-byte file" "$per_file" "well under 1024" "$(met "$per_file < 1024")"
row "mount until stat of a known path works, s" "$mount_s" "<= 1 (1M files)" "$(met_at_million "$mount_s <= 1")"
row "mount until statfs answers (changes accepted), s" "$verified_s" "-" "-"
row "daemon anonymous memory per inode after mount, bytes" "$b_mount" "<= 200" "$(met "$b_mount <= 200")"
row "same after find read every directory, bytes" "$b_find" "<= 200" "$(met "$b_find <= 200")"
row "same after a stat of every file (the kernel holds every inode), bytes" "$b_stat" "<= 200" "$(met "$b_stat <= 200")"
if [ -n "$rss_drop" ]; then
  b_drop=$(echo "$rss_drop * 1024 / $FILES" | bc)
  row "same after the kernel forgot them (drop_caches), bytes" "$b_drop" "<= 200" "$(met "$b_drop <= 200")"
else
  row "same after the kernel forgot them (drop_caches), bytes" "n/a (needs root)" "<= 200" "-"
fi
row "find of the whole tree ($found entries), s" "$find_s" "-" "-"
row "stat of every file (find -type f -size +0), s" "$stat_all_s" "-" "-"
row "unmount until the daemon exits (after create), s" "$unmount_populated_s" "< 1 (1M clean)" "$(met_at_million "$unmount_populated_s < 1")"
row "unmount until the daemon exits (after find), s" "$unmount_s" "< 1 (1M clean)" "$(met_at_million "$unmount_s < 1")"
row "umount(8) returns (after create; kernel cache teardown), s" "$umount_populated_s" "-" "-"
row "umount(8) returns (after find; kernel cache teardown), s" "$umount_s" "-" "-"
row "fsck -n, s" "$fsck_s" "-" "-"
rm -f "$region"

for size in 64G 1T; do
  echo "== empty $size region in $EMPTY_STORE" >&2
  r=$empty/region-$size
  truncate -s "$size" "$r"
  chmod 0600 "$r"
  "$mkfs" -f -q --sparse-ok --size "$size" "$r"
  m_s=$(mount_region "$r")
  pid=$(daemon_pid "$r")
  rss=$(rss_kib "$pid")
  read -r u_s _ < <(unmount_region "$pid")
  start=$(now)
  "$fsck" -n "$r" >/dev/null
  f_s=$(since "$start")
  touched=$(du -k "$r" | cut -f1)
  goal="-"; ok="-"
  if [ "$size" = 1T ]; then goal="< 0.5"; ok=$(met "$m_s < 0.5"); fi
  row "empty $size: mount until live, s" "$m_s" "$goal" "$ok"
  goal_touch="-"; ok_touch="-"
  if [ "$size" = 1T ]; then goal_touch="< 64"; ok_touch=$(met "$touched / 1024 < 64"); fi
  row "empty $size: region allocated after mkfs+mount+fsck, MiB" "$((touched / 1024))" "$goal_touch" "$ok_touch"
  row "empty $size: daemon anonymous memory, MiB" "$((rss / 1024))" "-" "-"
  row "empty $size: unmount until exit, s" "$u_s" "-" "-"
  row "empty $size: fsck -n, s" "$f_s" "-" "-"
  rm -f "$r"
done

{
  echo "Scale: $(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: FILES=$FILES DIRS=$DIRS REGION_SIZE=$REGION_SIZE STORE=$STORE EMPTY_STORE=$EMPTY_STORE MOUNT_OPTS=${MOUNT_OPTS:-}"
  echo
  echo "| figure | value | goal (issue 12) | met |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee ${OUT:+"$OUT"}
