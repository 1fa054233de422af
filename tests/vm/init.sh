#!/bin/busybox sh
# /init of the VM tier's initramfs (see run.sh and docs/vm.md). Runs as PID 1
# in the guest: loads the NVDIMM stack, makes the namespace devdax, probes it,
# mounts the sealfs daemon on it and takes direct mappings, reconfigures it to
# fsdax, probes files on ext4 and XFS mounted -o dax, does the direct mappings
# again on a file on ext4, and prints exactly one "VM-RESULT: PASS" or
# "VM-RESULT: FAIL <why>" line before powering off. Every step is bounded;
# nothing is skipped.
/bin/busybox --install -s
export PATH=/sealfs:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run

seed=$(cat /sealfs/seed)
# What the host's qemu platform promises (see run.sh).
expect_domain=$(sed -n 's/.*sealfs.domain=\([^ ]*\).*/\1/p' /proc/cmdline)
expect_granularity=$(sed -n 's/.*sealfs.granularity=\([^ ]*\).*/\1/p' /proc/cmdline)
phase=$(sed -n 's/.*sealfs.phase=\([^ ]*\).*/\1/p' /proc/cmdline)
# The daemon workloads (differential test, lease stress) run in one full
# boot only: under TCG they are the slow part.
workload=$(sed -n 's/.*sealfs.workload=\([^ ]*\).*/\1/p' /proc/cmdline)

stamp() { cut -d' ' -f1 /proc/uptime; }
say() { echo "vm: [$(stamp)s] $*"; }

finish() {  # PASS | FAIL reason
  sync
  if [ "$1" = PASS ]; then
    echo "VM-RESULT: PASS"
  else
    shift
    echo "VM-RESULT: FAIL $*"
  fi
  poweroff -f
  sleep 5
  echo "VM-RESULT: FAIL poweroff did not stop the guest"
}

# Runs a command, shows its output, and stops the whole run if it fails.
must() {  # description, command...
  local what=$1
  shift
  say "$what: $*"
  if ! "$@" > /tmp/out 2>&1; then
    cat /tmp/out
    finish FAIL "$what"
  fi
  cat /tmp/out
}

# A check that is expected to fail: the probe must be able to say no.
must_fail() {  # description, command...
  local what=$1
  shift
  say "$what (must fail): $*"
  if "$@" > /tmp/out 2>&1; then
    cat /tmp/out
    finish FAIL "$what succeeded"
  fi
  cat /tmp/out
}

expect_eq() {  # description, actual, expected
  if [ "$2" != "$3" ]; then finish FAIL "$1: got '$2', expected '$3'"; fi
  say "$1 = $2 (as expected)"
}

# Waits for a path to appear, polling: devices show up asynchronously after
# driver probing. Bounded at 30 s.
wait_for() {  # path
  local i=0
  while [ ! -e "$1" ]; do
    i=$((i + 1))
    [ $i -gt 300 ] && finish FAIL "$1 did not appear within 30 s"
    sleep 0.1
  done
}

json_field() {  # field name, file: the first "field":"value" or "field":number
  sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$2" | head -1
}

say "init started; kernel $(uname -r)"

for module in $(cat /etc/modules.order); do
  if ! insmod "/lib/modules/$module" 2> /tmp/out; then
    cat /tmp/out
    finish FAIL "insmod $module failed (the guest kernel needs it)"
  fi
done
say "loaded $(wc -l < /etc/modules.order) modules"
# devtmpfs makes /dev/fuse when the fuse module registers its misc device;
# should it not, the node is the fixed misc minor 229.
i=0
while [ ! -e /dev/fuse ] && [ $i -lt 30 ]; do i=$((i + 1)); sleep 0.1; done
if [ ! -e /dev/fuse ]; then
  say "/dev/fuse did not appear; making it (char 10 229)"
  mknod -m 666 /dev/fuse c 10 229 || finish FAIL "cannot create /dev/fuse"
fi

[ -n "$expect_domain" ] && [ -n "$expect_granularity" ] && [ -n "$phase" ] ||
  finish FAIL "kernel command line lacks sealfs.domain / sealfs.granularity / sealfs.phase"
wait_for /sys/bus/nd/devices/region0
must "nvdimm inventory" ndctl list -D -R -N -i
expect_eq "region persistence domain" "$(cat /sys/bus/nd/devices/region0/persistence_domain)" \
  "$expect_domain"

# Direct mappings through the daemon: mounts sealfs on an already formatted
# target, runs dax_holder on a file of it (map, store, persist, read(2) back,
# a truncate from another process breaking a cooperative holder), unmounts
# with fusermount3; the daemon must then exit 0.
lease_break_time=10
process_alive() {  # pid: running and not a zombie
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -n "$state" ] && [ "$state" != Z ]
}
mnt=/mnt/sealfs
daemon_start() {  # kind, target, sealfs options...: mounts $target on $mnt
  local kind=$1 target=$2 i=0
  shift 2
  daemon_log=/tmp/sealfs-$kind.log
  mkdir -p $mnt
  say "mount the sealfs daemon on $target ($kind): sealfs -f $*"
  sealfs -f "$@" "$target" $mnt >> "$daemon_log" 2>&1 &
  daemon=$!
  while ! grep -q " $mnt fuse" /proc/mounts; do
    if ! process_alive $daemon; then
      cat "$daemon_log"
      finish FAIL "the sealfs daemon on $kind exited before mounting"
    fi
    i=$((i + 1))
    if [ $i -gt 600 ]; then
      cat "$daemon_log"
      finish FAIL "the sealfs daemon did not mount $kind within 60 s"
    fi
    sleep 0.1
  done
  say "mounted after $((i / 10)).$((i % 10)) s: $(grep " $mnt " /proc/mounts)"
}
daemon_stop() {  # kind: unmounts $mnt; the daemon must then exit 0
  local kind=$1 status=0 i=0
  must "unmount sealfs ($kind)" fusermount3 -u $mnt
  while process_alive $daemon; do
    i=$((i + 1))
    if [ $i -gt 300 ]; then
      cat "$daemon_log"
      finish FAIL "the sealfs daemon on $kind did not exit within 30 s of the unmount"
    fi
    sleep 0.1
  done
  wait $daemon || status=$?
  if [ $status -ne 0 ]; then
    cat "$daemon_log"
    finish FAIL "the sealfs daemon on $kind exited with status $status"
  fi
  if [ -s "$daemon_log" ]; then
    say "daemon log:"
    cat "$daemon_log"
  fi
}
lease_check() {  # name, dax_holder kind (devdax or fsdax), target, dax_holder options...
  local kind=$1 holder_kind=$2 target=$3
  shift 3
  daemon_start "$kind" "$target" -o lease_break_time=$lease_break_time
  say "direct mappings on $kind: dax_holder --kind $holder_kind $* $mnt/lease.dat"
  if ! dax_holder --kind "$holder_kind" --seed "$seed" --break-time $lease_break_time "$@" \
      $mnt/lease.dat > /tmp/out 2>&1; then
    cat /tmp/out
    say "daemon log:"
    cat "$daemon_log"
    finish FAIL "direct mappings on $kind"
  fi
  cat /tmp/out
  daemon_stop "$kind"
  say "direct mappings on $kind: done, daemon exited 0"
  must "fsck after the direct mappings on $kind" fsck.sealfs -n "$target"
}

# The daemon's ordinary paths on real DAX: the differential tester (writes,
# creates, renames, unlinks, ACLs, flags, fallocate, mmap; tmpfs in /tmp as
# the reference; no user.* xattrs, which tmpfs lacks before Linux 6.6)
# against a mount of $target, then a clean unmount and fsck.
workload_check() {  # kind, target, operations
  local kind=$1 target=$2 ops=$3
  daemon_start "$kind-workload" "$target" -o allow_other
  mkdir -p /tmp/difftest-$kind
  must "differential test on $kind ($ops operations)" difftest --no-xattrs --a $mnt --b /tmp/difftest-$kind \
    --seed "$seed" --ops "$ops"
  daemon_stop "$kind-workload"
  must "fsck after the workload on $kind" fsck.sealfs -n "$target"
}

# NFS export (docs/daemon.md "NFS export"): the guest kernel's nfsd exports
# the sealfs mount over NFSv3 and NFSv4, and the guest's own NFS client
# mounts it over loopback. Over NFSv4.2 the differential tester (tmpfs
# reference; chown and another user's operations, but no xattrs, ACLs or
# inode flags, which a FUSE export does not carry over NFSv4) and the
# POSIX-semantics integration tests run through it, then the daemon is
# killed and restarted under the client's open file; over NFSv3 both run
# again, the tester with POSIX ACLs (NFSv3's side protocol carries them).
# Then the NFS side is torn down, the daemon must exit 0 and fsck be clean.
# A failed check is reported and the others still run; any failure fails
# the boot.
nfs_failed=""
nfs_try() {  # description, command...: like must, but goes on after a failure
  local what=$1 t0 t1
  shift
  say "$what: $*"
  t0=$(cut -d' ' -f1 /proc/uptime)
  if ! "$@" > /tmp/out 2>&1; then
    tail -c 30000 /tmp/out
    say "FAILED: $what"
    nfs_failed="$nfs_failed; $what"
    return 1
  fi
  t1=$(cut -d' ' -f1 /proc/uptime)
  tail -c 6000 /tmp/out
  say "$what: passed in $(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}') s"
}
nfs_unmount() {  # mount point: retried while the client lets go of its files
  local tries=0
  while ! umount "$1" 2> /tmp/out; do
    tries=$((tries + 1))
    if [ $tries -ge 20 ]; then
      cat /tmp/out
      for fd in /proc/[0-9]*/fd/* /proc/[0-9]*/cwd; do
        case "$(readlink "$fd" 2>/dev/null)" in "$1"*) echo "  open: $fd -> $(readlink "$fd")" ;; esac
      done
      finish FAIL "unmount NFS ($1)"
    fi
    sleep 0.5
  done
  say "NFS $1 unmounted (after $tries retries)"
}
nfs_check() {  # kind, target, operations
  local kind=$1 target=$2 ops=$3 mountd rpcbind keeper tries
  daemon_start "$kind-nfs" "$target" -o allow_other
  must "loopback up" ifconfig lo 127.0.0.1 up
  mkdir -p /proc/fs/nfsd /var/lib/nfs/v4recovery /mnt/nfs /mnt/nfs3 /tmp/difftest-nfs \
    /tmp/difftest-nfs3 /run/rpcbind
  grep -q " /proc/fs/nfsd " /proc/mounts || must "mount the nfsd filesystem" mount -t nfsd nfsd /proc/fs/nfsd
  : > /etc/exports
  : > /var/lib/nfs/etab
  : > /var/lib/nfs/rmtab
  # The shortest NFSv4 lease and grace period: opens in the first seconds
  # are otherwise held back for the 90 s default grace.
  echo 10 > /proc/fs/nfsd/nfsv4leasetime
  echo 10 > /proc/fs/nfsd/nfsv4gracetime
  # No delegations (nfsd takes them as VFS leases): stores through direct
  # mappings break no lease, so a client could cache past them, and a
  # delegation outlives a daemon restart with the dead mount's open file
  # in it (docs/daemon.md "NFS export").
  echo 0 > /proc/sys/fs/leases-enable
  # A FUSE filesystem has no device uuid: the export needs an fsid.
  must "export the sealfs mount" exportfs -o rw,sync,no_root_squash,no_subtree_check,fsid=7 \
    "127.0.0.1:$mnt"
  # NFSv3 finds mountd and nfsd through rpcbind, which must run before
  # either registers.
  rpcbind -f > /tmp/rpcbind.log 2>&1 &
  rpcbind=$!
  sleep 1
  process_alive $rpcbind || { cat /tmp/rpcbind.log; finish FAIL "rpcbind exited"; }
  rpc.mountd -F > /tmp/mountd.log 2>&1 &
  mountd=$!
  must "start nfsd (NFSv3 and NFSv4)" rpc.nfsd -U 2
  must "nfsd versions" cat /proc/fs/nfsd/versions
  must "mount it over NFSv4.2" mount.nfs "127.0.0.1:$mnt" /mnt/nfs -o vers=4.2
  grep " /mnt/nfs " /proc/mounts
  nfs_try "differential test through NFSv4.2 ($ops operations)" \
    difftest --nfs --no-xattrs --no-acls --no-inode-flags --no-rename-flags --no-fallocate \
    --a /mnt/nfs --b /tmp/difftest-nfs --seed "$seed" --ops "$ops"
  nfs_try "POSIX integration tests through NFSv4.2" posix_in_directory.sh --dir /mnt/nfs --nfs \
    --namespace-test /sealfs/fuse_namespace_test --data-test /sealfs/fuse_data_test
  # NFSv4 ACLs: nfsd shows the export's POSIX ACLs as NFSv4 ACLs and turns
  # an NFSv4 ACL set through NFS into a POSIX one on the mount.
  must "a file for ACLs through NFS" sh -c 'echo acl > /mnt/nfs/acl-file'
  must "a POSIX ACL on the sealfs mount" setfacl -m u:65534:rw- "$mnt/acl-file"
  nfs_try "the POSIX ACL read as an NFSv4 ACL" sh -c \
    'nfs4_getfacl /mnt/nfs/acl-file > /tmp/acl4; cat /tmp/acl4; grep -q "^A::65534:rw" /tmp/acl4'
  nfs_try "an NFSv4 ACE set through NFS" nfs4_setfacl -a A::4321:r /mnt/nfs/acl-file
  nfs_try "the NFSv4 ACE read as a POSIX ACL on the mount" sh -c \
    "getfacl -n '$mnt/acl-file' > /tmp/acl; cat /tmp/acl; grep -q '^user:4321:r--' /tmp/acl"
  must "remove the ACL file" rm /mnt/nfs/acl-file

  # The daemon dies (kill -9) and a new one mounts the region again while
  # the NFS client holds a file open: nfsd must find the client's handles
  # in the new mount (stable node ids and generations, lookup of "." and
  # ".."), so files reached by name and the descriptor the client held
  # open across the crash read what was written before. (With delegations
  # on, a delegated file kept the dead mount's open file inside nfsd and
  # read EIO until the delegation went: see leases-enable above.)
  must "make a pattern" dd if=/dev/urandom of=/tmp/nfs-keep.ref bs=4096 count=300
  must "write it through NFS" cp /tmp/nfs-keep.ref /mnt/nfs/keep
  must "a directory through NFS" mkdir -p /mnt/nfs/d1/d2
  must "a file in it" cp /tmp/nfs-keep.ref /mnt/nfs/d1/d2/deep
  # The file is held open by a process of its own (a descriptor of this
  # shell would be inherited by the daemon started below).
  sleep 100000 < /mnt/nfs/keep &
  keeper=$!
  # The background job opens the file itself: the daemon must not die
  # before it has (the open then failed with EIO, in one run).
  tries=0
  until [ "$(readlink /proc/$keeper/fd/0 2>/dev/null)" = /mnt/nfs/keep ]; do
    tries=$((tries + 1))
    [ $tries -gt 300 ] && finish FAIL "the keeper did not open /mnt/nfs/keep within 30 s"
    sleep 0.1
  done
  say "kill -9 the daemon (pid $daemon) with the file open on the NFS client"
  kill -9 $daemon
  wait $daemon 2>/dev/null
  must "detach the dead FUSE mount" umount -l $mnt
  daemon_start "$kind-nfs-restarted" "$target" -o allow_other
  must "flush nfsd's export cache" exportfs -f
  echo 3 > /proc/sys/vm/drop_caches
  must "read a deep file after the restart" cmp /tmp/nfs-keep.ref /mnt/nfs/d1/d2/deep
  must "read through the descriptor held across the restart" cmp /tmp/nfs-keep.ref /proc/$keeper/fd/0
  kill $keeper
  wait $keeper 2>/dev/null
  must "read the held file by name once closed" cmp /tmp/nfs-keep.ref /mnt/nfs/keep
  must "write after the restart" cp /tmp/nfs-keep.ref /mnt/nfs/d1/after
  must "remove through NFS" rm -r /mnt/nfs/keep /mnt/nfs/d1
  nfs_unmount /mnt/nfs

  # NFSv3 (nolock: no rpc.statd, so no NLM locks; the tester takes none),
  # with POSIX ACLs, which NFSv3 carries in its NFSACL side protocol.
  if nfs_try "mount it over NFSv3" mount.nfs "127.0.0.1:$mnt" /mnt/nfs3 -o vers=3,nolock; then
    grep " /mnt/nfs3 " /proc/mounts
    nfs_try "differential test through NFSv3 with ACLs ($((ops / 2)) operations)" \
      difftest --nfs --no-xattrs --no-inode-flags --no-rename-flags --no-fallocate \
      --a /mnt/nfs3 --b /tmp/difftest-nfs3 --seed "$((seed + 3))" --ops "$((ops / 2))"
    nfs_try "POSIX integration tests through NFSv3" posix_in_directory.sh --dir /mnt/nfs3 --nfs3 \
      --namespace-test /sealfs/fuse_namespace_test --data-test /sealfs/fuse_data_test
    nfs_unmount /mnt/nfs3
  fi
  must "stop nfsd" rpc.nfsd 0
  must "unexport" exportfs -ua
  kill $mountd $rpcbind 2>/dev/null
  wait $mountd $rpcbind 2>/dev/null
  daemon_stop "$kind-nfs"
  must "fsck after NFS on $kind" fsck.sealfs -n "$target"
  [ -z "$nfs_failed" ] || finish FAIL "NFS checks${nfs_failed}"
}

# The lease stress test (tests/integration/lease/stress_test.cc) with its
# regions on a filesystem mounted -o dax: TMPDIR holds them and there is no
# /dev/shm in the guest, so the fixture maps them as real fsdax files.
stress_check() {  # directory on a dax filesystem
  [ ! -e /dev/shm ] || finish FAIL "/dev/shm exists: the stress test would put its regions there"
  mkdir -p "$1/stress"
  say "lease stress on $1: lease_stress_test (SEALFS_STRESS_SECONDS=$stress_seconds)"
  if ! env TMPDIR="$1/stress" SEALFS_BIN=/sealfs/sealfs MKFS_BIN=/sealfs/mkfs.sealfs \
      FSCK_BIN=/sealfs/fsck.sealfs SEALFS_STRESS_HOLDER=/sealfs/lease_stress_holder \
      SEALFS_STRESS_SIGBREAKER=/sealfs/lease_stress_sigbreaker \
      SEALFS_STRESS_SECONDS=$stress_seconds SEALFS_STRESS_SEED="$seed" \
      lease_stress_test > /tmp/out 2>&1; then
    tail -c 20000 /tmp/out
    finish FAIL "lease stress on $1"
  fi
  tail -n 40 /tmp/out
  grep -q "^\[  PASSED  \] 1 test" /tmp/out || finish FAIL "lease stress on $1 did not run its test"
}
stress_seconds=10

# --- kill-the-machine drill ---------------------------------------------------------
# Round k (sealfs.round) boots on the NVDIMM that round k-1 left when the
# host SIGKILLed qemu in the middle of crash_writer's workload: fsck checks
# the crashed region (journal replay in memory), the daemon recovers it,
# crash_writer verifies the directory of every round before (sealfs.acked
# lists the last step the host saw acknowledged in each), the daemon
# unmounts and fsck must find the region clean. Then round k starts its own
# workload, which runs until the host kills the machine; phase crashcheck
# only verifies. Round 1 formats a fresh devdax namespace.
if [ "$phase" = crash ] || [ "$phase" = crashcheck ]; then
  round=$(sed -n 's/.*sealfs.round=\([0-9]*\).*/\1/p' /proc/cmdline)
  acked_list=$(sed -n 's/.*sealfs.acked=\([0-9,]*\).*/\1/p' /proc/cmdline)
  [ -n "$round" ] || finish FAIL "kernel command line lacks sealfs.round"
  if [ "$round" = 1 ]; then
    ndctl destroy-namespace -f all > /dev/null 2>&1
    must "create devdax namespace" ndctl create-namespace -r region0 -m devdax -a 2M
  else
    wait_for /sys/bus/nd/devices/namespace0.0
    must "namespace after the kill" ndctl list -N
  fi
  daxdev=$(json_field chardev /tmp/out)
  [ -n "$daxdev" ] || finish FAIL "no devdax namespace"
  wait_for "/dev/$daxdev"
  if [ "$round" = 1 ]; then
    must "mkfs.sealfs on devdax" mkfs.sealfs -f -L vm-crash "/dev/$daxdev"
  else
    must "fsck of the killed machine's region" fsck.sealfs -n "/dev/$daxdev"
    daemon_start crash "/dev/$daxdev"
    j=0
    for acked in $(echo "$acked_list" | tr ',' ' '); do
      j=$((j + 1))
      must "verify round $j (acknowledged up to $acked)" crash_writer verify \
        --dir $mnt/r$j --seed $((seed * 100 + j)) --acked "$acked"
    done
    [ $j -eq $((round - 1)) ] || finish FAIL "sealfs.acked='$acked_list' names $j rounds, not $((round - 1))"
    daemon_stop crash
    must "fsck after recovery" fsck.sealfs -n "/dev/$daxdev"
  fi
  [ "$phase" = crashcheck ] && finish PASS
  daemon_start crash "/dev/$daxdev"
  say "CRASH-WRITER-STARTED round $round"
  crash_writer write --dir $mnt/r$round --seed $((seed * 100 + round)) 2>&1
  finish FAIL "crash_writer stopped before the host killed the machine"
fi

# --- reboot phase ----------------------------------------------------------------
# The previous boot left an fsdax namespace with XFS on it and a probe file
# whose last transaction was never checkpointed. The namespace comes back
# from its info block; recovery in this new kernel must replay exactly that
# transaction.
if [ "$phase" = reboot ]; then
  wait_for /dev/pmem0
  must "namespace after reboot" ndctl list -N
  grep -q '"mode":"fsdax"' /tmp/out || finish FAIL "the namespace did not come back in fsdax mode"
  mkdir -p /mnt/xfs
  must "mount xfs -o dax after reboot" mount -t xfs -o dax /dev/pmem0 /mnt/xfs
  grep " /mnt/xfs " /proc/mounts | grep -q dax || finish FAIL "xfs mounted without dax"
  must "probe the pending file after reboot" region_probe --verify-only --expect-replayed 1 \
    --kind fsdax --granularity "$expect_granularity" --seed "$seed" /mnt/xfs/reboot.img
  must "probe the xfs probe file after reboot" region_probe --verify-only \
    --expect-replayed 0 --seed "$seed" /mnt/xfs/probe.img
  must "unmount xfs" umount /mnt/xfs
  say "all checks passed"
  finish PASS
fi
# --- nfs phase (SEALFS_VM_ONLY=nfs) ------------------------------------------------
# Only the NFS export check, on a fresh devdax namespace: for working on it
# without the rest of the full boot.
if [ "$phase" = nfs ]; then
  ndctl destroy-namespace -f all > /dev/null 2>&1
  must "create devdax namespace" ndctl create-namespace -r region0 -m devdax -a 2M
  daxdev=$(json_field chardev /tmp/out)
  [ -n "$daxdev" ] || finish FAIL "no devdax namespace"
  wait_for "/dev/$daxdev"
  must "mkfs.sealfs on devdax" mkfs.sealfs -f -L vm-nfs "/dev/$daxdev"
  nfs_check devdax "/dev/$daxdev" 300
  say "all checks passed"
  finish PASS
fi
[ "$phase" = full ] || finish FAIL "unknown phase '$phase'"

# --- devdax ---------------------------------------------------------------------
ndctl destroy-namespace -f all > /dev/null 2>&1
must "create devdax namespace" ndctl create-namespace -r region0 -m devdax -a 2M
cp /tmp/out /tmp/ns.json
namespace=$(json_field dev /tmp/ns.json)
daxdev=$(json_field chardev /tmp/ns.json)
[ -n "$namespace" ] && [ -n "$daxdev" ] || finish FAIL "no namespace/chardev in ndctl output"
wait_for "/dev/$daxdev"
dax_size=$(cat "/sys/bus/dax/devices/$daxdev/size")
dax_align=$(cat "/sys/bus/dax/devices/$daxdev/align")
say "devdax $daxdev of $namespace: sysfs size $dax_size, align $dax_align"
expect_eq "devdax sysfs align" "$dax_align" 2097152
expect_eq "devdax st_size" "$(stat -c %s "/dev/$daxdev")" 0
must "daxctl view" daxctl list
grep -q "\"chardev\":\"$daxdev\"" /tmp/out || finish FAIL "daxctl does not list $daxdev"
grep -q '"mode":"devdax"' /tmp/out || finish FAIL "daxctl does not show $daxdev in devdax mode"

must "probe devdax" region_probe --kind devdax --size "$dax_size" --alignment 2M \
  --granularity "$expect_granularity" --seed "$seed" "/dev/$daxdev"
# Rebinding the namespace tears down the device and maps it anew: what the
# probe committed must still be there.
must "disable namespace" ndctl disable-namespace "$namespace"
must "enable namespace" ndctl enable-namespace "$namespace"
wait_for "/dev/$daxdev"
must "probe devdax after rebind" region_probe --verify-only --seed "$seed" "/dev/$daxdev"
must_fail "probe with a wrong alignment" region_probe --verify-only --alignment 4K \
  --seed "$seed" "/dev/$daxdev"
must_fail "probe with a wrong seed" region_probe --verify-only --seed $((seed + 1)) "/dev/$daxdev"

must "mkfs.sealfs dry run on devdax" mkfs.sealfs -n -f "/dev/$daxdev"
grep -q "^alignment: 2 MiB" /tmp/out || finish FAIL "mkfs.sealfs -n did not plan a 2 MiB alignment"
must "mkfs.sealfs on devdax" mkfs.sealfs -f -L vm-devdax "/dev/$daxdev"
grep -q "devdax" /tmp/out || finish FAIL "mkfs.sealfs did not see a devdax device"
grep -q "^label: vm-devdax" /tmp/out || finish FAIL "mkfs.sealfs did not report the label"
# mkfs wrote a new filesystem over the probe's: its label must be gone.
must_fail "probe label after mkfs" region_probe --verify-only --seed "$seed" "/dev/$daxdev"
lease_check devdax devdax "/dev/$daxdev" --alignment 2M --size 8M
[ "$workload" = yes ] && workload_check devdax "/dev/$daxdev" 800
[ "$workload" = yes ] && nfs_check devdax "/dev/$daxdev" 300

# --- fsdax ----------------------------------------------------------------------
must "reconfigure to fsdax" ndctl create-namespace -f -e "$namespace" -m fsdax
cp /tmp/out /tmp/ns.json
blockdev=$(json_field blockdev /tmp/ns.json)
[ -n "$blockdev" ] || finish FAIL "no blockdev in ndctl output"
wait_for "/dev/$blockdev"
[ -e "/dev/$daxdev" ] && finish FAIL "/dev/$daxdev still exists after switching to fsdax"

probe_fsdax() {  # filesystem, mkfs command...
  local fs=$1
  shift
  must "mkfs $fs" "$@" "/dev/$blockdev"
  mkdir -p "/mnt/$fs"
  must "mount $fs -o dax" mount -t "$fs" -o dax "/dev/$blockdev" "/mnt/$fs"
  grep " /mnt/$fs " /proc/mounts
  grep " /mnt/$fs " /proc/mounts | grep -q dax || finish FAIL "$fs mounted without dax"
  must "create 64M file on $fs" truncate -s 64M "/mnt/$fs/probe.img"
  must "probe fsdax file on $fs" region_probe --kind fsdax --size 64M \
    --granularity "$expect_granularity" --seed "$seed" "/mnt/$fs/probe.img"
  must "mkfs.sealfs --size on $fs" mkfs.sealfs --size 32M -L "vm-$fs" "/mnt/$fs/sealfs.img"
  grep -q "fsdax" /tmp/out || finish FAIL "mkfs.sealfs did not see an fsdax file on $fs"
  must "unmount $fs" umount "/mnt/$fs"
  # Mount again: the probe's filesystem in the file must have survived.
  must "remount $fs -o dax" mount -t "$fs" -o dax "/dev/$blockdev" "/mnt/$fs"
  must "probe $fs file after remount" region_probe --verify-only --seed "$seed" \
    "/mnt/$fs/probe.img"
  must "unmount $fs" umount "/mnt/$fs"
}

probe_fsdax ext4 mkfs.ext4 -F -q -b 4096
# The daemon on a file of ext4 -o dax: libsealfs must map it with MAP_SYNC.
must "mount ext4 -o dax for the daemon" mount -t ext4 -o dax "/dev/$blockdev" /mnt/ext4
must "mkfs.sealfs for the daemon on ext4" mkfs.sealfs --size 64M -L vm-lease /mnt/ext4/lease.img
grep -q "fsdax" /tmp/out || finish FAIL "mkfs.sealfs did not see an fsdax file for the daemon"
lease_check fsdax-ext4 fsdax /mnt/ext4/lease.img --size 8M
if [ "$workload" = yes ]; then
  stress_check /mnt/ext4
  must "mkfs.sealfs for the workload on ext4" mkfs.sealfs --size 256M -L vm-ext4 /mnt/ext4/daemon.img
  workload_check fsdax-ext4 /mnt/ext4/daemon.img 500
fi
must "unmount ext4" umount /mnt/ext4
probe_fsdax xfs mkfs.xfs -f -q -m reflink=0
# And on a file of XFS -o dax: direct mappings, the workload, fsck.
must "mount xfs -o dax for the daemon" mount -t xfs -o dax "/dev/$blockdev" /mnt/xfs
must "mkfs.sealfs for the daemon on xfs" mkfs.sealfs --size 256M -L vm-xfs /mnt/xfs/daemon.img
grep -q "fsdax" /tmp/out || finish FAIL "mkfs.sealfs did not see an fsdax file on xfs"
lease_check fsdax-xfs fsdax /mnt/xfs/daemon.img --size 8M
if [ "$workload" = yes ]; then
  workload_check fsdax-xfs /mnt/xfs/daemon.img 500
  stress_check /mnt/xfs
fi
must "unmount xfs" umount /mnt/xfs

# Leave work for the reboot phase: a filesystem whose last commit is only in
# the journal, on XFS, cleanly unmounted.
must "mount xfs for the reboot file" mount -t xfs -o dax "/dev/$blockdev" /mnt/xfs
must "create 64M reboot file" truncate -s 64M /mnt/xfs/reboot.img
must "probe reboot file, leave a commit pending" region_probe --leave-pending --kind fsdax \
  --granularity "$expect_granularity" --seed "$seed" /mnt/xfs/reboot.img
must "unmount xfs" umount /mnt/xfs

# A file on tmpfs is no DAX file: the probe must notice when told to expect one.
truncate -s 16M /tmp/plain.img
must_fail "probe tmpfs file as fsdax" region_probe --kind fsdax --seed "$seed" /tmp/plain.img

say "all checks passed"
finish PASS
