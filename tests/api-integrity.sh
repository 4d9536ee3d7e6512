#!/bin/sh
# Data integrity with several threads on one handle (api-integrity.c):
# mixed aio and blocking commands checked against a model of the disk, on
# nbdkit memory (also through TLS with a PSK) and on qemu-nbd serving a raw
# file; and 4 MiB writes from several threads at once to a server that
# reads one request at a time.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/tls-functions.sh"
requires nbdkit qemu-nbd truncate timeout
requires_nbdkit_plugin memory
requires_nbdkit_filter delay
api_prog api-integrity
tmpdir_setup
seed=${API_INTEGRITY_SEED:-1}

# nbdkit memory: a trim reads back as zeroes.
start_nbdkit mem memory 8M
tap_run "nbdkit memory" "$prog" mixed "$tmpdir/mem.sock" zero "$seed"

# The same through TLS (PSK), if certtool and psktool are there.
if command -v certtool >/dev/null 2>&1 && command -v psktool >/dev/null 2>&1
then
  make_tls_keys
  start_nbdkit tlsmem --tls=require --tls-psk="$tls/keys.psk" memory 8M
  psk_query="tls-psk-file=$tls/keys.psk"
  tap_run "nbdkit memory, TLS" "$prog" mixed \
    "nbds+unix://alice@/?socket=$tmpdir/tlsmem.sock&$psk_query" zero "$seed"
else
  tap_result "ok" "nbdkit memory, TLS # SKIP certtool or psktool missing"
fi

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

# The same through TLS: a TLS record that went out in part must be
# finished before anything else is sent.
if [ -n "$tls" ]; then
  start_nbdkit slowtls --threads=1 --filter=delay --tls=require \
    --tls-psk="$tls/keys.psk" memory 32M delay-write=100ms
  tap_run "4 MiB writes, TLS" "$prog" bigwrites \
    "nbds+unix://alice@/?socket=$tmpdir/slowtls.sock&$psk_query"
else
  tap_result "ok" "4 MiB writes, TLS # SKIP certtool or psktool missing"
fi
tap_done
