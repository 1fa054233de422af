#!/bin/sh
# Run by `meson install` (meson.add_install_script): refreshes the dynamic
# linker's cache so that programs find the newly installed libsealfs.so.0
# at once. Nothing to do when installing into a staging directory
# (--destdir, packaging), and only root may do it; otherwise it says what to
# run. LDCONFIG names the program (tests/install/install_test.sh).
set -eu
if [ -n "${DESTDIR:-}" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "post-install: not root, so the linker cache was not refreshed: run 'sudo ldconfig'" >&2
  exit 0
fi
exec "${LDCONFIG:-ldconfig}"
