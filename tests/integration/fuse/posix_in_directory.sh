#!/bin/sh
# Runs the POSIX-semantics integration tests (fuse_namespace_test and
# fuse_data_test) in an existing directory instead of on mounts of their own
# (MountFixture's SEALFS_TEST_DIRECTORY mode): each test works in a fresh
# subdirectory of DIR, so the semantics checked are those of whatever serves
# DIR. The VM tier runs it on an NFS mount of a sealfs export; the main
# suite runs it on a sealfs mount this script starts (--sealfs), so the mode
# itself is exercised on every build.
#
#   posix_in_directory.sh --dir DIR [--nfs | --nfs3] --namespace-test BIN --data-test BIN
#   posix_in_directory.sh --sealfs SEALFS --mkfs MKFS --namespace-test BIN --data-test BIN
#
# Left out everywhere (they need the fixture's own daemon or region):
#   NamespaceTest.StatfsReportsUsage      the daemon's block size and inode count
#   NamespaceTest.InodesComeBackAfterForget  the daemon's inode count after forgets
#   DataTest.FileLargerThanFourGiB        remounts
#   DataTest.SharedMmapReadsAndWrites     remounts
#   SmallRegionTest.*                     a 64 MiB region of its own
# Left out with --nfs (an NFSv4.2 mount; what NFS cannot carry, the same
# through an export of ext4: docs/daemon.md "NFS export"):
#   NamespaceTest.RenameFlags             NFS has no RENAME_NOREPLACE / RENAME_EXCHANGE
#   NamespaceTest.TrustedXattrs           NFSv4.2 carries user.* attributes only
#   NamespaceTest.ExtendedAttributes      nor those of a FUSE export (EOPNOTSUPP)
#   NamespaceTest.ReaddirTenThousandEntries  d_type DT_UNKNOWN; minutes under TCG
#   DataTest.ReadOnlyOpenWithTruncTruncates  the NFSv4 client: EACCES
#   DataTest.FallocateKeepSizeZeroRangeAndCollapse  only ALLOCATE and DEALLOCATE
#   DataTest.StatfsRightAfterUnlinkCountsTheFreedBlocks  the NFS server keeps
#                                         a removed file open for a while, and the
#                                         daemon frees it at that close, which statfs
#                                         does not wait for (docs/daemon.md "df after rm")
# and with --nfs3 (an NFSv3 mount) also:
#   DataTest.HolesReadAsZerosAndSeekDataHole  no SEEK_DATA / SEEK_HOLE in NFSv3
#   DataTest.FallocateModes               no fallocate in NFSv3
# (NFSv3 does truncate on open(O_RDONLY | O_TRUNC): that test runs there.)
set -eu

dir=""
nfs=no
sealfs=""
mkfs=""
namespace_test=""
data_test=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --nfs) nfs=4; shift ;;
    --nfs3) nfs=3; shift ;;
    --sealfs) sealfs=$2; shift 2 ;;
    --mkfs) mkfs=$2; shift 2 ;;
    --namespace-test) namespace_test=$2; shift 2 ;;
    --data-test) data_test=$2; shift 2 ;;
    *) echo "posix_in_directory: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$namespace_test" ] && [ -x "$data_test" ] || {
  echo "posix_in_directory: --namespace-test and --data-test must name the built tests" >&2
  exit 2
}

namespace_out="StatfsReportsUsage:InodesComeBackAfterForget"
data_out="DataTest.FileLargerThanFourGiB:DataTest.SharedMmapReadsAndWrites:SmallRegionTest.*"
namespace_nfs="RenameFlags:TrustedXattrs:ExtendedAttributes:ReaddirTenThousandEntries"
data_nfs="DataTest.FallocateKeepSizeZeroRangeAndCollapse:DataTest.StatfsRightAfterUnlinkCountsTheFreedBlocks"
if [ "$nfs" = 4 ]; then
  namespace_out="$namespace_out:$namespace_nfs"
  data_out="$data_out:$data_nfs:DataTest.ReadOnlyOpenWithTruncTruncates"
elif [ "$nfs" = 3 ]; then
  namespace_out="$namespace_out:$namespace_nfs"
  data_out="$data_out:$data_nfs:DataTest.HolesReadAsZerosAndSeekDataHole:DataTest.FallocateModes"
fi
namespace_out=$(echo "$namespace_out" | sed 's/\([^:]*\)/NamespaceTest.\1/g')

run_tests() {  # directory
  status=0
  for run in "$namespace_test -$namespace_out" "$data_test -$data_out"; do
    set -- $run
    echo "posix_in_directory: $(basename "$1") in $dir (left out: ${2#-})"
    SEALFS_TEST_DIRECTORY=$dir "$1" --gtest_filter="$2" --gtest_brief=1 || status=1
  done
  return $status
}

if [ -n "$sealfs" ]; then
  # A plain sealfs mount (on a sparse region in a temporary directory) is
  # the directory: the same tests as on the fixture's own mounts, reached
  # through a daemon the fixture did not start.
  [ -x "$sealfs" ] && [ -x "$mkfs" ] || { echo "posix_in_directory: --sealfs and --mkfs" >&2; exit 2; }
  work=$(mktemp -d "${TMPDIR:-/tmp}/posix-in-dir-XXXXXX")
  dir=$work/mnt
  mkdir "$dir"
  daemon=""
  cleanup() {
    if grep -q " $dir fuse" /proc/mounts; then fusermount3 -u -z "$dir" 2>/dev/null || true; fi
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null
    rm -rf "$work"
  }
  trap cleanup EXIT
  region=$work/region.img
  options=""
  if [ -w /dev/shm ]; then
    region=$(mktemp /dev/shm/posix-in-dir-XXXXXX)
    options="-o emulate_pmem"
    trap 'cleanup; rm -f "$region"' EXIT
  fi
  truncate -s 1G "$region"
  "$mkfs" "$region" > "$work/mkfs.log" 2>&1 || { cat "$work/mkfs.log"; exit 1; }
  "$sealfs" -f $options "$region" "$dir" > "$work/sealfs.log" 2>&1 &
  daemon=$!
  i=0
  while ! grep -q " $dir fuse" /proc/mounts; do
    i=$((i + 1))
    if [ $i -gt 200 ] || ! kill -0 "$daemon" 2>/dev/null; then
      cat "$work/sealfs.log"
      echo "posix_in_directory: sealfs did not mount $dir" >&2
      exit 1
    fi
    sleep 0.1
  done
fi
[ -n "$dir" ] && [ -d "$dir" ] || { echo "posix_in_directory: --dir must name a directory" >&2; exit 2; }

status=0
run_tests || status=1
if [ -n "$sealfs" ]; then
  fusermount3 -u "$dir"
  daemon_status=0
  wait "$daemon" || daemon_status=$?
  daemon=""
  if [ "$daemon_status" -ne 0 ]; then
    cat "$work/sealfs.log"
    echo "posix_in_directory: the daemon exited with status $daemon_status" >&2
    status=1
  fi
fi
exit $status
