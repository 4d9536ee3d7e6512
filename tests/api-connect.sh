#!/usr/bin/env bash
# nbd-proxy tests: connecting over Unix sockets, URIs, TCP and a command,
# and what the handshake learned (api-connect.c).

. "${srcdir:-.}/functions.sh"

requires nbdkit timeout od
requires_nbdkit_plugin pattern
requires_nbdkit_plugin memory
requires_nbdkit_filter exportname
requires_nbdkit_filter blocksize-policy
api_prog api-connect
tmpdir_setup

start_nbdkit mem --filter=exportname --filter=blocksize-policy memory 1M \
  default-export=mydisk exportdesc=fixed:'A test disk' \
  blocksize-minimum=512 blocksize-preferred=4096 blocksize-maximum=1M
start_nbdkit pat pattern 1M
start_nbdkit_tcp tcp pattern 1M || tcp_port=-

tap_run "connect" "$prog" "$tmpdir/mem.sock" "$tmpdir/pat.sock" "$tcp_port"
tap_done
