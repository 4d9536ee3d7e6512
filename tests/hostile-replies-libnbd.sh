#!/bin/sh
# The bad-server scenarios where libnbdc promises libnbd's behaviour, run
# against libnbd 1.14 itself: the oracle for those expectations (see
# hostile-replies.c, same_as_libnbd).

set -e

builddir=${builddir:-.}

if [ ! -x "$builddir/hostile-replies-libnbd" ]; then
  echo "1..0 # SKIP libnbd not found by configure"
  exit 77
fi
if ! command -v timeout >/dev/null 2>&1; then
  echo "1..0 # SKIP timeout(1) not found"
  exit 77
fi

exec timeout 300 $NBDC_VALGRIND "$builddir/hostile-replies-libnbd" \
  --same-as-libnbd \
  "$builddir/bad-server"
