#!/usr/bin/env bash
# Every program prints the one version string (meson's project version) for
# both -V and --version, on one line, and exits 0.
#
#   version_test.sh VERSION NAME=PATH...
set -euo pipefail

version=$1
shift
failed=0
for pair in "$@"; do
  name=${pair%%=*}
  bin=${pair#*=}
  for flag in -V --version; do
    status=0
    out=$("$bin" "$flag" 2>&1) || status=$?
    lines=$(printf '%s\n' "$out" | wc -l)
    # mkfs.sealfs adds the on-media format version in parentheses.
    if [ "$status" -ne 0 ] || [ "$lines" -ne 1 ] ||
       { [ "$out" != "$name $version" ] && [[ "$out" != "$name $version ("*")" ]]; }; then
      echo "FAIL: $bin $flag: exit $status, printed: $out (expected '$name $version')"
      failed=1
    else
      echo "ok: $bin $flag: $out"
    fi
  done
done
exit "$failed"
