#!/usr/bin/env bash
# Installs every Debian 12 package sealfs needs to build, test and benchmark.
# Runs apt only when something is missing; uses sudo when not root.
set -euo pipefail

packages=(
  build-essential g++ meson ninja-build pkg-config python3
  libfuse3-dev fuse3 libpmem2-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  bindfs fio e2fsprogs xfsprogs util-linux passwd procps kmod acl
  groff-base librsvg2-bin
  liblmdb-dev lmdb-utils libsqlite3-dev sqlite3
  # scripts/sanitize.sh: clang, its ASan/UBSan/libFuzzer runtimes, llvm-symbolizer
  clang libclang-rt-14-dev llvm
)
# With --vm also what the vm tier needs (tests/vm, docs/vm.md): qemu, a Debian
# kernel with its modules, and what the guest's initramfs is built from. Not
# by default: a machine that only mounts sealfs has no use for a second kernel.
if [ "${1:-}" = --vm ]; then
  # nfs-kernel-server, nfs-common and rpcbind: rpc.nfsd, rpc.mountd,
  # exportfs, mount.nfs and rpcbind (NFSv3) for the guest's NFS export
  # check, nfs4-acl-tools for its NFSv4 ACLs; no server runs on the host.
  packages+=(qemu-system-x86 linux-image-amd64 busybox-static ndctl daxctl cpio
             nfs-kernel-server nfs-common rpcbind nfs4-acl-tools)
fi

missing=()
for p in "${packages[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
