#!/bin/sh
# A steady stream of requests on one handle allocates nothing (libnbdc's
# request path is nbd-proxy's hot path): see api-alloc.c.
. "${srcdir:-.}/functions.sh"
requires nbdkit timeout
api_prog api-alloc
tmpdir_setup
start_nbdkit mem memory 64M
tap_run "alloc" "$prog" "$tmpdir/mem.sock"
tap_done
