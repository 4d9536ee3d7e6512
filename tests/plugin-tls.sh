#!/usr/bin/env bash
# nbd-proxy plugin: TLS to the upstream (tls=, tls-psk=, tls-username=,
# tls-certificates=, nbds:// URIs) and a TLS proxy chained behind another
# over TLS.  Data is checked against the upstream read by libnbd's tools;
# an upstream the proxy cannot trust fails at start-up with one line.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"
. "${srcdir:-.}/tls-functions.sh"

requires_proxy
requires_tls_tools
requires nbdcopy nbdinfo qemu-io md5sum
tmpdir_setup
make_tls_keys
psk=$tls/keys.psk

# A TLS upstream with random data on it.
head -c 16M /dev/urandom >"$tmpdir/random.img"
start_nbdkit up --tls=require --tls-psk="$psk" memory 16M
up="nbds+unix://alice@/?socket=$tmpdir/up.sock&tls-psk-file=$psk"
nbdcopy "$tmpdir/random.img" "$up"
want=$(md5sum <"$tmpdir/random.img" | cut -d' ' -f1)

# The proxy refuses a plaintext connection to it (--tls=require without
# TLS fails), so a proxy without TLS keys cannot be started on it.
start_proxy pxkeys socket="$tmpdir/up.sock" tls=require tls-psk="$psk" \
  tls-username=alice
same "PSK keys: the data" "$(checksum "$(proxy_uri pxkeys)")" "$want"

start_proxy pxuri "uri=$up"
same "nbds+unix URI with tls-psk-file: the data" \
  "$(checksum "$(proxy_uri pxuri)")" "$want"

# Writes through the TLS proxy land upstream.
check "qemu-io write through the TLS proxy" \
  qemu-io -f raw -c 'write -P 0x5a 1000000 70000' "$(proxy_uri pxuri)"
head -c 70000 /dev/zero | tr '\0' 'Z' |     # 'Z' is 0x5a
  dd of="$tmpdir/random.img" bs=1000 seek=1000 conv=notrunc status=none
same "the write landed upstream, exactly" "$(checksum "$up")" \
  "$(md5sum <"$tmpdir/random.img" | cut -d' ' -f1)"
stop_proxy pxkeys

# A chain: a client speaks TLS to the second proxy, which speaks TLS to
# the first, which speaks TLS upstream.
start_proxy pxtls --tls=require --tls-psk="$psk" -- "uri=$up"
front="nbds+unix://alice@/?socket=$tmpdir/pxtls.sock&tls-psk-file=$psk"
start_proxy pxchain "uri=$front"
same "TLS chain of two proxies: the data" \
  "$(checksum "$(proxy_uri pxchain)")" "$(checksum "$up")"
same "TLS chain: nbdinfo --size" "$(nbdinfo --size "$(proxy_uri pxchain)")" \
  16777216
stop_proxy pxchain
stop_proxy pxtls
stop_proxy pxuri

# Start-up failures, each with one clear line.
fails "wrong PSK: refused at start-up" "cannot connect to upstream" \
  socket="$tmpdir/up.sock" tls=require tls-psk="$tls/other.psk" \
  tls-username=alice
fails "unknown PSK user: refused at start-up" "not found in the PSK" \
  socket="$tmpdir/up.sock" tls=require tls-psk="$psk" tls-username=bob
start_nbdkit plain memory 1M
fails "tls=require, plaintext upstream: refused" "TLS is required" \
  socket="$tmpdir/plain.sock" tls=require
# tls=on (LIBNBD_TLS_ALLOW) falls back to plaintext on such a server.
start_proxy pxallow socket="$tmpdir/plain.sock" tls=on
same "tls=on, plaintext upstream: served" \
  "$(nbdinfo --size "$(proxy_uri pxallow)")" 1048576
stop_proxy pxallow

# X.509 over TCP: the upstream's certificate names localhost and is
# signed by the test CA, which the proxy's tls-certificates= directory
# holds (with a client certificate, which the upstream demands).
start_nbdkit_tls_tcp x509 --tls=require --tls-certificates="$tls/server" \
  --tls-verify pattern 8M
x509_port=$tcp_port
start_nbdkit_tls_tcp wrong --tls=require \
  --tls-certificates="$tls/wronghost" pattern 8M
wrong_port=$tcp_port
start_nbdkit pat pattern 8M
want=$(checksum "nbd+unix:///?socket=$tmpdir/pat.sock")
start_proxy pxx509 hostname=localhost port="$x509_port" tls=require \
  tls-certificates="$tls/client"
same "X.509 with a client certificate: the data" \
  "$(checksum "$(proxy_uri pxx509)")" "$want"
stop_proxy pxx509
start_proxy pxx509uri \
  "uri=nbds://localhost:$x509_port/?tls-certificates=$tls/client"
same "X.509 nbds:// URI: the data" "$(checksum "$(proxy_uri pxx509uri)")" \
  "$want"
stop_proxy pxx509uri
fails "X.509: a certificate for another host: refused" \
  "certificate was refused" hostname=localhost port="$wrong_port" \
  tls=require tls-certificates="$tls/client"
# An expired certificate, and one from a CA the proxy does not trust, over
# a Unix socket too (libnbdc checks the chain on every transport).
for bad in expired untrusted; do
  case $bad in expired) why=expired ;; untrusted) why="issuer" ;; esac
  start_nbdkit "up$bad" --tls=require --tls-certificates="$tls/$bad" \
    pattern 1M
  fails "X.509: an $bad certificate: refused" "certificate was refused.*$why" \
    socket="$tmpdir/up$bad.sock" tls=require tls-certificates="$tls/client"
done
start_proxy pxnoverify hostname=localhost port="$wrong_port" tls=require \
  tls-certificates="$tls/client" tls-verify=false
same "X.509 with tls-verify=false: a misnamed certificate is taken" \
  "$(checksum "$(proxy_uri pxnoverify)")" "$want"
stop_proxy pxnoverify

tap_done
