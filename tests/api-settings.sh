#!/usr/bin/env bash
# nbd-proxy tests: handle settings, what the handshake learned, and the
# state queries (api-settings.c).

. "${srcdir:-.}/functions.sh"

requires nbdkit timeout
requires_nbdkit_plugin memory
requires_nbdkit_filter exportname
requires_nbdkit_filter blocksize-policy
api_prog api-settings
tmpdir_setup

start_nbdkit mem memory 1M
start_nbdkit ro -r memory 1M
start_nbdkit info --filter=exportname --filter=blocksize-policy memory 1M \
  default-export=canon exportdesc=fixed:"a description" \
  blocksize-minimum=512 blocksize-preferred=4096 blocksize-maximum=65536

tap_run "settings" "$prog" "$tmpdir/mem.sock" "$tmpdir/ro.sock" \
  "$tmpdir/info.sock"
tap_done
