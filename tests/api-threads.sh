#!/bin/sh
# One handle, several threads issuing blocking and polled reads; then a
# handle dying while another thread waits on it.
. "${srcdir:-.}/functions.sh"
requires nbdkit timeout
requires_nbdkit_filter delay
api_prog api-threads
tmpdir_setup
start_nbdkit pat pattern 64M
# Each killed (kill -9) by the test while a thread waits for a read.
start_nbdkit dly1 --filter=delay pattern 1M delay-read=10
start_nbdkit dly2 --filter=delay pattern 1M delay-read=10
start_nbdkit dly3 --filter=delay pattern 1M delay-read=2
tap_run "threads" "$prog" "$tmpdir/pat.sock" \
  "$tmpdir/dly1.sock" "$tmpdir/dly1.pid" "$tmpdir/dly2.sock" "$tmpdir/dly2.pid" \
  "$tmpdir/dly3.sock"
tap_done
