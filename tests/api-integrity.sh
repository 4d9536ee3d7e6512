#!/bin/sh
# Data integrity with several threads on one handle (api-integrity.c):
# mixed aio and blocking commands checked against a model of the disk, on
# nbdkit memory and on qemu-nbd serving a raw file; and 4 MiB writes from
# several threads at once to a server that reads one request at a time.
. "${srcdir:-.}/functions.sh"
requires nbdkit qemu-nbd truncate timeout
requires_nbdkit_plugin memory
requires_nbdkit_filter delay
api_prog api-integrity
tmpdir_setup
seed=${API_INTEGRITY_SEED:-1}

# nbdkit memory: a trim reads back as zeroes.
start_nbdkit mem memory 8M
tap_run "nbdkit memory" "$prog" mixed "$tmpdir/mem.sock" zero "$seed"

# qemu-nbd on a raw file, writable, trims passed down as holes: what a
# trim leaves depends on the file system, so the test forgets it.
truncate -s 8M "$tmpdir/disk.img" || skip_all "cannot make a file"
qemu-nbd -k "$tmpdir/qemu.sock" --pid-file="$tmpdir/qemu.pid" -f raw -t \
  --discard=unmap "$tmpdir/disk.img" >"$tmpdir/qemu.log" 2>&1 &
server_pid=$!
add_pid $server_pid
wait_for_socket "$tmpdir/qemu.sock" $server_pid "$tmpdir/qemu.pid" ||
  _server_failed "qemu-nbd" "$tmpdir/qemu.log"
tap_run "qemu-nbd" "$prog" mixed "$tmpdir/qemu.sock" unknown "$seed"

# One request at a time, each write held 100 ms: the socket fills up.
start_nbdkit slow --threads=1 --filter=delay memory 32M delay-write=100ms
tap_run "4 MiB writes" "$prog" bigwrites "$tmpdir/slow.sock"
tap_done
