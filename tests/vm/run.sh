#!/usr/bin/env bash
# VM tier: boots the host's Debian kernel in qemu (TCG) with an emulated
# NVDIMM and runs sealfs's region code against a real devdax device and a
# real fsdax filesystem (ext4 and XFS mounted -o dax), and the FUSE daemon's
# direct mappings on both. See docs/vm.md.
#
#   tests/vm/run.sh --probe BUILD/tests/vm/region_probe \
#                   --mkfs BUILD/src/tools/mkfs.sealfs \
#                   --daemon BUILD/src/fuse/sealfs \
#                   --holder BUILD/tests/vm/dax_holder \
#                   --fsck BUILD/fsck/fsck.sealfs \
#                   --crash-writer BUILD/tests/vm/crash_writer \
#                   --difftest BUILD/tests/integration/difftest/difftest \
#                   --stress BUILD/tests/integration/lease/lease_stress_test \
#                   --stress-holder BUILD/tests/integration/lease/lease_stress_holder \
#                   --stress-sigbreaker BUILD/tests/integration/lease/lease_stress_sigbreaker \
#                   --namespace-test BUILD/tests/integration/fuse/fuse_namespace_test \
#                   --data-test BUILD/tests/integration/fuse/fuse_data_test \
#                   [--build-dir BUILD]
#
# Exit 0 only when the guest printed "VM-RESULT: PASS". Anything missing on
# the host (kernel, module, tool) is a failure with a message, never a skip.
#
# Environment: SEALFS_VM_TIMEOUT (seconds for all boots together, default 1200),
# SEALFS_VM_DIR (work dir, default BUILD/vm or /var/tmp/sealfs-vm),
# SEALFS_VM_KERNEL (a vmlinuz; default the newest in /boot with modules),
# SEALFS_VM_PERSISTENCE (mem-ctrl or cpu: boot only that platform),
# SEALFS_VM_CRASH_ROUNDS (machine kills in the drill, default 3; 0: none),
# SEALFS_VM_ONLY=nfs (one boot that runs only the NFS export check),
# SEALFS_VM_SEED (the seed the guest's patterns and testers derive from,
# printed in the serial log; default time and pid: to replay a failed run).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build_dir=""
probe=""
mkfs=""
daemon=""
holder=""
fsck=""
crash_writer=""
difftest=""
stress=""
stress_holder=""
stress_sigbreaker=""
namespace_test=""
data_test=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --probe) probe=$2; shift 2 ;;
    --mkfs) mkfs=$2; shift 2 ;;
    --daemon) daemon=$2; shift 2 ;;
    --holder) holder=$2; shift 2 ;;
    --fsck) fsck=$2; shift 2 ;;
    --crash-writer) crash_writer=$2; shift 2 ;;
    --difftest) difftest=$2; shift 2 ;;
    --stress) stress=$2; shift 2 ;;
    --stress-holder) stress_holder=$2; shift 2 ;;
    --stress-sigbreaker) stress_sigbreaker=$2; shift 2 ;;
    --namespace-test) namespace_test=$2; shift 2 ;;
    --data-test) data_test=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

die() {
  echo "vm: FAIL (host) $*" >&2
  echo "VM-RESULT: FAIL host: $*"
  exit 1
}

[ -x "$probe" ] || die "--probe must name the built region_probe (got '$probe')"
[ -x "$mkfs" ] || die "--mkfs must name the built mkfs.sealfs (got '$mkfs')"
[ -x "$daemon" ] || die "--daemon must name the built sealfs FUSE daemon (got '$daemon')"
[ -x "$holder" ] || die "--holder must name the built dax_holder (got '$holder')"
[ -x "$fsck" ] || die "--fsck must name the built fsck.sealfs (got '$fsck')"
[ -x "$crash_writer" ] || die "--crash-writer must name the built crash_writer (got '$crash_writer')"
[ -x "$difftest" ] || die "--difftest must name the built difftest (got '$difftest')"
[ -x "$stress" ] || die "--stress must name the built lease_stress_test (got '$stress')"
[ -x "$stress_holder" ] || die "--stress-holder must name the built lease_stress_holder (got '$stress_holder')"
[ -x "$stress_sigbreaker" ] ||
  die "--stress-sigbreaker must name the built lease_stress_sigbreaker (got '$stress_sigbreaker')"
[ -x "$namespace_test" ] || die "--namespace-test must name the built fuse_namespace_test (got '$namespace_test')"
[ -x "$data_test" ] || die "--data-test must name the built fuse_data_test (got '$data_test')"
posix_script=$here/../integration/fuse/posix_in_directory.sh
[ -x "$posix_script" ] || die "$posix_script missing"

work=${SEALFS_VM_DIR:-}
if [ -z "$work" ]; then
  if [ -n "$build_dir" ]; then work=$build_dir/vm; else work=/var/tmp/sealfs-vm; fi
fi
mkdir -p "$work"
guest_timeout=${SEALFS_VM_TIMEOUT:-1200}
t_start=$(date +%s)

# --- host prerequisites ------------------------------------------------------
need_tool() {  # tool, Debian package
  command -v "$1" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$1" >/dev/null 2>&1 ||
    die "'$1' not found on the host; apt-get install $2"
}
need_tool qemu-system-x86_64 qemu-system-x86
need_tool cpio cpio
need_tool gzip gzip
need_tool modprobe kmod
need_tool ndctl ndctl
need_tool daxctl daxctl
need_tool mkfs.ext4 e2fsprogs
need_tool mkfs.xfs xfsprogs
need_tool ldd libc-bin
need_tool fusermount3 fuse3
# NFS export of a sealfs mount (the guest kernel's nfsd and NFS client).
need_tool rpc.nfsd nfs-kernel-server
need_tool rpc.mountd nfs-kernel-server
need_tool exportfs nfs-kernel-server
need_tool mount.nfs nfs-common
need_tool rpcbind rpcbind
need_tool nfs4_getfacl nfs4-acl-tools
need_tool nfs4_setfacl nfs4-acl-tools
need_tool getfacl acl
need_tool setfacl acl
export PATH=$PATH:/usr/sbin:/sbin
busybox=""
for candidate in /bin/busybox /usr/bin/busybox; do
  if [ -x "$candidate" ] && ! ldd "$candidate" >/dev/null 2>&1; then busybox=$candidate; fi
done
[ -n "$busybox" ] || die "no statically linked busybox; apt-get install busybox-static"

kernel=${SEALFS_VM_KERNEL:-}
if [ -z "$kernel" ]; then
  for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V); do
    [ -d "/lib/modules/${k#/boot/vmlinuz-}/kernel" ] && kernel=$k
  done
fi
[ -n "$kernel" ] && [ -r "$kernel" ] ||
  die "no /boot/vmlinuz-* with matching /lib/modules; apt-get install linux-image-amd64"
kver=${kernel##*/vmlinuz-}
moddir=/lib/modules/$kver
[ -f "$moddir/modules.dep" ] || die "$moddir/modules.dep missing (run depmod $kver)"

# --- module list ---------------------------------------------------------------
# Order matters: libnvdimm before its users (ndctl's modprobe.d "install" rule
# for libnvdimm is not followed here), the dax drivers before any namespace is
# switched to devdax. Each is resolved with its dependencies; "builtin" ones
# need nothing.
wanted_modules="libnvdimm nfit nd_pmem nd_btt device_dax dax_pmem ext4 xfs fuse nfsd nfsv4 nfsv3"
module_files=()
for m in $wanted_modules; do
  deps=$(modprobe --ignore-install --show-depends -S "$kver" "$m" 2>&1) ||
    die "kernel $kver lacks module '$m' (needed for the NVDIMM test): $deps"
  while read -r verb path _; do
    case "$verb" in
      insmod)
        dup=0
        for f in "${module_files[@]}"; do [ "$f" = "$path" ] && dup=1; done
        [ $dup = 1 ] || module_files+=("$path")
        ;;
      builtin|install) ;;
      *) die "unexpected modprobe output for $m: $verb $path" ;;
    esac
  done <<<"$deps"
done
config=/boot/config-$kver
if [ -r "$config" ]; then
  for option in CONFIG_FS_DAX CONFIG_ZONE_DEVICE CONFIG_DEVTMPFS CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP; do
    grep -q "^$option=y" "$config" || die "kernel $kver built without $option=y"
  done
fi

# --- initramfs -------------------------------------------------------------------
# The base (busybox, modules, ndctl, mkfs tools, fusermount3) is cached by its
# inputs; the sealfs binaries (with libfuse3, libpmem2, spdlog, fmt and
# libsealfs) go in a second archive, rebuilt every run, which the kernel
# unpacks over the first.
host_tools="$(command -v ndctl) $(command -v daxctl) $(command -v mkfs.ext4) $(command -v mkfs.xfs)
            $(command -v fusermount3) $(command -v rpc.nfsd) $(command -v rpc.mountd)
            $(command -v exportfs) $(command -v mount.nfs) $(command -v rpcbind)
            $(command -v nfs4_getfacl) $(command -v nfs4_setfacl) $(command -v getfacl)
            $(command -v setfacl)"
base_key=$( (echo "$kver $busybox"; sha256sum "$here/init.sh" "$here/run.sh"; ls -lL $host_tools "$busybox" "${module_files[@]}") |
  sha256sum | cut -c1-16)
base_cpio=$work/base-$base_key.cpio.gz

# Libraries keep their host path when it is one of the loader's default
# directories; others (libsealfs from the build tree, found through the
# binary's RUNPATH) go to /usr/lib, where the guest's loader looks.
copy_with_libs() {  # root, binary...
  local root=$1; shift
  local bin lib dest
  for bin in "$@"; do
    mkdir -p "$root$(dirname "$bin")"
    cp -L "$bin" "$root$bin"
    for lib in $(ldd "$bin" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p'); do
      case "$lib" in
        /lib/*|/lib64/*|/usr/lib/*) dest=$lib ;;
        *) dest=/usr/lib/$(basename "$lib") ;;
      esac
      if [ ! -e "$root$dest" ]; then
        mkdir -p "$root$(dirname "$dest")"
        cp -L "$lib" "$root$dest"
      fi
    done
  done
}

if [ ! -f "$base_cpio" ]; then
  rm -f "$work"/base-*.cpio.gz
  root=$work/base-root
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,mnt,run,etc,lib/modules}
  cp "$busybox" "$root/bin/busybox"
  copy_with_libs "$root" $host_tools
  # libtirpc (rpc.mountd, mount.nfs) reads its transports from /etc/netconfig.
  for f in /etc/netconfig /etc/protocols /etc/services; do
    [ -r "$f" ] || die "$f missing on the host (the guest's NFS tools need it)"
    cp -L "$f" "$root$f"
  done
  # rpcbind drops to the user _rpc.
  printf 'root:x:0:0:root:/:/bin/sh\n_rpc:x:100:65534::/run/rpcbind:/bin/false\nnobody:x:65534:65534::/:/bin/false\n' \
    > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  : > "$root/etc/modules.order"
  for f in "${module_files[@]}"; do
    case "$f" in
      *.ko) ;;
      *.ko.xz) ;;
      *.ko.zst) ;;
      *) die "unknown module file type $f" ;;
    esac
    dest=$root/lib/modules/$(basename "${f%.xz}")
    dest=${dest%.zst}
    case "$f" in
      *.xz) xz -dc "$f" > "$dest" || die "cannot decompress $f" ;;
      *.zst) zstd -qdc "$f" > "$dest" || die "cannot decompress $f" ;;
      *) cp "$f" "$dest" ;;
    esac
    echo "$(basename "$dest")" >> "$root/etc/modules.order"
  done
  cp "$here/init.sh" "$root/init"
  chmod 755 "$root/init"
  (cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) > "$base_cpio.tmp"
  mv "$base_cpio.tmp" "$base_cpio"
  rm -rf "$root"
fi

sealfs_root=$work/sealfs-root
rm -rf "$sealfs_root"
mkdir -p "$sealfs_root/sealfs"
sealfs_bins="$(readlink -f "$probe") $(readlink -f "$mkfs") $(readlink -f "$daemon") $(readlink -f "$holder")
             $(readlink -f "$fsck") $(readlink -f "$crash_writer") $(readlink -f "$difftest")
             $(readlink -f "$stress") $(readlink -f "$stress_holder") $(readlink -f "$stress_sigbreaker")
             $(readlink -f "$namespace_test") $(readlink -f "$data_test")"
for bin in $sealfs_bins; do
  ldd "$bin" | grep -q 'not found' && die "$bin has unresolved libraries: $(ldd "$bin" | grep 'not found')"
done
copy_with_libs "$sealfs_root" $sealfs_bins
cp -L "$probe" "$sealfs_root/sealfs/region_probe"
cp -L "$mkfs" "$sealfs_root/sealfs/mkfs.sealfs"
cp -L "$daemon" "$sealfs_root/sealfs/sealfs"
cp -L "$holder" "$sealfs_root/sealfs/dax_holder"
cp -L "$fsck" "$sealfs_root/sealfs/fsck.sealfs"
cp -L "$crash_writer" "$sealfs_root/sealfs/crash_writer"
cp -L "$difftest" "$sealfs_root/sealfs/difftest"
cp -L "$stress" "$sealfs_root/sealfs/lease_stress_test"
cp -L "$stress_holder" "$sealfs_root/sealfs/lease_stress_holder"
cp -L "$stress_sigbreaker" "$sealfs_root/sealfs/lease_stress_sigbreaker"
cp -L "$namespace_test" "$sealfs_root/sealfs/fuse_namespace_test"
cp -L "$data_test" "$sealfs_root/sealfs/fuse_data_test"
cp -L "$posix_script" "$sealfs_root/sealfs/posix_in_directory.sh"
# Drop the copies at their host build paths; only /sealfs is used.
for bin in $sealfs_bins; do rm -f "$sealfs_root$bin"; done
find "$sealfs_root" -depth -type d -empty -delete
# A seed the guest's patterns derive from, so nothing stale can pass.
echo "${SEALFS_VM_SEED:-$(date +%s)$$}" > "$sealfs_root/sealfs/seed"
(cd "$sealfs_root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) > "$work/sealfs.cpio.gz"
rm -rf "$sealfs_root"
cat "$base_cpio" "$work/sealfs.cpio.gz" > "$work/initramfs.cpio.gz"

# --- boot --------------------------------------------------------------------------
# Two platforms, one boot each: ADR (qemu nvdimm-persistence=mem-ctrl, the
# kernel reports persistence_domain memory_controller, so flushes are needed:
# cache-line granularity) and eADR (cpu, cpu_cache: byte granularity). The
# guest reads what to expect from its command line.
platforms="mem-ctrl:memory_controller:cache-line cpu:cpu_cache:byte"
if [ -n "${SEALFS_VM_PERSISTENCE:-}" ]; then
  platforms=$(for p in $platforms; do case "$p" in "$SEALFS_VM_PERSISTENCE":*) echo "$p" ;; esac; done)
  [ -n "$platforms" ] || die "SEALFS_VM_PERSISTENCE must be mem-ctrl or cpu"
fi
deadline=$((t_start + guest_timeout))
echo "vm: kernel $kver, $(du -h "$work/initramfs.cpio.gz" | cut -f1) initramfs," \
     "${#module_files[@]} modules, prepared in $(($(date +%s) - t_start)) s"

nvdimm_file=$work/nvdimm.img
# A fresh, sparse backing file: the guest sees an NVDIMM full of zeros and
# labels nobody wrote. qemu carves the 128 KiB label area off the end of the
# backend and rounds the rest down to the 2 MiB backend alignment; the guest
# kernel then wants namespaces that are multiples of the 16 MiB region
# alignment. 1 GiB + 2 MiB leaves exactly 1 GiB of pmem, which is both.
nvdimm_size=$((1024 + 2))M
fresh_nvdimm() {
  rm -f "$nvdimm_file"
  truncate -s "$nvdimm_size" "$nvdimm_file"
}

# The qemu command line of one boot, in qemu_args: two CPUs (the daemon's
# threads and the holders really run in parallel), 2 GiB of RAM, the NVDIMM.
qemu_command() {  # persistence, expected domain, expected granularity, phase, extra kernel args
  qemu_args=(qemu-system-x86_64 -accel tcg -cpu max -smp 2
    -machine "pc,nvdimm=on,nvdimm-persistence=$1" -m 2G,slots=2,maxmem=6G
    -object "memory-backend-file,id=mem1,share=on,mem-path=$nvdimm_file,size=$nvdimm_size,align=2M"
    -device nvdimm,memdev=mem1,id=nv1,label-size=128K
    -kernel "$kernel" -initrd "$work/initramfs.cpio.gz"
    -append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init sealfs.domain=$2 sealfs.granularity=$3 sealfs.phase=$4 $5"
    -no-reboot -monitor none)
}

# phase "full" runs every check on a blank NVDIMM; phase "reboot" boots again
# on what the previous boot left and checks that it survived; "crashcheck"
# verifies the drill's last round.
boot_guest() {  # persistence, expected persistence_domain, expected granularity, phase[, kernel args]
  local persistence=$1 domain=$2 granularity=$3 phase=$4 extra=${5:-}
  local name=$persistence-$phase
  local log=$work/serial-$name.log
  local t_boot left status=0
  t_boot=$(date +%s)
  left=$((deadline - t_boot))
  [ "$left" -gt 30 ] || { echo "vm: FAIL ($name): no time left for this boot"; return 1; }
  echo "vm: booting ($name: expect $domain, $granularity granularity; TCG," \
       "timeout ${left}s), serial log $log"
  qemu_command "$persistence" "$domain" "$granularity" "$phase" "$extra"
  timeout --signal=TERM --kill-after=10 "$left" "${qemu_args[@]}" -nographic -serial stdio \
      </dev/null 2>&1 | tr -d '\r' | tee "$log" || status=$?
  echo "vm: ($name) guest ran $(($(date +%s) - t_boot)) s"
  if grep -qx 'VM-RESULT: PASS' "$log"; then
    echo "vm: ($name) PASS"
    return 0
  fi
  if grep -q '^VM-RESULT: FAIL' "$log"; then
    echo "vm: ($name) FAIL: $(grep '^VM-RESULT: FAIL' "$log" | head -1)"
  elif [ "$status" -eq 124 ]; then
    echo "vm: ($name) FAIL: guest did not finish within ${left}s (TCG boot stuck or too slow)"
  else
    echo "vm: ($name) FAIL: guest exited (status $status) without a result line"
  fi
  return 1
}

# One round of the kill-the-machine drill (init.sh, "kill-the-machine"):
# boots phase crash, waits until crash_writer has acknowledged three steps,
# lets it run a random 0.5 to 4.5 s more and SIGKILLs qemu. Sets `acked` to
# the last step acknowledged on the serial console before the kill. A guest
# that stopped by itself (a failed check, a dead daemon, a panic) fails the
# round: only a kill of a running workload counts.
crash_qemu_pid=""
trap '[ -n "$crash_qemu_pid" ] && kill -9 "$crash_qemu_pid" 2>/dev/null' EXIT
crash_round() {  # round, acknowledged steps of the rounds before (comma-separated)
  local round=$1 previous=$2
  local name=crash-$round log=$work/serial-crash-$round.log
  local t_boot acks=0 delay_ms ack_line='^ACK [0-9][0-9]*$'
  t_boot=$(date +%s)
  rm -f "$log"
  qemu_command mem-ctrl memory_controller cache-line crash \
    "sealfs.round=$round${previous:+ sealfs.acked=$previous}"
  "${qemu_args[@]}" -display none -serial "file:$log" </dev/null > "$work/qemu-$name.out" 2>&1 &
  crash_qemu_pid=$!
  echo "vm: ($name) booted, qemu pid $crash_qemu_pid, serial log $log"
  guest_stopped() {
    echo "vm: ($name) FAIL: the guest stopped before the kill: $(cat "$work/qemu-$name.out")"
    tail -n 40 "$log" | tr -d '\r' | sed 's/^/  | /'
    crash_qemu_pid=""
  }
  while :; do
    if ! kill -0 "$crash_qemu_pid" 2>/dev/null; then
      guest_stopped
      return 1
    fi
    if [ "$(date +%s)" -gt "$deadline" ]; then
      kill -9 "$crash_qemu_pid"
      crash_qemu_pid=""
      echo "vm: ($name) FAIL: fewer than 3 acknowledged steps before the deadline"
      return 1
    fi
    acks=$(sed -n '/CRASH-WRITER-STARTED/,$p' "$log" | tr -d '\r' | grep -ac "$ack_line" || true)
    [ "$acks" -ge 3 ] && break
    sleep 0.2
  done
  delay_ms=$((500 + $(od -An -N2 -tu2 /dev/urandom) % 4000))
  sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
  if ! kill -9 "$crash_qemu_pid" 2>/dev/null; then
    guest_stopped
    return 1
  fi
  wait "$crash_qemu_pid" 2>/dev/null || true
  crash_qemu_pid=""
  if grep -aqE '^(VM-RESULT|crash_writer: FAIL)' "$log"; then
    guest_stopped
    return 1
  fi
  # Only whole lines count: a line cut by the kill may be a shorter number.
  acked=$(tr -d '\r' < "$log" | { if [ -n "$(tail -c1 "$log")" ]; then sed '$d'; else cat; fi; } |
    grep -a "$ack_line" | tail -1 | cut -d' ' -f2)
  if [ -z "$acked" ] || [ "$acked" -lt 2 ]; then
    echo "vm: ($name) FAIL: no third acknowledgement in the serial log after the kill ('$acked')"
    return 1
  fi
  echo "vm: ($name) killed qemu ${delay_ms} ms after the 3rd acknowledgement;" \
       "last acknowledged step $acked; guest ran $(($(date +%s) - t_boot)) s"
}

failed=""
if [ "${SEALFS_VM_ONLY:-}" = nfs ]; then
  fresh_nvdimm
  boot_guest mem-ctrl memory_controller cache-line nfs || failed=" nfs"
  echo "vm: whole run $(($(date +%s) - t_start)) s"
  [ -z "$failed" ] || { echo "vm: FAIL:$failed"; exit 1; }
  rm -f "$nvdimm_file"
  echo "vm: PASS"
  exit 0
fi
[ -z "${SEALFS_VM_ONLY:-}" ] || die "SEALFS_VM_ONLY must be nfs (got '$SEALFS_VM_ONLY')"
# The daemon workloads (differential test, lease stress; slow under TCG)
# run in the first full boot only.
workload=yes
for p in $platforms; do
  IFS=: read -r persistence domain granularity <<<"$p"
  fresh_nvdimm
  if ! boot_guest "$persistence" "$domain" "$granularity" full "sealfs.workload=$workload"; then
    failed="$failed $persistence-full"
  elif [ "$persistence" = mem-ctrl ]; then
    # Once is enough: the reboot shows the on-media state outlives the guest.
    boot_guest "$persistence" "$domain" "$granularity" reboot || failed="$failed $persistence-reboot"
  fi
  workload=no
done

crash_rounds=${SEALFS_VM_CRASH_ROUNDS:-3}
case "$crash_rounds" in
  ''|*[!0-9]*) die "SEALFS_VM_CRASH_ROUNDS must be a number (got '$crash_rounds')" ;;
esac
if [ "$crash_rounds" -gt 0 ]; then
  fresh_nvdimm
  acked_list=""
  kills=0
  for round in $(seq 1 "$crash_rounds"); do
    # A round takes 30-60 s here; keep as much again for the last check.
    if [ $((deadline - $(date +%s))) -lt 120 ]; then
      echo "vm: (crash-$round) FAIL: less than 120 s left for this round and the check"
      failed="$failed crash-$round"
      break
    fi
    crash_round "$round" "$acked_list" || { failed="$failed crash-$round"; break; }
    acked_list=${acked_list:+$acked_list,}$acked
    kills=$((kills + 1))
  done
  if [ "$kills" = "$crash_rounds" ]; then
    # The last boot verifies every round again, not only the last one.
    if boot_guest mem-ctrl memory_controller cache-line crashcheck \
        "sealfs.round=$((crash_rounds + 1)) sealfs.acked=$acked_list"; then
      echo "vm: kill-the-machine drill: $kills kills (acknowledged steps $acked_list)," \
           "every round verified after each"
    else
      failed="$failed crashcheck"
    fi
  fi
fi
echo "vm: whole run $(($(date +%s) - t_start)) s"
if [ -n "$failed" ]; then
  echo "vm: FAIL:$failed (the last NVDIMM image is kept: $nvdimm_file)"
  exit 1
fi
rm -f "$nvdimm_file"
echo "vm: PASS"
exit 0
