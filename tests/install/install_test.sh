#!/usr/bin/env bash
# `meson install --destdir` puts every expected file in place: the daemon in
# the bindir (mount.fuse3 looks for it in PATH), mkfs and fsck in the sbindir,
# libsealfs with its soname links, its pkg-config file and headers, and the
# manual pages; programs and library are stripped; a C11 and a C++17 program
# (docs/examples) build against the installed files through pkg-config and
# run; ldconfig is run after an install into the system but not under
# --destdir.
#
#   install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail

build=$1
source=$2
dest=$(mktemp -d "${TMPDIR:-/tmp}/sealfs-install-XXXXXX")
trap 'rm -rf "$dest"' EXIT
failed=0
fail() {
  echo "FAIL: $*"
  failed=1
}

# A stand-in for ldconfig that records being run.
fake_ldconfig=$dest/fake-ldconfig
printf '#!/bin/sh\necho ran >> "%s"\n' "$dest/ldconfig.log" > "$fake_ldconfig"
chmod +x "$fake_ldconfig"

value_of() { # option name, from `meson introspect ... --buildoptions` on stdin
  python3 -c 'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]))' "$1"
}
option() { meson introspect "$build" --buildoptions | value_of "$1"; }

# The project strips what it installs by default (meson.build's
# default_options). A build directory set up before that default keeps
# strip=false: install with --strip there, so the rest still checks what
# stripping leaves.
[ "$(meson introspect "$source/meson.build" --buildoptions 2>/dev/null | value_of strip)" = True ] ||
  fail "meson.build does not default to strip=true"
strip_flag=()
if [ "$(option strip)" != True ]; then
  echo "note: $build is configured with strip=false; installing with --strip"
  strip_flag=(--strip)
fi

LDCONFIG=$fake_ldconfig meson install -C "$build" --no-rebuild --quiet "${strip_flag[@]}" \
  --destdir "$dest/root" > "$dest/install.log" 2>&1 ||
  { cat "$dest/install.log"; fail "meson install exited $?"; exit 1; }
[ ! -e "$dest/ldconfig.log" ] || fail "ldconfig was run for an install under --destdir"
prefix=$(option prefix)
under() { # a directory option, as installed under the staging root
  local dir
  dir=$(option "$1")
  case $dir in /*) echo "$dest/root$dir" ;; *) echo "$dest/root$prefix/$dir" ;; esac
}
bindir=$(under bindir)
sbindir=$(under sbindir)
libdir=$(under libdir)
includedir=$(under includedir)
mandir=$(under mandir)
version=$(meson introspect "$build" --projectinfo |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')

expected=(
  "$bindir/sealfs" "$sbindir/mkfs.sealfs" "$sbindir/fsck.sealfs" "$sbindir/fsck.fuse.sealfs" "$sbindir/sealfs-layout"
  "$libdir/libsealfs.so" "$libdir/libsealfs.so.0" "$libdir/libsealfs.so.$version"
  "$libdir/pkgconfig/sealfs.pc"
  "$includedir/sealfs/sealfs.h" "$includedir/sealfs/sealfs.hpp" "$includedir/sealfs/format.h"
  "$mandir/man8/sealfs.8" "$mandir/man8/mkfs.sealfs.8" "$mandir/man8/fsck.sealfs.8"
  "$mandir/man8/sealfs-layout.8" "$mandir/man3/libsealfs.3" "$mandir/man1/sealfs-run.1"
  "$libdir/libsealfs-preload.so" "$bindir/sealfs-run"
)
for f in "${expected[@]}"; do
  [ -e "$f" ] || fail "not installed: ${f#"$dest/root"}"
done
grep -q "\"sealfs $version\"" "$mandir/man8/sealfs.8" ||
  fail "sealfs.8 does not carry the version $version"

# Stripped: no symbol table and no debug info in what was installed.
for f in "$bindir/sealfs" "$sbindir/mkfs.sealfs" "$sbindir/fsck.sealfs" "$libdir/libsealfs.so.$version"; do
  [ -e "$f" ] || continue
  sections=$(readelf -S -W "$f")
  if grep -qE '\.symtab|\.debug_info' <<<"$sections"; then
    fail "${f#"$dest/root"} is not stripped"
  fi
done
"$bindir/sealfs" --version | grep -qx "sealfs $version" || fail "the installed sealfs does not run"

# A user's build, through pkg-config, against the installed files only.
export PKG_CONFIG_PATH=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest/root
read -r -a flags <<<"$(pkg-config --cflags --libs sealfs)"
cc -std=c11 -Wall -Wextra -Werror -pedantic "$source/docs/examples/map_file.c" "${flags[@]}" \
  -o "$dest/map_file" || fail "map_file.c does not build against the installed library"
c++ -std=c++17 -Wall -Wextra -Werror -pedantic "$source/docs/examples/map_file.cpp" "${flags[@]}" \
  -o "$dest/map_file_cpp17" || fail "map_file.cpp does not build as C++17"
for p in "$dest/map_file" "$dest/map_file_cpp17"; do
  [ -x "$p" ] || continue
  status=0
  out=$(LD_LIBRARY_PATH=$libdir "$p" 2>&1) || status=$?
  [ "$status" -eq 2 ] && [[ "$out" == "usage: "* ]] ||
    fail "$(basename "$p") against the installed libsealfs: exit $status: $out"
done

# Into the system (no DESTDIR): the script refreshes the linker cache as
# root, and says what to run otherwise.
status=0
out=$(env -u DESTDIR LDCONFIG=$fake_ldconfig "$source/scripts/post-install.sh" 2>&1) || status=$?
[ "$status" -eq 0 ] || fail "post-install.sh exited $status: $out"
if [ "$(id -u)" -eq 0 ]; then
  [ "$(cat "$dest/ldconfig.log" 2>/dev/null)" = ran ] || fail "post-install.sh did not run ldconfig"
else
  [[ "$out" == *"run 'sudo ldconfig'"* ]] || fail "post-install.sh as a user: $out"
fi

[ "$failed" -eq 0 ] && echo "ok: ${#expected[@]} files installed under $prefix, stripped, usable"
exit "$failed"
