#!/usr/bin/env bash
# Builds sealfs (if needed) and runs the whole test suite.
#
#   scripts/test.sh [extra meson test arguments, e.g. --suite unit]
#
# BUILD_DIR picks the build directory (default: build). With
# SEALFS_REQUIRE_ALL=1 (CI) a skipped test counts as a failure, and so does a
# run with no tests at all. Missing Debian packages are installed first
# (SKIP_DEPS=1 to skip the check). Integration tests need /dev/fuse; run as
# root, as CI does, so the tests that switch users can.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}

if [ "${SKIP_DEPS:-0}" != 1 ]; then
  "$top/scripts/install-deps.sh"
fi

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$top" -Dwerror=true
fi
ninja -C "$build"

status=0
meson test -C "$build" --print-errorlogs "$@" || status=$?

# meson's own summary counts a skip as fine; count again from its log.
python3 - "$build/meson-logs/testlog.json" "${SEALFS_REQUIRE_ALL:-0}" "$status" <<'PY'
import json, sys
log, require_all, status = sys.argv[1], sys.argv[2] not in ("", "0"), int(sys.argv[3])
counts = {}
skipped = []
with open(log) as f:
    for line in f:
        if not line.strip():
            continue
        t = json.loads(line)
        counts[t["result"]] = counts.get(t["result"], 0) + 1
        if t["result"] == "SKIP":
            skipped.append(t["name"])
passed = counts.get("OK", 0) + counts.get("EXPECTEDFAIL", 0)
failed = sum(n for r, n in counts.items() if r not in ("OK", "EXPECTEDFAIL", "SKIP"))
print(f"{passed} passed, {failed} failed, {len(skipped)} skipped")
bad = status != 0 or failed > 0
if require_all and skipped:
    print("SEALFS_REQUIRE_ALL=1: skipped tests are failures: " + ", ".join(skipped))
    bad = True
if require_all and passed == 0:
    print("SEALFS_REQUIRE_ALL=1: no test ran")
    bad = True
sys.exit(1 if bad else 0)
PY
