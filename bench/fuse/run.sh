#!/usr/bin/env bash
# FUSE-path benchmark: sealfs beside tmpfs, bindfs and a plain passthrough
# FUSE daemon (bench/fuse/passthrough, built here) in one run, every peer
# storing its data in the same tmpfs, so the differences are the FUSE path
# and the daemons themselves. As root that tmpfs is one the run mounts with
# huge=always (STORE=hugetmpfs): pmem is mapped with 2 MiB pages (devdax
# always, fsdax when aligned), and a region file on a 4 KiB-page tmpfs
# charges sealfs a page fault for the first touch of every 4 KiB it maps,
# about 12 us each in a paravirtualized guest, which real pmem never costs.
# Otherwise (STORE=devshm, or not root) /dev/shm; the header says which.
# sealfs's region file is written with zeros before mkfs (untimed), so that
# every page of it exists, as on pmem. Prints a Markdown table with absolute
# numbers, each peer's ratio to the passthrough peer, and sealfs's goal from
# issue 10 (>= 1.5x passthrough on I/O rows, >= 3x on metadata rows); then
# the sealfs-only figures (extent counts, 256 MiB vs 16 MiB random writes).
#
#   bench/fuse/run.sh            full run (100,000 files, 1 GiB file, 10 s per fio row; ~25 min)
#   QUICK=1 bench/fuse/run.sh    a quick run (3,000 files, 64 MiB, 1 s per fio row; ~3 min)
#
# Environment: FILES, SEQ_MIB, REQ_KIB (default 1024), RAND_SECONDS, JOBS
# (thread counts of the random rows, default "1 4"), STORE (hugetmpfs or
# devshm, above), FALLOC_MIB (default
# 256), SMALL_FALLOC_MIB (16), FILL_MIB (file written end to end, 64; quick
# 16), PEERS (default "tmpfs bindfs passthrough sealfs sealfs-wb"), SEQ_DIRECT=1
# (O_DIRECT sequential reads), REGION_SIZE (sealfs region, default
# 2*SEQ_MIB+1024 MiB), BUILD_DIR, SEALFS_BIN, MKFS_BIN, SEALFS_LAYOUT (the
# sealfs-layout binary), OUT (also write the report to this file).
#
# How each row is measured (4 KiB = fio --bs=4k, --ioengine=psync unless
# said; "buffered" = --direct=0, "O_DIRECT" = --direct=1; every fio row but
# the end-to-end one is --time_based for RAND_SECONDS, with --numjobs=N
# processes on one shared file, --group_reporting, the IOPS of all jobs
# summed; write rows add
# --end_fsync=1 so data a writeback cache holds reaches the daemon inside the
# timed job):
# - creates/stats/unlinks: one thread, one directory, openat(O_CREAT|O_EXCL)
#   + close, fstatat, unlinkat over FILES names (bench/fuse/fsbench.cc).
# - seq write: one thread, a new SEQ_MIB file, REQ_KIB write(2)s, then
#   fsync, all timed (fsbench). This file is "the written file" below.
# - seq read: the file is reopened after `sync; echo 3 >
#   /proc/sys/vm/drop_caches` (when root), so FUSE peers serve it from their
#   daemon, not from the page cache left by the write; buffered read(2)s of
#   REQ_KIB (O_DIRECT with SEQ_DIRECT=1). tmpfs's page cache is its storage.
# - random read/write, fallocated file: before each fio job the file is
#   removed and made again with `fallocate -l FALLOC_MIB` (space reserved,
#   never written: on sealfs unwritten extents), then fio reads or writes it
#   (--allow_file_create=0, so fio never lays the file out itself). bindfs
#   has no fallocate: its fallocated rows are "-".
# - random read/write, written file: fio on the seq write's file, reads
#   first, then writes (which leave it written).
# - fsync after each write: fio --fsync=1, buffered, 1 job, fresh
#   fallocated FALLOC_MIB file.
# - mmap random read/write: fio --ioengine=mmap --rw=randrw (50/50), 1 job,
#   on the written file; read + write IOPS.
# - 16 MiB fallocated: as the FALLOC_MIB buffered 1-job random-write row on
#   a SMALL_FALLOC_MIB file (issue 10: the large row within 10% of this one;
#   a cost that grows with the extent count shows only when a row runs long
#   enough to split many extents: judge it in a full run, not QUICK).
# - written end to end: fio random writes, buffered, 1 job, not timed: each
#   4 KiB block of a fresh fallocated FILL_MIB file written exactly once in
#   random order (fio's random map); IOPS over the whole fill.
# - extents (sealfs only): the file's extent count after the FALLOC_MIB
#   buffered 1-job random-write row and after the end-to-end fill, from
#   `sealfs-layout extents` (asks the daemon) or else `filefrag` (FIEMAP,
#   which FUSE does not pass on: "not measured" then).
# - sealfs runs with -o emulate_pmem on a region file in that tmpfs (each
#   4 KiB write(2) reaches the daemon and is durable when it returns),
#   sealfs-wb the same with -o writeback_cache (the kernel's writeback cache:
#   durable at fsync); bindfs with its defaults (single-threaded); passthrough multi-threaded,
#   write-through, keep_cache off, 1 MiB requests (bench/fuse/passthrough_main.cc).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
if [ "${QUICK:-0}" = 1 ]; then
  FILES=${FILES:-3000} SEQ_MIB=${SEQ_MIB:-64} RAND_SECONDS=${RAND_SECONDS:-1}
  FILL_MIB=${FILL_MIB:-16}
else
  FILES=${FILES:-100000} SEQ_MIB=${SEQ_MIB:-1024} RAND_SECONDS=${RAND_SECONDS:-10}
  FILL_MIB=${FILL_MIB:-64}
fi
REQ_KIB=${REQ_KIB:-1024}
JOBS=${JOBS:-"1 4"}
FALLOC_MIB=${FALLOC_MIB:-256}
SMALL_FALLOC_MIB=${SMALL_FALLOC_MIB:-16}
PEERS=${PEERS:-"tmpfs bindfs passthrough sealfs sealfs-wb"}
REGION_SIZE=${REGION_SIZE:-$((SEQ_MIB * 2 + 1024))M}
SEQ_DIRECT=${SEQ_DIRECT:-0}

command -v fio >/dev/null && command -v bindfs >/dev/null || "$top/scripts/install-deps.sh"

# The passthrough peer keeps a descriptor open per inode it knows (as
# libfuse's passthrough_ll does): FILES of them in the metadata rows, so
# FILES must stay below the hard limit of open files when root cannot
# raise it (a container without CAP_SYS_RESOURCE).
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
STORE=${STORE:-$([ "$(id -u)" -eq 0 ] && echo hugetmpfs || echo devshm)}
mounts=$(mktemp -d /tmp/sealfs-bench-mnt-XXXXXX)
if [ "$STORE" = hugetmpfs ]; then
  store=$(mktemp -d /tmp/sealfs-bench-store-XXXXXX)
  mount -t tmpfs -o huge=always,size=75%,mode=0700 sealfs-bench "$store"
  scratch=$store/scratch
  mkdir "$scratch"
  store_text="a tmpfs mounted with huge=always"
else
  store=
  scratch=$(mktemp -d /dev/shm/sealfs-bench-XXXXXX)
  store_text="/dev/shm (4 KiB pages)"
fi
results=$scratch/results.tsv  # peer, key, value
labels=$scratch/labels.tsv    # key, kind (meta|io), label; in table order
: >"$results"
: >"$labels"

unmount() {
  mountpoint -q "$1" || return 0
  if [ "$(id -u)" -eq 0 ]; then umount "$1"; else fusermount3 -u "$1"; fi
}
cleanup() {
  for m in "$mounts"/*; do [ -d "$m" ] && unmount "$m" || true; done
  rm -rf "$scratch" "$mounts"
  if [ -n "$store" ]; then umount "$store" && rmdir "$store"; fi
}
trap cleanup EXIT

# A helper program of this directory: the meson build's, else compiled here
# (bench/fuse not in that build yet; each is self-contained).
helper() {  # NAME COMPILER_ARGS...
  local name=$1 bin=$build/bench/fuse/$1
  shift
  if [ ! -x "$bin" ] && [ -f "$build/build.ninja" ]; then
    ninja -C "$build" "bench/fuse/$name" >/dev/null 2>&1 || true
  fi
  if [ ! -x "$bin" ]; then
    bin=$scratch/$name
    g++ -std=c++20 -O2 -D_GNU_SOURCE "$@" -o "$bin"
  fi
  echo "$bin"
}
fsbench=$(helper fsbench "$top/bench/fuse/fsbench.cc")
case " $PEERS " in
  *" passthrough "*)
    # shellcheck disable=SC2046  # pkg-config's words are separate arguments
    passthrough=$(helper passthrough -DFUSE_USE_VERSION=314 $(pkg-config --cflags fuse3) \
      "$top"/bench/fuse/passthrough_{main,ops,inodes}.cc $(pkg-config --libs fuse3) -pthread) ;;
esac
sealfs_layout=${SEALFS_LAYOUT:-$build/src/tools/sealfs-layout}

drop_caches() {
  sync
  if [ "$(id -u)" -eq 0 ]; then echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi
}

record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; }
# The first peer to measure a row names it; the table keeps that order.
label() {  # KEY KIND LABEL
  cut -f1 "$labels" | grep -qxF "$1" || printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$labels"
}

# Prints the directory the peer serves, after mounting it if needed.
setup_peer() {
  case $1 in
    tmpfs)
      mkdir "$scratch/tmpfs" && echo "$scratch/tmpfs" ;;
    bindfs|passthrough)
      mkdir "$scratch/$1-src" "$mounts/$1"
      if [ "$1" = bindfs ]; then
        bindfs "$scratch/bindfs-src" "$mounts/bindfs"
      else
        "$passthrough" "$scratch/passthrough-src" "$mounts/passthrough"
      fi
      mountpoint -q "$mounts/$1" && echo "$mounts/$1" ;;
    sealfs|sealfs-wb)
      local sealfs_bin=${SEALFS_BIN:-$build/src/fuse/sealfs}
      local options=emulate_pmem
      [ "$1" = sealfs-wb ] && options=emulate_pmem,writeback_cache
      local mkfs_bin=${MKFS_BIN:-$build/src/tools/mkfs.sealfs}
      if [ ! -x "$sealfs_bin" ] || [ ! -x "$mkfs_bin" ]; then
        echo "run.sh: sealfs or mkfs.sealfs not built in $build; skipping sealfs" >&2
        return 1
      fi
      # Every page of a pmem region exists before the first store; a sparse
      # tmpfs file would charge sealfs a kernel clear of each (2 MiB) page
      # at its first store, 64% of the daemon's time in a sequential write
      # (perf, 2026-12-06), which no peer's write(2) into tmpfs pays. So the
      # region is written with zeros first, untimed.
      local region_bytes
      region_bytes=$(numfmt --from=iec "$REGION_SIZE")
      head -c "$region_bytes" /dev/zero >"$scratch/$1.region"
      chmod 0600 "$scratch/$1.region"
      # -q: no need to ask about the zeros above.
      "$mkfs_bin" -f -q --size "$REGION_SIZE" "$scratch/$1.region"
      mkdir "$mounts/$1"
      "$sealfs_bin" -o "$options" "$scratch/$1.region" "$mounts/$1" &&
        mountpoint -q "$mounts/$1" && echo "$mounts/$1" ;;
    *) echo "run.sh: unknown peer $1" >&2; return 1 ;;
  esac
}

teardown_peer() {
  case $1 in
    bindfs|passthrough|sealfs|sealfs-wb) unmount "$mounts/$1" ;;
  esac
  rm -rf "${scratch:?}/$1" "$scratch/$1-src" "$scratch/$1.region"
}

# Runs one fio job and prints its IOPS (all jobs, reads + writes); prints
# nothing and shows fio's complaint when it fails. TIMED=fill writes each
# block of the file once instead of running RAND_SECONDS.
fio_iops() {  # FILE MIB RW JOBS DIRECT(0|1) ENGINE TIMED(yes|fill) [fio options]
  local file=$1 mib=$2 rw=$3 jobs=$4 direct=$5 engine=$6 timed=$7 out=$scratch/fio.terse
  shift 7
  local opts=("$@")
  if [ "$timed" = yes ]; then opts+=(--time_based --runtime="$RAND_SECONDS"); fi
  case $rw in *write|randrw) opts+=(--end_fsync=1) ;; esac
  if ! fio --name=rand --filename="$file" --size="${mib}M" --rw="$rw" --bs=4k \
      --direct="$direct" --ioengine="$engine" --numjobs="$jobs" --group_reporting \
      --allow_file_create=0 --fallocate=none "${opts[@]}" \
      --output-format=terse --terse-version=3 --output="$out" 2>"$scratch/fio.err"; then
    echo "run.sh: fio $rw on $file failed: $(tail -n 3 "$scratch/fio.err")" >&2
    return 0
  fi
  # Terse format 3, one line per group: field 8 is read IOPS, 49 write IOPS.
  # (Not fio's JSON: a python3 start per row cost seconds on a busy machine.)
  awk -F';' '$1 == 3 { iops = $8 + $49 } END { if (iops != "") print iops }' "$out"
}

# fio on a file made afresh with fallocate; prints nothing where the peer
# has no fallocate (bindfs): those rows stay empty.
falloc_fio() {  # FILE MIB RW JOBS DIRECT TIMED [fio options]
  local file=$1 mib=$2 rw=$3 jobs=$4 direct=$5 timed=$6
  shift 6
  rm -f "$file"
  if ! fallocate -l "${mib}M" "$file" 2>/dev/null; then
    [ -e "$scratch/$peer.no-fallocate" ] ||
      echo "run.sh: $peer: fallocate fails; its fallocated rows stay empty" >&2
    touch "$scratch/$peer.no-fallocate"
    return 0
  fi
  fio_iops "$file" "$mib" "$rw" "$jobs" "$direct" psync "$timed" "$@"
}

# The extent count of a sealfs file, or nothing when no tool can tell.
extent_count() {  # FILE
  local n=""
  if [ -x "$sealfs_layout" ]; then
    # The summary line: "  N extents, M holes, ..."
    n=$("$sealfs_layout" extents "$1" 2>/dev/null | grep -oE '^ *[0-9]+ extents?,' | head -n 1 |
        grep -oE '[0-9]+' || true)
  fi
  if [ -z "$n" ] && command -v filefrag >/dev/null; then
    # "FILE: N extents found"; FIEMAP over FUSE fails or finds 0 in a non-empty file.
    n=$(filefrag "$1" 2>/dev/null | sed -n 's/.*: \([0-9]*\) extents\? found$/\1/p')
    [ "$n" = 0 ] && n=""
  fi
  echo "$n"
}

measure() {  # KEY KIND LABEL VALUE (an empty value is not recorded)
  label "$1" "$2" "$3"
  if [ -n "$4" ]; then record "$peer" "$1" "$4"; fi
}

jobs_text() { if [ "$1" = 1 ]; then echo "1 job"; else echo "$1 jobs"; fi; }

random_rows() {  # DIR
  local dir=$1 falloc=$1/falloc.dat mode direct how rw what jobs v
  for mode in buffered direct; do
    if [ $mode = direct ]; then direct=1 how=O_DIRECT; else direct=0 how=buffered; fi
    for rw in randread randwrite; do
      what=${rw#rand}s
      for jobs in $JOBS; do
        v=$(falloc_fio "$falloc" "$FALLOC_MIB" "$rw" "$jobs" "$direct" yes)
        measure "falloc_${rw}_${mode}_$jobs" io \
          "4 KiB random $what/s, fallocated $FALLOC_MIB MiB, $how, $(jobs_text "$jobs")" "$v"
        if [ "$peer" = sealfs ] && [ "$rw" = randwrite ] && [ "$mode" = buffered ] &&
           [ "$jobs" = 1 ]; then
          record sealfs extents_timed "$(extent_count "$falloc")"
        fi
      done
    done
    for rw in randread randwrite; do
      what=${rw#rand}s
      for jobs in $JOBS; do
        v=$(fio_iops "$dir/seq.dat" "$SEQ_MIB" "$rw" "$jobs" "$direct" psync yes)
        measure "written_${rw}_${mode}_$jobs" io \
          "4 KiB random $what/s, written $SEQ_MIB MiB file, $how, $(jobs_text "$jobs")" "$v"
      done
    done
  done

  v=$(falloc_fio "$falloc" "$FALLOC_MIB" randwrite 1 0 yes --fsync=1)
  measure fsync_each io "4 KiB random writes/s, fsync after each, fallocated, 1 job" "$v"

  v=$(fio_iops "$dir/seq.dat" "$SEQ_MIB" randrw 1 0 mmap yes)
  measure mmap_randrw io "4 KiB mmap random reads+writes/s (50/50), written file, 1 job" "$v"

  v=$(falloc_fio "$falloc" "$SMALL_FALLOC_MIB" randwrite 1 0 yes)
  measure small_falloc_randwrite io \
    "4 KiB random writes/s, fallocated $SMALL_FALLOC_MIB MiB, buffered, 1 job" "$v"

  v=$(falloc_fio "$falloc" "$FILL_MIB" randwrite 1 0 fill)
  measure fill_randwrite io \
    "4 KiB random writes/s, fallocated $FILL_MIB MiB written end to end once, buffered" "$v"
  if [ "$peer" = sealfs ]; then record sealfs extents_fill "$(extent_count "$falloc")"; fi
  rm -f "$falloc"
}

machine() {
  echo "$(date -u '+%Y-%m-%d %H:%M:%S UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
started=$(machine)

for peer in $PEERS; do
  echo "== $peer (at ${SECONDS} s)" >&2
  dir=$(setup_peer "$peer") || continue
  mkdir "$dir/meta"
  while read -r name value; do
    case $name in
      creates_per_s) measure "$name" meta "creates/s ($FILES files, one dir)" "$value" ;;
      stats_per_s) measure "$name" meta "stats/s" "$value" ;;
      unlinks_per_s) measure "$name" meta "unlinks/s" "$value" ;;
    esac
  done < <("$fsbench" meta "$dir/meta" "$FILES")
  rmdir "$dir/meta"
  while read -r name value; do
    measure "$name" io "seq write MiB/s ($SEQ_MIB MiB, $REQ_KIB KiB req, + fsync)" "$value"
  done < <("$fsbench" write "$dir/seq.dat" "$SEQ_MIB" "$REQ_KIB")
  drop_caches
  while read -r name value; do
    measure "$name" io "seq read MiB/s ($REQ_KIB KiB req, cold$([ "$SEQ_DIRECT" = 1 ] && echo ", O_DIRECT"))" "$value"
  done < <("$fsbench" read "$dir/seq.dat" "$REQ_KIB" "$([ "$SEQ_DIRECT" = 1 ] && echo direct)")
  random_rows "$dir"
  rm -f "$dir/seq.dat"
  teardown_peer "$peer"
done
ended=$(machine)
echo "== done (at ${SECONDS} s)" >&2

table=$(python3 - "$results" "$labels" "$PEERS" "$FALLOC_MIB" "$SMALL_FALLOC_MIB" "$FILL_MIB" <<'PY'
import sys
results, labels_path, peer_list, falloc, small, fill = sys.argv[1:7]
rows = {}
for line in open(results):
    peer, key, value = line.rstrip("\n").split("\t")
    if value:
        rows.setdefault(key, {})[peer] = float(value)
labels = [line.rstrip("\n").split("\t") for line in open(labels_path)]
peers = [p for p in peer_list.split() if any(p in rows.get(k, {}) for k, _, _ in labels)]
base = "passthrough" if "passthrough" in peers else None
others = [p for p in peers if p != base] if base else []
goal = {"meta": 3.0, "io": 1.5}
judged = base and "sealfs" in peers

def num(v):
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"

head = ["workload"] + peers + [f"{p}/{base}" for p in others]
if judged:
    head += ["goal", "met"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for key, kind, label in labels:
    r = rows.get(key, {})
    cells = [label] + [num(r.get(p)) for p in peers]
    b = r.get(base)
    for p in others:
        v = r.get(p)
        cells.append("-" if v is None or not b else f"{v / b:.2f}")
    if judged:
        s = r.get("sealfs")
        cells.append(f">= {goal[kind]:g}")
        cells.append("-" if s is None or not b else "yes" if s / b >= goal[kind] else "no")
    print("| " + " | ".join(cells) + " |")

sealfs = {k: v["sealfs"] for k, v in rows.items() if "sealfs" in v}
if sealfs:
    print()
    def extents(key):
        v = sealfs.get(key)
        return "not measured (no tool printed it)" if v is None else f"{v:.0f}"
    print(f"- sealfs extents after the {falloc} MiB fallocated buffered 1-job random-write row: "
          + extents("extents_timed"))
    print(f"- sealfs extents after the {fill} MiB fallocated file was written end to end: "
          + extents("extents_fill"))
    large, little = sealfs.get("falloc_randwrite_buffered_1"), sealfs.get("small_falloc_randwrite")
    if large and little:
        ratio = large / little
        print(f"- sealfs random writes, fallocated {falloc} MiB / {small} MiB: {ratio:.2f} "
              f"(goal >= 0.90: {'yes' if ratio >= 0.9 else 'no'})")
PY
)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
report="FUSE path: kernel $(uname -r), $(nproc) CPUs, $cpu
started $started; ended $ended
storage: $store_text
settings: FILES=$FILES SEQ_MIB=$SEQ_MIB REQ_KIB=$REQ_KIB RAND_SECONDS=$RAND_SECONDS JOBS=\"$JOBS\" \
FALLOC_MIB=$FALLOC_MIB SMALL_FALLOC_MIB=$SMALL_FALLOC_MIB FILL_MIB=$FILL_MIB PEERS=\"$PEERS\"

$table"
echo
echo "$report"
if [ -n "${OUT:-}" ]; then echo "$report" >"$OUT"; fi
