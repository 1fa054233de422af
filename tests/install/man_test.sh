#!/usr/bin/env bash
# Every manual page renders without a warning from groff, and every option a
# program's --help lists appears in its page, so the two cannot drift.
#
#   man_test.sh PAGE[=PROGRAM|@HEADER]...
#
# For a library page given its header: every function and every SEALFS_
# constant the header declares appears in the page.
# Options taken from --help: every -x and --long token, and the first word of
# each indented line under a heading that ends in "options:" (the daemon's
# -o options: max_threads=N -> max_threads).
set -euo pipefail

failed=0
fail() {
  echo "FAIL: $*"
  failed=1
}

# The page's text with font changes and escapes removed: \-\-log\-file -> --log-file.
page_text() {
  sed -e 's/\\f[BIRP]//g' -e 's/\\f([A-Z][A-Z]//g' -e 's/\\-/-/g' -e 's/\\&//g' -e 's/\\e/\\/g' "$1"
}

help_options() {
  local help=$1
  printf '%s\n' "$help" | grep -oE '(^|[][ ,|(])--?[A-Za-z0-9][A-Za-z0-9-]*' |
    sed -E 's/^[][ ,|(]//' || true
  printf '%s\n' "$help" | awk '
    /^[^ ].*options:$/ { inside = 1; next }
    /^$/ { inside = 0 }
    inside && /^  [a-z_]/ { word = $1; sub(/=.*/, "", word); print word }'
}

for arg in "$@"; do
  header=
  if [[ "$arg" == *@* ]]; then
    header=${arg#*@}
    arg=${arg%%@*}
  fi
  page=${arg%%=*}
  program=
  [ "$arg" != "$page" ] && program=${arg#*=}
  name=$(basename "$page")

  warnings=$(groff -man -ww -z "$page" 2>&1) || fail "$name: groff exited $?"
  [ -z "$warnings" ] || fail "$name: groff warnings: $warnings"
  grep -q '^\.SH NAME' "$page" || fail "$name: no NAME section (whatis, apropos)"

  if [ -n "$header" ]; then
    text=$(page_text "$page")
    names=$(grep -oE '\b(sealfs_[a-z_]+) *\(|\bSEALFS_[A-Z0-9_]+' "$header" | sed -E 's/ *\($//' |
      grep -vE '^SEALFS_SEALFS_H$|_$' | sort -u)
    missing=()
    for n in $names; do
      grep -qw -- "$n" <<<"$text" || missing+=("$n")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      fail "$name: declared in $(basename "$header") but not in the page: ${missing[*]}"
    else
      echo "ok: $name renders and names all $(printf '%s\n' "$names" | wc -l) functions and constants of $(basename "$header")"
    fi
    continue
  fi
  [ -n "$program" ] || { echo "ok: $name renders"; continue; }
  help=$("$program" --help 2>&1) || fail "$name: $program --help exited $?"
  text=$(page_text "$page")
  options=$(help_options "$help" | sort -u)
  [ -n "$options" ] || fail "$name: found no option in $program --help"
  missing=()
  for opt in $options; do
    # The option as a word of its own: not a piece of a longer one.
    # (A here-string, not a pipe: grep -q stops reading at the first match,
    # and under pipefail the writer's SIGPIPE would count as "missing".)
    if ! grep -qE -- "(^|[^A-Za-z0-9_-])${opt}([^A-Za-z0-9_-]|$)" <<<"$text"; then
      missing+=("$opt")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    fail "$name: options in '$program --help' but not in the page: ${missing[*]}"
  else
    echo "ok: $name renders and names all $(printf '%s\n' "$options" | wc -l) options of $program --help"
  fi
done
exit "$failed"
