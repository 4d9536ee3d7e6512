#!/usr/bin/env bash
# nbd-proxy tests: reads against nbdkit (api-read.c): the pattern, data and
# memory plugins, simple replies, the error and delay filters, and replies
# that arrive in reverse order.

. "${srcdir:-.}/functions.sh"

requires nbdkit timeout
requires_nbdkit_plugin pattern
requires_nbdkit_plugin data
requires_nbdkit_plugin memory
requires_nbdkit_plugin sh
requires_nbdkit_filter error
requires_nbdkit_filter delay
requires_nbdkit_filter blocksize-policy
api_prog api-read
tmpdir_setup

# The bytes api-read.c expects (make_data_image).
DATA_SPEC='0x11 0x22 0x33 0x44 @510 0x55 0xaa
           @4096 ( 0xde 0xad 0xbe 0xef ) * 256 @16383 0x99'

start_nbdkit pat pattern 1M
start_nbdkit data data "$DATA_SPEC" size=16384
start_nbdkit mem --filter=blocksize-policy memory 1M \
  blocksize-minimum=512 blocksize-preferred=4096 blocksize-maximum=1M
start_nbdkit err --filter=error pattern 1M error-pread-rate=1 error-pread=EIO
start_nbdkit delay --filter=delay pattern 1M delay-read=10ms

# Block i of 12 holds bytes i+1; its read waits until the client creates
# order/EXPORT/release-i (the export name picks the directory).
mkdir "$tmpdir/order"
cat >"$tmpdir/order.sh" <<'EOF'
#!/bin/sh
base=${0%/*}/order
case "$1" in
  thread_model) echo parallel ;;
  open) echo "$3" ;;
  get_size) echo 49152 ;;
  pread)
    i=$(($4 / 4096))
    n=0
    while [ ! -e "$base/$2/release-$i" ]; do
      sleep 0.05
      n=$((n + 1))
      if [ $n -gt 1200 ]; then
        echo "EIO no release-$i after 60 s" >&2
        exit 1
      fi
    done
    byte=$(printf '\\%03o' $((i + 1)))
    head -c "$3" /dev/zero | tr '\000' "$byte"
    ;;
  *) exit 2 ;;
esac
EOF
chmod +x "$tmpdir/order.sh"
start_nbdkit order --threads=16 sh "$tmpdir/order.sh"

tap_run "pattern" "$prog" pattern "$tmpdir/pat.sock"
tap_run "simple replies" "$prog" nosr "$tmpdir/pat.sock"
tap_run "data" "$prog" data "$tmpdir/data.sock"
tap_run "memory" "$prog" memory "$tmpdir/mem.sock"
tap_run "error filter" "$prog" error "$tmpdir/err.sock"
tap_run "delay filter" "$prog" delay "$tmpdir/delay.sock"
tap_run "reverse order" "$prog" order "$tmpdir/order.sock" "$tmpdir/order"
tap_done
