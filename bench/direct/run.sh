#!/usr/bin/env bash
# Direct-mapping benchmark (issue 4): in one run on one sealfs mount over an
# emulate_pmem region file in /dev/shm, prints a Markdown table of
#   (1) sequential read/write bandwidth of a 1 GiB direct mapping vs a raw
#       MAP_SHARED mmap of the region file (goal >= 0.97x);
#   (2) 4 KiB random load/store latency, direct vs raw (goal <= 1.05x);
#   (3) sealfs_map latency for files of 1, 16 and 256 extents (goal: median
#       <= 50 us at 16), beside the same mmap work done without the daemon,
#       the two taking turns map by map;
#   (4) truncate(2) round trip against a cooperative holder process (goal:
#       median <= 1 ms), beside the same truncate with no lease;
#   (5) the same workloads through read(2)/write(2) on the FUSE path.
#
#   bench/direct/run.sh            full run (1 GiB, 21 passes per bandwidth row)
#   QUICK=1 bench/direct/run.sh    a quick run (128 MiB, fewer repetitions)
#
#   PHASE=map bench/direct/run.sh  (3) alone, on a fresh mount
#   PHASE=map BASELINE_BUILD_DIR=DIR bench/direct/run.sh
#                                  (3) with DIR's daemon and libsealfs and
#                                  with this build's (this build's driver
#                                  for both), taking turns,
#                                  ROUNDS times each (default 3), each on a
#                                  fresh mount: a before/after table, medians
#                                  of the rounds' medians and p99s
#
# Environment: BUILD_DIR (default build), REGION_SIZE (default 3G, sparse),
# LEASE_BREAK_TIME (seconds, default 5: only a broken holder would wait it
# out), OUT (also write the table to this file).
#
# How each row is measured (details at the top of each bench/direct/*.cc):
# - Sequential: one thread pinned to its CPU, 32-byte AVX2 loads (read) and
#   32-byte stores, either non-temporal + sfence or ordinary (write); each
#   pass covers the whole 1 GiB; the median of 21 passes per side, the sides
#   alternating which goes first. The same rows are then run raw against a
#   second raw mapping of the same bytes (column "A/A"): how far apart two
#   equal sides land, i.e. the noise a direct/raw ratio must be read with.
#   Every page is touched once per side before anything is timed; the
#   "first pass" row times that pass on 7 fresh mappings per side
#   (sealfs_map / mmap each time, alternating sides), median.
# - Random: 4 KiB-aligned blocks at uniformly random offsets of the 1 GiB
#   range, 5 x 200,000 per side; a load reads the whole block, a store
#   writes it with non-temporal stores and an sfence; each op timed alone
#   with rdtsc/rdtscp (the timer's own cost is printed); the two sides take
#   turns op by op. Plus a pointer chase, one dependent 8-byte load per
#   random page, hops alternating between the sides. Median, p99 and mean:
#   these distributions are bimodal and their medians move between runs;
#   compare the sides within a run (and the A/A column), not across runs.
# - The raw peer maps the region file with the same reservation, alignment
#   and madvise calls libsealfs uses; over the same bytes when the file is
#   one physical run (the driver's stderr says whether it is).
# - FUSE rows: O_DIRECT pread/pwrite of 1 MiB (sequential, + fsync for
#   writes, median of 3) and of 4 KiB (random, 20,000 each, timed alone).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
REGION_SIZE=${REGION_SIZE:-3G}
LEASE_BREAK_TIME=${LEASE_BREAK_TIME:-5}
mode=$([ "${QUICK:-0}" = 1 ] && echo quick || true)

built() {  # BUILD_DIR: builds what the run needs if it is missing
  local b=$1
  if [ ! -x "$b/bench/direct/direct_bench" ] || [ ! -x "$b/src/fuse/sealfs" ] ||
     [ ! -x "$b/src/tools/mkfs.sealfs" ] || [ ! -e "$b/src/client/libsealfs.so.0" ]; then
    ninja -C "$b" bench/direct/direct_bench src/fuse/sealfs src/tools/mkfs.sealfs >/dev/null
  fi
}
built "$build"

scratch=$(mktemp -d /dev/shm/sealfs-dbench-XXXXXX)
mnt=$(mktemp -d /tmp/sealfs-dbench-mnt-XXXXXX)
region=$scratch/sealfs.region
unmount() {
  mountpoint -q "$mnt" || return 0
  if [ "$(id -u)" -eq 0 ]; then umount "$mnt"; else fusermount3 -u "$mnt"; fi
}
cleanup() {
  unmount || true
  rm -rf "$scratch"
  rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT

# with_mount BUILD_DIR DRIVER_ARGS...: formats a fresh region, mounts it
# with that build's daemon, runs this build's driver on it with that
# build's libsealfs (stdout: the results), unmounts.
with_mount() {
  local b=$1
  local with_lib=()
  if [ "$b" != "$build" ]; then with_lib=(env "LD_LIBRARY_PATH=$b/src/client"); fi
  shift
  rm -f "$region"
  truncate -s "$REGION_SIZE" "$region"
  "$b/src/tools/mkfs.sealfs" -f --size "$REGION_SIZE" "$region" >/dev/null
  "$b/src/fuse/sealfs" -o "emulate_pmem,lease_break_time=$LEASE_BREAK_TIME,revoke=fence" "$region" "$mnt"
  mountpoint -q "$mnt" || { echo "run.sh: sealfs did not mount" >&2; exit 1; }
  "${with_lib[@]}" "$build/bench/direct/direct_bench" "$1" "$mnt" "$region" "${@:2}"
  unmount
}

# PHASE=map: the sealfs_map rows alone; with BASELINE_BUILD_DIR, beside
# that build's, the two taking turns round by round.
map_phase() {
  local rounds=${ROUNDS:-3} out=$scratch/map
  local sides=("$build")
  mkdir -p "$out"
  if [ -n "${BASELINE_BUILD_DIR:-}" ]; then
    built "$BASELINE_BUILD_DIR"
    sides=("$BASELINE_BUILD_DIR" "$build")
  else
    rounds=1
  fi
  for r in $(seq "$rounds"); do
    for i in "${!sides[@]}"; do
      with_mount "${sides[$i]}" map >"$out/side$i.round$r"
    done
  done
  local load_after
  load_after=$(cut -d' ' -f1-3 /proc/loadavg)
  echo
  echo "sealfs_map latency, $(date -u +%Y-%m-%d), kernel $(uname -r), $(nproc) CPUs, load average $load_before before / $load_after after, $rounds round(s)${BASELINE_BUILD_DIR:+; before: $BASELINE_BUILD_DIR, after: $build}"
  echo
  python3 - "$out" "${#sides[@]}" "$rounds" <<'PY'
import statistics, sys
out, sides, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(side):
    runs = []
    for r in range(1, rounds + 1):
        d = {}
        for line in open(f"{out}/side{side}.round{r}"):
            key, who, value = line.split()
            d[(key, who)] = float(value)
        runs.append(d)
    return runs
def med(runs, key, who):
    vals = [d[(key, who)] for d in runs if (key, who) in d]
    return statistics.median(vals) if vals else None
def fmt(v):
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")
data = [load(i) for i in range(sides)]
if sides == 1:
    print("| extents | sealfs_map median us | p99 us | raw mmap of the same extents, median us | p99 us |")
    print("|---|---|---|---|---|")
else:
    print("| extents | before: sealfs_map median us | p99 us | after: sealfs_map median us | p99 us | raw mmap of the same extents (after's run), median us | p99 us |")
    print("|---|---|---|---|---|---|---|")
for want in (1, 16, 256):
    e = f"e{want}"
    n = med(data[-1], f"extents_{e}", "sealfs")
    cells = [str(int(n)) if n is not None else "?"]
    for runs in data:
        cells += [fmt(med(runs, f"map_{e}_median_us", "sealfs")), fmt(med(runs, f"map_{e}_p99_us", "sealfs"))]
    cells += [fmt(med(data[-1], f"map_{e}_median_us", "raw")), fmt(med(data[-1], f"map_{e}_p99_us", "raw"))]
    print("| " + " | ".join(cells) + " |")
PY
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "${PHASE:-}" = map ]; then
  map_phase
  exit 0
fi
results=$scratch/results.txt
with_mount "$build" run $mode >"$results"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

table=$(python3 - "$results" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    key, side, value = line.split()
    r[(key, side)] = float(value)

def get(key, side):
    return r.get((key, side))

def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"

def verdict(ratio, goal):
    if ratio is None or goal is None:
        return ""
    kind, bound = goal
    ok = ratio >= bound if kind == ">=" else ratio <= bound
    return "yes" if ok else "**NO**"

print("| workload | direct map | raw mmap | direct/raw | A/A: raw/raw | goal | met | FUSE read(2)/write(2) |")
print("|---|---|---|---|---|---|---|---|")
data_rows = [
    ("seq_read_gibs", "seq read, GiB/s", (">=", 0.97), "seq_read_gibs"),
    ("seq_write_nt_gibs", "seq write, non-temporal stores + sfence, GiB/s", (">=", 0.97), "seq_write_gibs"),
    ("seq_write_plain_gibs", "seq write, ordinary stores, GiB/s", (">=", 0.97), None),
    ("first_touch_gibs", "first pass over a fresh mapping, ordinary stores (page faults), GiB/s", (">=", 0.97), None),
]
for key, label, fuse in (("rand4k_load", "4 KiB random load", True),
                         ("rand4k_store", "4 KiB random store (NT + sfence)", True),
                         ("chase", "8 B dependent load, random page", False)):
    for stat in ("median", "p99", "mean"):
        data_rows.append((f"{key}_{stat}_ns", f"{label}, {stat} ns", ("<=", 1.05),
                          f"{key}_{stat}_ns" if fuse else None))
for key, label, goal, fuse_key in data_rows:
    d, w = get(key, "direct"), get(key, "raw")
    ratio = d / w if d is not None and w else None
    a, b = get(key, "raw_a"), get(key, "raw_b")
    aa = f"{a / b:.3f}" if a is not None and b else "-"
    goal_text = f"{goal[0]} {goal[1]}" if goal else "-"
    fuse = get(fuse_key, "fuse") if fuse_key else None
    print(f"| {label} | {fmt(d)} | {fmt(w)} | {'-' if ratio is None else f'{ratio:.3f}'} | {aa} | "
          f"{goal_text} | {verdict(ratio, goal)} | {fmt(fuse)} |")
print(f"| seq write through FUSE, allocating (the file's first fill), GiB/s | | | | | | | "
      f"{fmt(get('seq_write_allocating_gibs', 'fuse'))} |")
print(f"| (timer cost per timed op, ns) | {fmt(get('timer_overhead_ns', 'both'))} | | | | | | |")

print()
print("| workload | sealfs | peer | peer value | sealfs/peer | goal | met |")
print("|---|---|---|---|---|---|---|")
for want in (1, 16, 256):
    e = f"e{want}"
    n = get(f"extents_{e}", "sealfs")
    label = f"{int(n) if n is not None else '?'} extent(s), 16 MiB file"
    for what, name in (("map", "sealfs_map"), ("map_unmap", "sealfs_map + sealfs_unmap")):
        for stat in ("median", "p99"):
            s, p = get(f"{what}_{e}_{stat}_us", "sealfs"), get(f"{what}_{e}_{stat}_us", "raw")
            goal = ("<=", 50.0) if want == 16 and what == "map" and stat == "median" else None
            print(f"| {name}, {label}, {stat} us | {fmt(s)} | raw mmap of the same extents | {fmt(p)} | "
                  f"{'-' if not (s and p) else f'{s / p:.1f}'} | {'<= 50 us' if goal else '-'} | "
                  f"{'' if not goal or s is None else ('yes' if s <= 50 else '**NO**')} |")
x = get("control_xattr_median_us", "sealfs")
print(f"| of which: getxattr user.sealfs.control, median us | {fmt(x)} | | | | | |")
for stat in ("median", "p99"):
    s, p = get(f"truncate_{stat}_us", "leased"), get(f"truncate_{stat}_us", "unleased")
    goal = stat == "median"
    print(f"| truncate(2) with a cooperative holder, {stat} us | {fmt(s)} | same truncate, no lease | {fmt(p)} | "
          f"{'-' if not (s and p) else f'{s / p:.1f}'} | {'<= 1000 us' if goal else '-'} | "
          f"{'' if not goal or s is None else ('yes' if s <= 1000 else '**NO**')} |")
n = get("truncate_breaks", "leased")
print(f"| (breaks delivered, one per leased truncate) | {fmt(n)} | | | | | |")
PY
)
echo
echo "Direct mappings, $(date -u +%Y-%m-%d), kernel $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $load_before before / $load_after after${mode:+ (quick run)}"
echo
echo "$table"
if [ -n "${OUT:-}" ]; then echo "$table" >"$OUT"; fi
