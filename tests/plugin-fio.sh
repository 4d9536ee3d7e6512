#!/usr/bin/env bash
# nbd-proxy plugin: fio --ioengine=nbd, random reads and writes at queue
# depth 16 with every block verified (crc32c), through the proxy: over an
# upstream that can multi-conn (a shared pool of connections) and over one
# that cannot (one upstream connection per host connection), with one and
# with four fio jobs (host connections); and over qemu-nbd (qcow2) and
# nbd-server (simple replies).  nbdcopy then checks the upstream holds
# what the proxy serves.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires fio nbdcopy
fio --enghelp=nbd >/dev/null 2>&1 || skip_all "fio has no nbd engine"
tmpdir_setup

slow=${NBDC_SLOWDOWN:-1}
size=16M
[ "$slow" -gt 1 ] && size=4M

# run_fio NAME URI JOBS
run_fio ()
{
  if timeout $((240 * slow)) fio --name="$1" --ioengine=nbd --uri="$2" \
       --rw=randrw --bs=4k --iodepth=16 --size=$size --numjobs="$3" \
       --offset_increment=$size --verify=crc32c --verify_fatal=1 \
       --group_reporting --output="$tmpdir/$1.fio" >/dev/null 2>&1 &&
     grep -q 'err= 0' "$tmpdir/$1.fio"; then
    tap_result "ok" "fio randrw verify, QD 16, $3 job(s): $1"
  else
    tap_result "not ok" "fio randrw verify, QD 16, $3 job(s): $1"
    sed 's/^/# /' "$tmpdir/$1.fio" | grep -i 'err\|verify\|bad' | head -n 20
  fi
}

# nbdkit memory: multi-conn.
start_nbdkit mem memory 128M
start_proxy pxmem socket="$tmpdir/mem.sock"
run_fio multi-conn "$(proxy_uri pxmem)" 1
run_fio multi-conn-4 "$(proxy_uri pxmem)" 4
same "multi-conn: the upstream holds what the proxy serves" \
  "$(checksum "nbd+unix:///?socket=$tmpdir/mem.sock")" \
  "$(checksum "$(proxy_uri pxmem)")"

# Without multi-conn (nbdkit's multi-conn filter turns it off).
if nbdkit --filter=multi-conn null --version >/dev/null 2>&1; then
  start_nbdkit one --filter=multi-conn memory 128M multi-conn-mode=disable
  start_proxy pxone socket="$tmpdir/one.sock"
  run_fio single "$(proxy_uri pxone)" 1
  run_fio single-4 "$(proxy_uri pxone)" 4
  same "no multi-conn: the upstream holds what the proxy serves" \
    "$(checksum "nbd+unix:///?socket=$tmpdir/one.sock")" \
    "$(checksum "$(proxy_uri pxone)")"
  stop_proxy pxone
fi

# qemu-nbd serving a qcow2 (its own allocation, structured replies), and
# nbd-server (simple replies only), writable.
if command -v qemu-nbd >/dev/null && command -v qemu-img >/dev/null; then
  qemu-img create -q -f qcow2 "$tmpdir/fio.qcow2" 64M
  start_qemu_nbd_opts qn "$tmpdir/fio.qcow2" -f qcow2
  start_proxy pxqn socket="$tmpdir/qn.sock"
  run_fio qemu-nbd "$(proxy_uri pxqn)" 1
  stop_proxy pxqn
else
  tap_result "ok" "fio over qemu-nbd # SKIP qemu-nbd not installed"
fi
if command -v nbd-server >/dev/null; then
  truncate -s 64M "$tmpdir/fio-ns.img"
  start_nbd_server ns "$tmpdir/fio-ns.img" false
  start_proxy pxns "uri=nbd+unix:///export?socket=$tmpdir/ns.sock"
  run_fio nbd-server "$(proxy_uri pxns)" 1
  stop_proxy pxns
else
  tap_result "ok" "fio over nbd-server # SKIP nbd-server not installed"
fi

stop_proxy pxmem
tap_done
