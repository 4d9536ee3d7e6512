#!/bin/sh
# One handle, several threads issuing blocking and polled reads.
. "${srcdir:-.}/functions.sh"
requires nbdkit timeout
api_prog api-threads
tmpdir_setup
start_nbdkit pat pattern 64M
tap_run "threads" "$prog" "$tmpdir/pat.sock"
tap_done
