#!/usr/bin/env bash
# nbd-proxy plugin: reads through the proxy equal reads of the upstream,
# for every kind of upstream (nbdkit pattern, memory, sparse-random, data;
# qemu-nbd on a qcow2 with holes; nbd-server, which has no structured
# replies; another nbd-proxy) and with several clients (nbdcopy, qemu-img,
# nbdinfo, qemu-io).

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires nbdcopy nbdinfo qemu-img qemu-io md5sum
tmpdir_setup

# cell NAME UPSTREAM-URI PROXY-NAME: the proxy serves what the upstream does.
cell ()
{
  _n=$1; _up=$2; _px=$(proxy_uri "$3" "${4:-}")
  same "$_n: nbdinfo --size" "$(nbdinfo --size "$_px")" \
    "$(nbdinfo --size "$_up")"
  same "$_n: nbdcopy checksum" "$(checksum "$_px")" "$(checksum "$_up")"
  check "$_n: qemu-img compare" \
    qemu-img compare -f raw -F raw "$_px" "$_up"
  # A read at an odd place, checked by qemu-io against the upstream.
  _want=$(qemu-io -f raw -r -c 'read -v 1000003 37' "$_up" | head -n 3)
  _got=$(qemu-io -f raw -r -c 'read -v 1000003 37' "$_px" | head -n 3)
  same "$_n: qemu-io read -v 1000003 37" "$_got" "$_want"
}

# nbdkit pattern.
start_nbdkit pat pattern 8M
start_proxy pxpat socket="$tmpdir/pat.sock"
cell "nbdkit pattern" "nbd+unix:///?socket=$tmpdir/pat.sock" pxpat

# nbdkit memory, filled with random data written directly upstream.
head -c 8M /dev/urandom >"$tmpdir/random.img"
start_nbdkit mem memory 8M
nbdcopy "$tmpdir/random.img" "nbd+unix:///?socket=$tmpdir/mem.sock"
start_proxy pxmem "uri=nbd+unix:///?socket=$tmpdir/mem.sock"
cell "nbdkit memory" "nbd+unix:///?socket=$tmpdir/mem.sock" pxmem
same "nbdkit memory: the data written" \
  "$(checksum "$(proxy_uri pxmem)")" \
  "$(md5sum <"$tmpdir/random.img" | cut -d' ' -f1)"

# nbdkit sparse-random: data and holes.
start_nbdkit sr sparse-random 64M seed=4321 percent=30
start_proxy pxsr socket="$tmpdir/sr.sock"
cell "nbdkit sparse-random" "nbd+unix:///?socket=$tmpdir/sr.sock" pxsr

# nbdkit data: bytes at odd offsets.
start_nbdkit data data '1 2 3 @0x10000 "hello" @0x7ffff 255' size=1M
start_proxy pxdata socket="$tmpdir/data.sock"
cell "nbdkit data" "nbd+unix:///?socket=$tmpdir/data.sock" pxdata

# qemu-nbd serving a qcow2 with holes.
if command -v qemu-nbd >/dev/null; then
  qemu-img create -q -f qcow2 "$tmpdir/holes.qcow2" 4M
  qemu-io -f qcow2 -c 'write -P 0x55 0 64k' -c 'write -P 0xaa 1M 8k' \
    -c 'write -P 0x11 3M 1k' "$tmpdir/holes.qcow2" >/dev/null
  qemu-nbd -k "$tmpdir/qcow.sock" --pid-file="$tmpdir/qcow.pid" -f qcow2 \
    -t -r -e 8 "$tmpdir/holes.qcow2" >"$tmpdir/qcow.log" 2>&1 &
  add_pid $!
  wait_for_socket "$tmpdir/qcow.sock" $! "$tmpdir/qcow.pid" ||
    _server_failed qemu-nbd "$tmpdir/qcow.log"
  start_proxy pxqcow socket="$tmpdir/qcow.sock"
  cell "qemu-nbd qcow2" "nbd+unix:///?socket=$tmpdir/qcow.sock" pxqcow
  check "qemu-nbd qcow2: the proxy reads the qcow2's data" \
    qemu-img compare -f raw -F qcow2 "$(proxy_uri pxqcow)" \
    "$tmpdir/holes.qcow2"
else
  tap_result "ok" "qemu-nbd upstream # SKIP qemu-nbd not installed"
fi

# nbd-server: no structured replies; its export is named "export".
if command -v nbd-server >/dev/null; then
  make_sparse_file "$tmpdir/sparse.img"
  start_nbd_server nbdsrv "$tmpdir/sparse.img"
  start_proxy pxnbdsrv "uri=nbd+unix:///export?socket=$tmpdir/nbdsrv.sock"
  cell "nbd-server" "nbd+unix:///export?socket=$tmpdir/nbdsrv.sock" pxnbdsrv
  # The same, the export name coming from the client (dynamic export).
  start_proxy pxnbdsrv2 socket="$tmpdir/nbdsrv.sock"
  cell "nbd-server, client's export name" \
    "nbd+unix:///export?socket=$tmpdir/nbdsrv.sock" pxnbdsrv2 export
else
  tap_result "ok" "nbd-server upstream # SKIP nbd-server not installed"
fi

# Another nbd-proxy as the upstream, and a chain of three.
start_proxy chain1 socket="$tmpdir/sr.sock"
start_proxy chain2 socket="$tmpdir/chain1.sock"
start_proxy chain3 socket="$tmpdir/chain2.sock"
cell "nbd-proxy upstream" "$(proxy_uri chain1)" chain2
cell "three proxies" "nbd+unix:///?socket=$tmpdir/sr.sock" chain3
if proxy_has has_extents=1; then
  same "three proxies: qemu-img map equals the upstream's" \
    "$(qemu-img map -f raw --output=json "$(proxy_uri chain3)")" \
    "$(qemu-img map -f raw --output=json \
       "nbd+unix:///?socket=$tmpdir/sr.sock")"
  if command -v qemu-nbd >/dev/null; then
    same "qemu-nbd qcow2: qemu-img map equals the upstream's" \
      "$(qemu-img map -f raw --output=json "$(proxy_uri pxqcow)")" \
      "$(qemu-img map -f raw --output=json \
         "nbd+unix:///?socket=$tmpdir/qcow.sock")"
  fi
else
  tap_result "ok" "qemu-img map through proxies # SKIP libnbdc has no nbd_block_status yet"
fi

for px in pxpat pxmem pxsr pxdata chain3 chain2 chain1; do
  stop_proxy $px
done
tap_done
