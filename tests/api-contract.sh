#!/usr/bin/env bash
# nbd-proxy tests: the libnbd API contract, rule by rule (api-contract.c).

. "${srcdir:-.}/functions.sh"

requires nbdkit timeout od
requires_nbdkit_plugin pattern
requires_nbdkit_plugin memory
requires_nbdkit_filter delay
requires_nbdkit_filter blocksize-policy
api_prog api-contract
tmpdir_setup

start_nbdkit pat pattern 1M
start_nbdkit mem memory 1M
start_nbdkit big pattern 1G
# Killed by the test (kill -9) with a read in flight.
start_nbdkit dly --filter=delay pattern 1M delay-read=10
start_nbdkit_tcp tcp pattern 1M || tcp_port=-
start_nbdkit max --filter=blocksize-policy pattern 4M \
  blocksize-minimum=512 blocksize-preferred=4096 blocksize-maximum=1M

tap_run "contract" "$prog" "$tmpdir/pat.sock" "$tmpdir/mem.sock" \
  "$tmpdir/big.sock" "$tmpdir/dly.sock" "$tmpdir/dly.pid" "$tcp_port" \
  "$tmpdir/max.sock"
tap_done
