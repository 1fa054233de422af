#!/usr/bin/env bash
# Runs one libFuzzer target for the test suite (tests/fuzz/meson.build).
#
#   run_fuzz.sh replay TARGET CORPUS_DIR
#       every file of CORPUS_DIR once; fails on the first crash
#   run_fuzz.sh fuzz TARGET CORPUS_DIR ARTIFACT_DIR [LIBFUZZER_FLAG...]
#       mutates from CORPUS_DIR for SEALFS_FUZZ_SECONDS (default 20) in a
#       scratch corpus; a crash or hang is saved under ARTIFACT_DIR (copy it
#       into CORPUS_DIR, named crash-WHAT, with the fix: it becomes a
#       regression test) and fails the test
set -euo pipefail

mode=$1 target=$2 corpus=$3
# Sanitizer reports abort, so libFuzzer saves the input that caused them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

shopt -s nullglob
inputs=("$corpus"/*)
if [ ${#inputs[@]} -eq 0 ]; then
  echo "run_fuzz.sh: $corpus holds no inputs" >&2
  exit 1
fi

case $mode in
  replay)
    # -close_fd_mask=1: the tools' usage texts on stdout are noise here.
    exec "$target" -close_fd_mask=1 "${inputs[@]}"
    ;;
  fuzz)
    artifacts=$4
    shift 4
    mkdir -p "$artifacts"
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    seconds=${SEALFS_FUZZ_SECONDS:-20}
    "$target" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 -close_fd_mask=1 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" "$scratch" "$corpus"
    ;;
  *)
    echo "usage: run_fuzz.sh replay|fuzz TARGET CORPUS_DIR [ARTIFACT_DIR]" >&2
    exit 2
    ;;
esac
