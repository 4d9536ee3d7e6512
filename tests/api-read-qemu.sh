#!/usr/bin/env bash
# nbd-proxy tests: reads from qemu-nbd serving a sparse file (api-read.c):
# HOLE chunks, zero-filled.

. "${srcdir:-.}/functions.sh"

requires qemu-nbd truncate timeout
api_prog api-read
tmpdir_setup

make_sparse_file "$tmpdir/sparse.img" || skip_all "cannot make a sparse file"
start_qemu_nbd qemu "$tmpdir/sparse.img"

tap_run "qemu-nbd sparse" "$prog" sparse "$tmpdir/qemu.sock" \
  "$tmpdir/sparse.img"
tap_done
