#!/usr/bin/env bash
# nbd-proxy tests: option mode, nbd_opt_* and nbd_aio_opt_* against
# nbdkit (file dir=, memory, --oldstyle), qemu-nbd and nbd-server
# (api-opt.c).  qemu-nbd and nbd-server are optional.

. "${srcdir:-.}/functions.sh"

requires nbdkit truncate timeout
requires_nbdkit_plugin file
requires_nbdkit_plugin memory
requires_nbdkit_filter exportname
api_prog api-opt
tmpdir_setup

mkdir "$tmpdir/dir" || skip_all "cannot make a directory"
truncate -s 1M "$tmpdir/dir/a" && truncate -s 2M "$tmpdir/dir/b" &&
  truncate -s 3M "$tmpdir/dir/c" && truncate -s 1M "$tmpdir/disk.img" ||
  skip_all "cannot make test files"

start_nbdkit dir file dir="$tmpdir/dir"
start_nbdkit mem --filter=exportname memory 1M default-export=canon \
  exportdesc=fixed:"a description"
start_nbdkit old --oldstyle memory 1M

qemu_sock=-
if command -v qemu-nbd >/dev/null 2>&1; then
  start_qemu_nbd qemu "$tmpdir/disk.img" -A -x qexp -D "qemu desc"
  qemu_sock=$tmpdir/qemu.sock
fi
nbdsrv_sock=-
if command -v nbd-server >/dev/null 2>&1; then
  start_nbd_server nbdsrv "$tmpdir/disk.img"
  nbdsrv_sock=$tmpdir/nbdsrv.sock
fi

tap_run "option mode" "$prog" "$tmpdir/dir.sock" "$tmpdir/mem.sock" \
  "$qemu_sock" "$nbdsrv_sock" "$tmpdir/old.sock"
tap_done
