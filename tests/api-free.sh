#!/usr/bin/env bash
# nbd-proxy tests: .free runs exactly once on every path (api-free.c).

. "${srcdir:-.}/functions.sh"

requires nbdkit timeout
requires_nbdkit_plugin pattern
requires_nbdkit_filter error
requires_nbdkit_filter delay
api_prog api-free
tmpdir_setup

start_nbdkit pat pattern 1M
start_nbdkit err --filter=error pattern 1M error-pread-rate=1 error-pread=EIO
start_nbdkit mem --filter=error memory 1M error-trim-rate=1 error-trim=EIO \
  error-extents-rate=1 error-extents=EIO

tap_run ".free exactly once" "$prog" "$tmpdir/pat.sock" "$tmpdir/err.sock" \
  "$tmpdir/mem.sock"
tap_done
