#!/bin/sh
# Every bad-server scenario against libnbdc: see hostile-replies.c.
# Each scenario bounds its own waits; the timeout catches anything else.

set -e

builddir=${builddir:-.}

if ! command -v timeout >/dev/null 2>&1; then
  echo "1..0 # SKIP timeout(1) not found"
  exit 77
fi

exec timeout 300 $NBDC_VALGRIND "$builddir/hostile-replies" \
  "$builddir/bad-server"
