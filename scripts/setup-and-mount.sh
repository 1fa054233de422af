#!/usr/bin/env bash
# From a fresh Debian 12 machine to a mounted sealfs, in one command:
# installs dependencies, builds, creates a sparse file-backed region, formats
# it with mkfs.sealfs (only when the region is new) and mounts it. Running it
# again changes nothing and prints where sealfs is mounted.
#
#   scripts/setup-and-mount.sh [MOUNTPOINT]
#
# Environment: SEALFS_REGION (default /var/tmp/sealfs-$USER.region),
# SEALFS_SIZE (default 4G), SEALFS_OPTS (extra -o options for the daemon),
# BUILD_DIR (default build), SKIP_DEPS=1 to skip the package check.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
user=$(id -un)
region=${SEALFS_REGION:-/var/tmp/sealfs-$user.region}
size=${SEALFS_SIZE:-4G}
if [ "$(id -u)" -eq 0 ]; then
  default_mnt=/mnt/sealfs
else
  default_mnt=$HOME/sealfs
fi
mnt=${1:-${SEALFS_MNT:-$default_mnt}}

if [ "${SKIP_DEPS:-0}" != 1 ]; then
  "$top/scripts/install-deps.sh"
fi

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$top" -Dwerror=true
fi
ninja -C "$build" src/fuse/sealfs src/tools/mkfs.sealfs
sealfs_bin=$build/src/fuse/sealfs
mkfs_bin=$build/src/tools/mkfs.sealfs

unmount_hint() {
  if [ "$(id -u)" -eq 0 ]; then echo "umount $mnt"; else echo "fusermount3 -u $mnt"; fi
}

mkdir -p "$mnt"
if mountpoint -q "$mnt"; then
  echo "sealfs: $mnt is already mounted ($(findmnt -no SOURCE,FSTYPE "$mnt" | tr -s ' '))"
  echo "unmount with: $(unmount_hint)"
  exit 0
fi

if [ ! -e "$region" ]; then
  echo "sealfs: creating a $size sparse region file at $region"
  # The region holds every file's bytes: its owner's alone (mode 0600).
  (umask 077 && truncate -s "$size" "$region")
  if ! "$mkfs_bin" --size "$size" "$region"; then
    rm -f "$region"  # a half-made region would be refused by the next run
    echo "sealfs: mkfs.sealfs failed" >&2
    exit 1
  fi
else
  echo "sealfs: reusing the existing region $region (not reformatted)"
  mode=$(stat -c %a "$region")
  if [ $((8#$mode & 8#066)) -ne 0 ]; then
    if [ -z "${SEALFS_REGION:-}" ] && [ -O "$region" ] && [ -f "$region" ]; then
      # Made 0644 by an earlier version of this script: close it.
      chmod go-rw "$region"
      echo "sealfs: $region was readable by others (mode $mode); now $(stat -c %a "$region")"
    else
      echo "sealfs: warning: $region is accessible to others (mode $mode): they can read" \
           "every file in the filesystem; run 'chmod go-rw $region'" >&2
    fi
  fi
fi

opts=()
[ -n "${SEALFS_OPTS:-}" ] && opts=(-o "$SEALFS_OPTS")
"$sealfs_bin" "${opts[@]}" "$region" "$mnt"
# Without -f the daemon returns once the mount is live.
if ! mountpoint -q "$mnt"; then
  echo "sealfs: the daemon returned but $mnt is not a mount point" >&2
  exit 1
fi
echo "sealfs: mounted $region at $mnt"
echo "unmount with: $(unmount_hint)"
