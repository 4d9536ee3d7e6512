#!/usr/bin/env bash
# nbd-proxy tests: reads from nbd-server, which sends simple replies only
# (api-read.c).

. "${srcdir:-.}/functions.sh"

requires nbd-server truncate timeout
api_prog api-read
tmpdir_setup

make_sparse_file "$tmpdir/disk.img" || skip_all "cannot make a test file"
start_nbd_server nbdsrv "$tmpdir/disk.img"

tap_run "nbd-server" "$prog" simple "$tmpdir/nbdsrv.sock" "$tmpdir/disk.img"
tap_done
