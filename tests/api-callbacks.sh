#!/usr/bin/env bash
# nbd-proxy tests: chunk and completion callback rules, cookies
# (api-callbacks.c).  qemu-nbd supplies replies in several chunks.

. "${srcdir:-.}/functions.sh"

requires nbdkit truncate timeout
requires_nbdkit_plugin pattern
api_prog api-callbacks
tmpdir_setup

start_nbdkit pat pattern 1M
sparse=-
if command -v qemu-nbd >/dev/null 2>&1 &&
   make_sparse_file "$tmpdir/sparse.img"; then
  start_qemu_nbd qemu "$tmpdir/sparse.img"
  sparse="$tmpdir/qemu.sock"
fi

tap_run "callbacks" "$prog" "$sparse" "$tmpdir/pat.sock"
tap_done
