#!/usr/bin/env bash
# The sanitizer build: clang with AddressSanitizer + UndefinedBehaviorSanitizer
# (and libFuzzer), a build directory of its own, and the suites that run
# without a mount: unit, crash and fuzz (tests/fuzz). .ci/run runs it after
# the main job; by hand:
#
#   scripts/sanitize.sh                 # build-sanitize/, every chosen test
#   scripts/sanitize.sh fsck_test       # only the tests named
#
# BUILD_DIR picks the directory (default: build-sanitize). Only the programs
# the chosen tests run are built, not the daemon or the integration tests.
#
# Left out, on purpose:
#   - integration, vm: they mount FUSE through the daemon and run other
#     programs (preload library, databases) that are not built with ASan;
#     the daemon's code below src/fuse is what unit and crash exercise.
#   - version, man_pages, readme_example, install: packaging checks with no
#     code of ours to instrument.
#   - fsck_scale_test: it caps the address space (RLIMIT_AS) to prove fsck's
#     memory bound; ASan reserves terabytes of shadow address space, so the
#     cap cannot hold under it. The main build runs it.
# Any sanitizer report fails the test: UBSan is built not to recover and
# ASan aborts on its first report.
#
# The same build is the thread-safety check: clang's -Wthread-safety, as an
# error, over the GUARDED_BY / REQUIRES annotations (src/util/thread_annotations.h).
# The libraries that carry them (util, media, alloc, meta, lease) are all
# linked by unit tests, and the one annotated file of src/fuse
# (open_writers.cc) is built into fuse_open_writers, so building the tests'
# programs compiles every annotated file.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build-sanitize}

excluded=(version man_pages readme_example install fsck_scale_test)
suites=(unit crash fuzz)

# -O1 and line tables only (enough for the sanitizers' stack traces): the
# build is most of this job's time on a 2-core machine.
cpp_args="-gline-tables-only -Wthread-safety -Werror=thread-safety"
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build" "$top" \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Doptimization=1 -Ddebug=false -Dcpp_args="$cpp_args" \
    -Dbench=disabled -Dfuzz=enabled
else
  # A directory set up before the thread-safety flags gets them.
  meson configure "$build" -Dcpp_args="$cpp_args" > /dev/null
fi

# The tests of the chosen suites (or the ones named), and the programs they
# run, from meson's own description of the build.
mapfile -t plan < <(python3 - "$build" "${suites[*]}" "${excluded[*]}" "$@" <<'PY'
import json, os, subprocess, sys
build, suites, excluded, named = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4:]
intro = lambda what: json.loads(subprocess.check_output(["meson", "introspect", what, build]))
tests = intro("--tests")
targets = {t["id"]: t["filename"] for t in intro("--targets")}
chosen = [t for t in tests
          if (t["name"] in named if named else
              t["name"] not in excluded and any(s.split(":")[-1] in suites for s in t["suite"]))]
if named and len(chosen) != len(set(named)):
    sys.exit("sanitize.sh: unknown test in " + " ".join(named))
files = set()
for t in chosen:
    for d in t["depends"]:
        files.update(os.path.relpath(f, build) for f in targets.get(d, []))
print(" ".join(t["name"] for t in chosen))
print(" ".join(sorted(files)))
PY
)
read -r -a names <<< "${plan[0]}"
read -r -a files <<< "${plan[1]}"
echo "sanitize.sh: ${#names[@]} tests: ${names[*]}"
ninja -C "$build" "${files[@]}"

# handle_segv=0, handle_sigbus=0: sealfs takes these signals on purpose (a
# revoked holder's fenced mapping raises SIGBUS, a store to a read-only
# region SIGSEGV, media faults SIGBUS), and region_test, media_fault_test
# and lease_socket_test check that the process dies of exactly that signal;
# ASan's handler would turn it into an abort. Memory errors are still caught
# where they happen (ASan's checks do not rely on these handlers); a wild
# access elsewhere still kills its test, only without ASan's report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1:handle_segv=0:handle_sigbus=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
meson test -C "$build" --no-rebuild --print-errorlogs "${names[@]}"
