#!/bin/sh
# Every bad-server scenario against libnbdc: see hostile-replies.c.
# Each scenario bounds its own waits; the timeout catches anything else.

set -e

builddir=${builddir:-.}

if ! command -v timeout >/dev/null 2>&1; then
  echo "1..0 # SKIP timeout(1) not found"
  exit 77
fi

# A TLS handshake the server leaves half way fails after this many
# seconds (libnbdc(3), ENVIRONMENT; libnbd ignores it and takes 40 s).
LIBNBDC_TLS_HANDSHAKE_TIMEOUT=5
export LIBNBDC_TLS_HANDSHAKE_TIMEOUT

exec timeout 300 $NBDC_VALGRIND "$builddir/hostile-replies" \
  "$builddir/bad-server"
